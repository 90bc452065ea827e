package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore/seal"
	"github.com/openkes/openkes/keystore/vault"
)

// The yaml examples of docs/config.md are parsed by TestDocsExamples, so
// that the reference cannot drift from the parser. An HTML comment on the
// line before a block says how to check it:
//
//	<!-- fragment -->          a partial file: completed with the
//	                           settings of docsBase it leaves out
//	<!-- error: <text> -->     must fail with an error containing <text>
//	<!-- warning: <text> -->   must parse with a warning containing <text>
//
// Directives can be combined with ';'. A block without a directive is a
// complete file that must parse without error and without warnings.

const docsFile = "../docs/config.md"

// docsBase holds the required settings that fragments are completed with.
const docsBase = `
admin:
  identity: 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22
tls:
  key: ./server.key
  cert: ./server.cert
keystore:
  fs:
    path: ./keys
`

// docsEnv resolves the ${VAR} references of the examples. A reference
// to a variable missing here fails the example.
var docsEnv = map[string]string{
	"KES_ADMIN_IDENTITY": "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
	"MINIO_IDENTITY":     "9bd2a7a5c5a1b0c4f1e3d2c6b8a7f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b",
	"MY_APP_IDENTITY":    "5a4b3c2d1e0f9a8b9bd2a7a5c5a1b0c4f1e3d2c6b8a7f0e1d2c3b4a596877869",
	"KES_CACHE_EXPIRY":   "10m",
	"KES_AUDIT_SYNC":     "true",
	"KES_TLS_PASSWORD":   "example-password",
	"VAULT_ROLE_ID":      "db02de05-fa39-4855-059b-67221c5c2f63",
	"VAULT_SECRET_ID":    "6a174c20-f6de-a53c-74d2-6018fcceff64",
	"VAULT_K8S_JWT":      "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJrZXMifQ.c2ln",
	"ETCD_PASSWORD":      "example-password",
}

// docsKEKFiles are the KEK files the examples name. They are created in
// the working directory of the test, because seal sections read them.
var docsKEKFiles = []string{"kek.key", "kek-old.key"}

func init() {
	// config_test.go registers the key stores; the seal.vault KEK is
	// registered here, for the seal examples.
	if !slices.Contains(seal.KEKKinds(), "vault") {
		seal.RegisterKEK("vault", vault.NewKEKConfig)
	}
}

// docExample is one yaml block of a Markdown file.
type docExample struct {
	line     int    // of the opening fence
	yaml     string // the block's text
	fragment bool
	err      string // the error it must produce, "" for none
	warning  string // a warning it must produce, "" for none
}

