package config

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/server"
)

// addTestdataSeeds adds every testdata/*.yml file to f's seed corpus.
func addTestdataSeeds(f *testing.F) {
	f.Helper()
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParse checks that Parse never panics, is deterministic, and that a
// file it accepts always yields a server configuration that passes
// server.Config.Validate.
func FuzzParse(f *testing.F) {
	addTestdataSeeds(f)
	f.Add([]byte(minimal + "policy: {p: {allow: ['*'], identities: ['${ID}', '${EMPTY}']}}\ncache: {expiry: {any: '${DUR}'}}\n"))
	f.Add([]byte(adminTLS + "keystore: {openkes-test: {name: x, retries: '${N}', enabled: yes}}\nx: &a {<<: *a}\n"))
	f.Add([]byte("a: &a [*a]\n"))

	lookup := env(map[string]string{"ID": "some-identity", "EMPTY": "", "DUR": "1m", "N": "3"})
	f.Fuzz(func(t *testing.T, data []byte) {
		f1, err1 := Parse(data, lookup)
		f2, err2 := Parse(data, lookup)
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("Parse is not deterministic:\n%v\n---\n%v", err1, err2)
		}
		if err1 != nil {
			if f1 != nil {
				t.Fatal("Parse returned a File and an error")
			}
			return
		}
		if diff := cmp.Diff(f1, f2, compareFiles); diff != "" {
			t.Fatalf("Parse is not deterministic (-first +second):\n%s", diff)
		}
		if f1.KeyStoreKind == "" || (f1.KeyStore == nil) == (f1.KeyStoreError() == nil) {
			t.Fatalf("inconsistent key store: kind %q, config %v, error %v", f1.KeyStoreKind, f1.KeyStore, f1.KeyStoreError())
		}
		if strings.TrimSpace(f1.Admin) == "" || f1.TLS.KeyFile == "" || f1.TLS.CertFile == "" {
			t.Fatalf("accepted a file without admin or TLS files: %+v", f1)
		}
		conf := f1.ServerConfig(nopStore{}, server.TLSConfig{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil },
		})
		if err := conf.Validate(); err != nil {
			t.Fatalf("accepted a file whose server config is invalid: %v", err)
		}
	})
}

// quote writes s as a YAML double-quoted scalar, escaping everything but
// printable ASCII.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "\\U%08X", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzExpandEnv checks ${VAR} expansion: a reference is replaced by the
// variable's exact text, anything else is left alone, policy patterns are
// never expanded, and the text survives decoding into a string field.
func FuzzExpandEnv(f *testing.F) {
	for _, seed := range [][2]string{
		{"${X}", "value"}, {"pre-${X}", "v"}, {"  ${ X }  ", "null"}, {"${}", ""}, {"true", "x"},
		{"${X}", "true"}, {"${X}", "~"}, {"${X}", "a: b\n- c"}, {"${X}", " 42 "}, {"${X}${Y}", "v"},
		{"${X}", "${Y}"}, {"$X", "v"}, {"${X", "v"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, value, envValue string) {
		if !utf8.ValidString(value) || !utf8.ValidString(envValue) {
			return // YAML text is Unicode
		}
		lookup := func(string) (string, bool) { return envValue, true }
		name, isRef := envRef(value)
		if isRef {
			if again, ok := envRef("${" + name + "}"); !ok || again != name {
				t.Fatalf("envRef(${%s}) = %q, %v; want the name back", name, again, ok)
			}
		}

		// On a node.
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
		p := new(problems)
		expandEnv(n, "x", scopeAny, lookup, p)
		want := value
		if isRef {
			want = envValue
		}
		if len(p.errs) != 0 || n.Value != want {
			t.Fatalf("expandEnv(%q) = %q, %v; want %q", value, n.Value, p.errs, want)
		}

		// Through a whole file: into a string field and a policy pattern.
		doc := "admin: {identity: " + quote(value) + "}\ntls: {key: k, cert: c}\n" + fsStore +
			"policy: {p: {allow: [" + quote(value) + "]}}\n"
		file, err := Parse([]byte(doc), lookup)
		if strings.TrimSpace(want) == "" {
			if err == nil || !strings.Contains(err.Error(), "admin.identity: required") {
				t.Fatalf("Parse(admin %q) error = %v, want admin.identity: required", want, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", doc, err)
		}
		if file.Admin != want {
			t.Fatalf("Admin = %q, want %q", file.Admin, want)
		}
		if got := file.Policies["p"].Allow; len(got) != 1 || got[0] != value {
			t.Fatalf("Allow = %q, want [%q] (patterns are not expanded)", got, value)
		}
	})
}
