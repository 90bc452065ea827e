package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/keystore/fs"
)

func TestParseKeyStore(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{"KS_PATH": "/var/keys", "KS_NAME": "from-env"})
	tests := []struct {
		name     string
		config   string
		wantKind string
		want     any // the decoded config
		wantWarn []string
	}{
		{name: "only a keystore section", config: fsStore, wantKind: "fs", want: &fs.Config{Path: "/tmp/keys"}},
		{name: "full server config", config: minimal, wantKind: "fs", want: &fs.Config{Path: "/tmp/keys"}},
		{
			name: "rest of the file invalid",
			config: "version: v9\naddress: nowhere\nadmin: {identity: ' '}\ntls: {auth: maybe}\n" +
				"cache: {expiry: {any: -1s, unused: 30}}\nlog: {error: BOGUS}\nkeys: [{name: x}, {name: x}]\n" +
				"api: {/v1/nope: {timeout: soon}}\npolicy: {p: {identities: ['${UNSET}']}}\n" +
				"admin: {identity: twice}\nunknown: 1\n" + fsStore,
			wantKind: "fs", want: &fs.Config{Path: "/tmp/keys"},
		},
		{name: "env reference", config: "keystore: {fs: {path: '${KS_PATH}'}}\n", wantKind: "fs", want: &fs.Config{Path: "/var/keys"}},
		{
			name:     "env reference in an anchor defined elsewhere",
			config:   "x-path: &p ${KS_PATH}\nkeystore:\n  fs:\n    path: *p\n",
			wantKind: "fs", want: &fs.Config{Path: "/var/keys"},
		},
		{
			// As in Parse: policy patterns are never expanded, not even
			// through an alias.
			name:     "anchor in a policy pattern",
			config:   "policy: {p: {allow: [&p '${KS_PATH}']}}\nkeystore: {fs: {path: *p}}\n",
			wantKind: "fs", want: &fs.Config{Path: "${KS_PATH}"},
		},
		{
			name:     "anchor used twice is expanded once",
			config:   "x: &n ${KS_NAME}\nkeystore: {openkes-test: {name: *n, tags: [*n, *n]}}\n",
			wantKind: "openkes-test", want: &fakeConfig{Name: "from-env", Tags: []string{"from-env", "from-env"}},
		},
		{
			name:     "merge key at the top level",
			config:   "base: &b {keystore: {fs: {path: /merged}}}\n<<: *b\n",
			wantKind: "fs", want: &fs.Config{Path: "/merged"},
		},
		{
			name:     "two-part kind",
			config:   "keystore: {openkes: {nested: {name: x, retries: 3}}}\n",
			wantKind: "openkes.nested", want: &fakeConfig{Name: "x", Retries: 3},
		},
		{
			name:     "unknown keys in the section warn",
			config:   "admin: {typo: 1}\nkeystore: {fs: {path: /k, pth: /x}, nosuch: {a: b}}\n",
			wantKind: "fs", want: &fs.Config{Path: "/k"},
			wantWarn: []string{"keystore.nosuch: unknown key store, ignored", "keystore.fs.pth: unknown key, ignored"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, conf, warnings, err := ParseKeyStore([]byte(tt.config), vars)
			if err != nil {
				t.Fatalf("ParseKeyStore() error = %v", err)
			}
			if kind != tt.wantKind {
				t.Errorf("ParseKeyStore() kind = %q, want %q", kind, tt.wantKind)
			}
			if diff := cmp.Diff(tt.want, any(conf)); diff != "" {
				t.Errorf("ParseKeyStore() config mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarn, warnings); diff != "" {
				t.Errorf("ParseKeyStore() warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseKeyStoreErrors(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{"KS_PATH": "/var/keys"})
	tests := []struct {
		name    string
		config  string
		wantErr []string // every line of the error, in order
	}{
		{name: "empty file", config: "", wantErr: []string{"keystore: no keystore specified"}},
		{name: "no keystore", config: adminTLS, wantErr: []string{"keystore: no keystore specified"}},
		{name: "not a mapping", config: "- keystore\n", wantErr: []string{"config: the file must be a YAML mapping, found a list"}},
		{name: "keystore not a mapping", config: "keystore: fs\n", wantErr: []string{"keystore: expected a mapping, found the value 'fs'"}},
		{name: "required field", config: "keystore: {fs: {}}\n", wantErr: []string{"keystore.fs.path: required"}},
		{name: "backend validation", config: "keystore: {openkes-test: {retries: -1}}\n", wantErr: []string{
			"keystore.openkes-test.name: required", "keystore.openkes-test.retries: must not be negative"}},
		{name: "decoding", config: "keystore: {openkes-test: {name: x, timeout: 30}}\n", wantErr: []string{
			"keystore.openkes-test.timeout: invalid duration '30' (a unit is required, e.g. 30s or 5m)"}},
		{name: "two stores", config: "keystore: {fs: {path: /a}, openkes-test: {name: x}}\n", wantErr: []string{
			"keystore: more than one keystore specified (fs, openkes-test)"}},
		{name: "defined twice", config: fsStore + "keystore: {fs: {path: /b}}\n", wantErr: []string{
			"keystore: defined more than once (lines 1 and 2)"}},
		{name: "missing env variable", config: "tls: {key: '${NOPE}'}\nkeystore:\n  fs:\n    path: ${KS_MISSING}\n", wantErr: []string{
			"keystore.fs.path: referenced env. variable 'KS_MISSING' not found (line 4)"}},
		{name: "missing env variable in an anchor", config: "x: &p ${KS_MISSING}\nkeystore: {fs: {path: *p}}\n", wantErr: []string{
			"keystore.fs.path: referenced env. variable 'KS_MISSING' not found (line 1)"}},
		{name: "not built", config: "keystore: {entrust: {keycontrol: {endpoint: https://entrust}}}\n", wantErr: []string{
			"keystore.entrust.keycontrol: not built into this binary (kes_omit_entrust)"}},
		{name: "unsupported and invalid", config: "keystore: {vault: {approle: {id: a, secret: b}}}\n", wantErr: []string{
			"keystore.vault.endpoint: required"}},
		{name: "kes alone", config: "keystore: {kes: {endpoint: [https://127.0.0.1:7373]}}\n", wantErr: []string{
			"keystore: no keystore specified (the kes key store is not supported)"}},
		{name: "self-referencing anchor", config: "keystore: &k {fs: {<<: *k}}\n", wantErr: []string{
			"keystore.fs.path: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, conf, _, err := ParseKeyStore([]byte(tt.config), vars)
			if err == nil {
				t.Fatalf("ParseKeyStore() = %q, %v, want error", kind, conf)
			}
			if diff := cmp.Diff(tt.wantErr, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("ParseKeyStore() error mismatch (-want +got):\n%s", diff)
			}
			if kind != "" || conf != nil {
				t.Errorf("ParseKeyStore() = %q, %v with an error, want zero values", kind, conf)
			}
		})
	}

	t.Run("unsupported error type", func(t *testing.T) {
		t.Parallel()
		_, _, _, err := ParseKeyStore([]byte("keystore: {gemalto: {keysecure: {endpoint: https://gemalto}}}\n"), noEnv)
		var u *UnsupportedKeyStoreError
		if !errors.As(err, &u) || u.Kind != "gemalto.keysecure" || u.Tag != "kes_omit_gemalto" {
			t.Errorf("ParseKeyStore(gemalto) error = %v, want *UnsupportedKeyStoreError for gemalto.keysecure", err)
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		t.Parallel()
		_, _, _, err := ParseKeyStore([]byte("keystore: [\n"), noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), "yaml:") {
			t.Errorf("ParseKeyStore() error = %v, want a yaml error", err)
		}
	})
}

// TestReadKeyStoreMatchesReadFile checks that the key store of every
// valid sample file is read exactly as ReadFile reads it.
func TestReadKeyStoreMatchesReadFile(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sample files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			f, err := ReadFile(file)
			if err != nil {
				t.Fatalf("ReadFile(%s) error = %v", file, err)
			}
			kind, conf, _, err := ReadKeyStore(file)
			if wantErr := f.KeyStoreError(); wantErr != nil {
				if err == nil || err.Error() != wantErr.Error() {
					t.Errorf("ReadKeyStore(%s) error = %v, want %v", file, err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadKeyStore(%s) error = %v", file, err)
			}
			if kind != f.KeyStoreKind {
				t.Errorf("ReadKeyStore(%s) kind = %q, want %q", file, kind, f.KeyStoreKind)
			}
			// Backend configs hold secrets and internal settings in
			// unexported fields; both reads must agree on them too.
			all := cmp.Exporter(func(reflect.Type) bool { return true })
			if diff := cmp.Diff(f.KeyStore, conf, all); diff != "" {
				t.Errorf("ReadKeyStore(%s) config mismatch (-ReadFile +ReadKeyStore):\n%s", file, diff)
			}
		})
	}
}

func TestReadKeyStoreMissing(t *testing.T) {
	t.Parallel()
	if _, _, _, err := ReadKeyStore(filepath.Join(t.TempDir(), "missing.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadKeyStore(missing) error = %v, want ErrNotExist", err)
	}
}

// FuzzParseKeyStore checks that ParseKeyStore never panics and that it
// reads the key store of every file Parse accepts exactly as Parse does.
func FuzzParseKeyStore(f *testing.F) {
	addTestdataSeeds(f)
	f.Add([]byte("keystore: {fs: {path: '${P}'}}\n"))
	f.Add([]byte(adminTLS + "x: &x ${P}\npolicy: {p: {allow: [&a '${P}'], identities: [*x]}}\nkeystore: {openkes-test: {name: *a, tags: [*x]}}\n"))
	f.Add([]byte("b: &b {keystore: {openkes: {nested: {name: n}}}}\n<<: *b\n"))
	f.Add([]byte("keystore: &k {fs: {<<: *k}}\n"))

	lookup := env(map[string]string{"P": "/keys", "EMPTY": ""})
	f.Fuzz(func(t *testing.T, data []byte) {
		kind, conf, _, ksErr := ParseKeyStore(data, lookup)
		if ksErr != nil && (kind != "" || conf != nil) {
			t.Fatalf("ParseKeyStore() = %q, %v and error %v", kind, conf, ksErr)
		}
		if ksErr == nil && (kind == "" || conf == nil) {
			t.Fatalf("ParseKeyStore() = %q, %v without error", kind, conf)
		}
		file, err := Parse(data, lookup)
		if err != nil {
			return
		}
		if wantErr := file.KeyStoreError(); wantErr != nil {
			if ksErr == nil || ksErr.Error() != wantErr.Error() {
				t.Fatalf("ParseKeyStore() error = %v, Parse: %v", ksErr, wantErr)
			}
			return
		}
		if ksErr != nil || kind != file.KeyStoreKind {
			t.Fatalf("ParseKeyStore() = %q, %v; Parse: %q", kind, ksErr, file.KeyStoreKind)
		}
		if diff := cmp.Diff(file.KeyStore, conf, compareFiles); diff != "" {
			t.Fatalf("ParseKeyStore() config mismatch (-Parse +ParseKeyStore):\n%s", diff)
		}
	})
}