// docExamples returns the yaml blocks of the Markdown text md. It fails
// for an unknown directive and for an unterminated block.
func docExamples(md []byte) ([]docExample, error) {
	var (
		out       []docExample
		directive string
		inBlock   bool
		cur       docExample
		body      strings.Builder
		lineNo    int
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case inBlock && trimmed == "```":
			cur.yaml = body.String()
			out = append(out, cur)
			inBlock = false
		case inBlock:
			body.WriteString(line)
			body.WriteByte('\n')
		case trimmed == "```yaml":
			cur = docExample{line: lineNo}
			if err := cur.parseDirective(directive); err != nil {
				return nil, fmt.Errorf("line %d: %w", lineNo-1, err)
			}
			body.Reset()
			inBlock = true
		}
		directive = ""
		if d, ok := strings.CutPrefix(trimmed, "<!--"); ok {
			if d, ok = strings.CutSuffix(d, "-->"); ok {
				directive = strings.TrimSpace(d)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inBlock {
		return nil, fmt.Errorf("line %d: unterminated yaml block", cur.line)
	}
	return out, nil
}

func (e *docExample) parseDirective(d string) error {
	if d == "" {
		return nil
	}
	for part := range strings.SplitSeq(d, ";") {
		part = strings.TrimSpace(part)
		key, value, _ := strings.Cut(part, ":")
		value = strings.TrimSpace(value)
		switch {
		case part == "fragment":
			e.fragment = true
		case key == "error" && value != "":
			e.err = value
		case key == "warning" && value != "":
			e.warning = value
		default:
			return fmt.Errorf("unknown directive %q before a yaml block", part)
		}
	}
	return nil
}

// complete returns the text of a fragment with the settings of docsBase
// it does not set itself.
func complete(fragment string) (string, error) {
	var doc, base yaml.Node
	if err := yaml.Unmarshal([]byte(fragment), &doc); err != nil {
		return "", err
	}
	if err := yaml.Unmarshal([]byte(docsBase), &base); err != nil {
		return "", err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("a fragment must be a YAML mapping")
	}
	m, b := doc.Content[0], base.Content[0]
	set := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		set[m.Content[i].Value] = true
	}
	for i := 0; i+1 < len(b.Content); i += 2 {
		if !set[b.Content[i].Value] {
			m.Content = append(m.Content, b.Content[i], b.Content[i+1])
		}
	}
	text, err := yaml.Marshal(&doc)
	return string(text), err
}

// check parses the example and returns why it does not behave as its
// directives say, or nil.
func (e *docExample) check(lookup func(string) (string, bool)) error {
	text := e.yaml
	if e.fragment {
		var err error
		if text, err = complete(text); err != nil {
			return fmt.Errorf("fragment: %w", err)
		}
	}
	f, err := Parse([]byte(text), lookup)
	switch {
	case e.err != "" && err == nil:
		return fmt.Errorf("parsed, want an error containing %q", e.err)
	case e.err != "" && !strings.Contains(err.Error(), e.err):
		return fmt.Errorf("error %q, want one containing %q", err, e.err)
	case e.err != "":
		return nil
	case err != nil:
		return fmt.Errorf("does not parse: %w", err)
	}
	warnings := strings.Join(f.Warnings, "\n")
	switch {
	case e.warning == "" && warnings != "":
		return fmt.Errorf("unexpected warnings:\n%s", warnings)
	case e.warning != "" && !strings.Contains(warnings, e.warning):
		return fmt.Errorf("warnings %q, want one containing %q", warnings, e.warning)
	}
	if f.KeyStore == nil {
		return fmt.Errorf("no key store decoded for %q", f.KeyStoreKind)
	}
	return nil
}

func docsLookup(name string) (string, bool) {
	v, ok := docsEnv[name]
	return v, ok
}

// chdirWithKEKs changes into a new directory holding the KEK files of the
// examples.
func chdirWithKEKs(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for i, name := range docsKEKFiles {
		kek := bytes.Repeat([]byte{byte('a' + i)}, 32)
		if err := os.WriteFile(filepath.Join(dir, name), kek, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
}

func TestDocsExamples(t *testing.T) {
	md, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	examples, err := docExamples(md)
	if err != nil {
		t.Fatalf("%s: %v", docsFile, err)
	}
	// Every fence is found: the extractor cannot skip blocks unnoticed.
	if got, want := len(examples), bytes.Count(md, []byte("```yaml\n")); got != want {
		t.Fatalf("%s: found %d yaml blocks, want %d", docsFile, got, want)
	}
	if len(examples) < 10 {
		t.Fatalf("%s: only %d yaml blocks", docsFile, len(examples))
	}
	chdirWithKEKs(t)
	for _, e := range examples {
		t.Run(fmt.Sprintf("line%d", e.line), func(t *testing.T) {
			if err := e.check(docsLookup); err != nil {
				t.Errorf("%s:%d: %v\n%s", docsFile, e.line, err, e.yaml)
			}
		})
	}
}

// TestDocsExamplesCanFail shows that TestDocsExamples catches broken
// examples: each document here has one block that check must reject.
func TestDocsExamplesCanFail(t *testing.T) {
	tests := []struct {
		name, md string
	}{
		{"syntax", "```yaml\nadmin: [\n```\n"},
		{"invalid complete file", "```yaml\naddress: 0.0.0.0:7373\n```\n"},
		{"invalid fragment", "<!-- fragment -->\n```yaml\ncache:\n  expiry:\n    any: 300\n```\n"},
		{"unknown key", "<!-- fragment -->\n```yaml\ntls:\n  key: a\n  cert: b\n  aut: on\n```\n"},
		{"missing variable", "<!-- fragment -->\n```yaml\nadmin:\n  identity: ${NOT_IN_DOCS_ENV}\n```\n"},
		{"expected error missing", "<!-- fragment; error: required -->\n```yaml\naddress: 127.0.0.1:7373\n```\n"},
		{"other error", "<!-- fragment; error: no keystore -->\n```yaml\naddress: localhost:7373\n```\n"},
		{"expected warning missing", "<!-- fragment; warning: unknown key -->\n```yaml\naddress: 127.0.0.1:7373\n```\n"},
		{"fragment not a mapping", "<!-- fragment -->\n```yaml\n- a\n```\n"},
	}
	chdirWithKEKs(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			examples, err := docExamples([]byte(tt.md))
			if err != nil {
				t.Fatal(err)
			}
			if len(examples) != 1 {
				t.Fatalf("docExamples found %d blocks, want 1", len(examples))
			}
			if err := examples[0].check(docsLookup); err == nil {
				t.Errorf("check(%q) = nil, want an error", examples[0].yaml)
			}
		})
	}
}

func TestDocExamplesMalformed(t *testing.T) {
	t.Parallel()
	for _, md := range []string{
		"<!-- fragmnet -->\n```yaml\na: b\n```\n",
		"<!-- error: -->\n```yaml\na: b\n```\n",
		"```yaml\na: b\n",
	} {
		if _, err := docExamples([]byte(md)); err == nil {
			t.Errorf("docExamples(%q) = nil error, want one", md)
		}
	}
}

func TestDocExamplesDirectives(t *testing.T) {
	t.Parallel()
	md := "text\n<!-- fragment; error: x y -->\n```yaml\na: b\n```\n\n" +
		"<!-- warning: w -->\n```yaml\nc: d\n```\n```text\nnot yaml\n```\n```yaml\ne: f\n```\n"
	got, err := docExamples([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []docExample{
		{line: 3, yaml: "a: b\n", fragment: true, err: "x y"},
		{line: 8, yaml: "c: d\n", warning: "w"},
		{line: 14, yaml: "e: f\n"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("docExamples = %+v, want %+v", got, want)
	}
}
