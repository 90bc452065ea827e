package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/etcd"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/vault"
	"github.com/openkes/openkes/server"
)

// fakeConfig is a backend config registered for the tests under the kinds
// "openkes-test" and "openkes.nested". It has fields of the types yaml.v3
// decodes for this package (int) next to those this package decodes.
type fakeConfig struct {
	Name    string        `yaml:"name"`
	Retries int           `yaml:"retries"`
	Enabled bool          `yaml:"enabled"`
	Timeout time.Duration `yaml:"timeout"`
	Tags    []string      `yaml:"tags"`
}

func (c *fakeConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if c.Retries < 0 {
		errs = append(errs, errors.New("retries: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *fakeConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return nil, errors.New("fake key store")
}

// The tests register the fake and, as keystore/all does, the fs, vault
// and etcd backends, which validate their own sections. The other
// sections of the original server have no backend in this test binary.
func init() {
	keystore.Register("openkes-test", func() keystore.Config { return new(fakeConfig) })
	keystore.Register("openkes.nested", func() keystore.Config { return new(fakeConfig) })
	keystore.Register("fs", fs.NewConfig)
	keystore.Register("vault", vault.NewConfig)
	keystore.Register("etcd", etcd.NewConfig)
}

// env returns a lookup function for the given variables.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func noEnv(string) (string, bool) { return "", false }

// Building blocks of the configs in the tables.
const (
	adminTLS = "admin: {identity: disabled}\ntls: {key: ./k, cert: ./c}\n"
	fsStore  = "keystore: {fs: {path: /tmp/keys}}\n"
	minimal  = adminTLS + fsStore
)

// compareFiles compares Files including the unexported fields of the
// backend configs (secrets, timings).
var compareFiles = cmp.Exporter(func(reflect.Type) bool { return true })

func TestParseFull(t *testing.T) {
	t.Parallel()
	f, err := ReadFile("testdata/full.yml")
	if err != nil {
		t.Fatalf("ReadFile() error = %v", err)
	}
	want := &File{
		Addr:  "127.0.0.1:7373",
		Admin: "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
		TLS: TLS{
			KeyFile:         "./private.key",
			CertFile:        "./public.crt",
			Auth:            true,
			CAFile:          "./ca/",
			ProxyIdentities: []string{"0e2f9c1a4fd8e0c2a36e12a0d4f0b3bc7d3a8a2b3a46a6f0f1c1e2d3c4b5a697"},
			ProxyCertHeader: "X-Tls-Client-Cert",
		},
		Policies: map[string]server.Policy{
			"minio": {
				Allow: []string{
					"/v1/key/create/minio-*", "/v1/key/generate/minio-*", "/v1/key/decrypt/minio-*",
					"/v1/key/list/*", "/v1/status", "/v1/metrics",
				},
				Deny:       []string{"/v1/key/generate/minio-internal*"},
				Identities: []string{"7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1"},
			},
			"monitoring": {
				Allow:      []string{"/v1/metrics"},
				Identities: []string{"9c5a1ba8f0a07a1bbd0ea77ce42ed7e1dcc5d56f2c07862a1be68bd5b2e2fb8d"},
			},
		},
		Cache: server.CacheConfig{Any: 10 * time.Minute, Unused: time.Minute, Offline: 2 * time.Hour},
		Routes: map[string]server.RouteConfig{
			"/v1/ready":   {Timeout: 5 * time.Second, SkipAuth: true},
			"/v1/metrics": {Timeout: 20 * time.Second},
		},
		ErrorLevel:   slog.LevelInfo,
		AuditLevel:   slog.LevelError + 1,
		Keys:         []string{"minio-default-key", "backup-key"},
		KeyStoreKind: "fs",
		KeyStore:     &fs.Config{Path: "/var/lib/kes/keys"},
	}
	if diff := cmp.Diff(want, f, compareFiles); diff != "" {
		t.Errorf("ReadFile(full.yml) mismatch (-want +got):\n%s", diff)
	}
	if err := f.KeyStoreError(); err != nil {
		t.Errorf("KeyStoreError() = %v, want nil", err)
	}
}

// TestReadFileUpstream covers the cases of the original server's config
// tests (upstream's config tests).
func TestReadFileUpstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		check func(t *testing.T, f *File)
	}{
		{
			name: "fs",
			file: "fs.yml",
			check: func(t *testing.T, f *File) {
				if c, ok := f.KeyStore.(*fs.Config); !ok || c.Path != "/tmp/keys" || f.KeyStoreKind != "fs" {
					t.Errorf("KeyStore = %s %#v, want fs /tmp/keys", f.KeyStoreKind, f.KeyStore)
				}
			},
		},
		{
			name: "custom API",
			file: "custom-api.yml",
			check: func(t *testing.T, f *File) {
				if f.Admin != "disabled" {
					t.Errorf("Admin = %q, want disabled", f.Admin)
				}
				want := map[string]server.RouteConfig{
					"/v1/status":  {Timeout: 17 * time.Second, SkipAuth: true},
					"/v1/metrics": {Timeout: 22 * time.Second, SkipAuth: true},
				}
				if diff := cmp.Diff(want, f.Routes); diff != "" {
					t.Errorf("Routes mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "vault approle",
			file: "vault-approle.yml",
			check: func(t *testing.T, f *File) {
				v := f.KeyStore.(*vault.Config)
				got := []string{v.Endpoint, v.Engine, v.Version, v.Namespace, v.Prefix, v.AppRole.Engine, v.AppRole.ID, v.AppRole.Secret.Reveal()}
				want := []string{"https://127.0.0.1:8200", "kv", "v2", "ns1", "tenant-1", "approle",
					"db02de05-fa39-4855-059b-67221c5c2f63", "6a174c20-f6de-a53c-74d2-6018fcceff64"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("vault config mismatch (-want +got):\n%s", diff)
				}
				if v.Status.Ping != 10*time.Second {
					t.Errorf("status.ping = %v, want 10s", v.Status.Ping)
				}
			},
		},
		{
			name: "vault kubernetes",
			file: "vault-k8s.yml",
			check: func(t *testing.T, f *File) {
				v := f.KeyStore.(*vault.Config)
				got := []string{v.Endpoint, v.Kubernetes.Engine, v.Kubernetes.Role, v.Kubernetes.JWT.Reveal()}
				want := []string{"https://127.0.0.1:8200", "kubernetes", "kes", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJrZXMtdGVzdCJ9."}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("vault config mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "vault kubernetes JWT file",
			file: "vault-k8s-jwtfile.yml",
			check: func(t *testing.T, f *File) {
				// The path is kept: the token is read at every login.
				if jwt := f.KeyStore.(*vault.Config).Kubernetes.JWT.Reveal(); jwt != "./testdata/vault-k8s-service-account" {
					t.Errorf("kubernetes.jwt = %q, want the file path", jwt)
				}
			},
		},
		{
			// The AWS section is decoded and checked by its backend,
			// which keystore/all registers unless kes_omit_aws.
			name:  "aws",
			file:  "aws.yml",
			check: checkAWS,
		},
		{
			name:  "aws without credentials",
			file:  "aws-no-credentials.yml",
			check: checkAWS,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("ReadFile(%s) error = %v", tt.file, err)
			}
			if len(f.Warnings) != 0 {
				t.Errorf("Warnings = %q, want none", f.Warnings)
			}
			tt.check(t, f)
		})
	}
}

func TestReadFileMissing(t *testing.T) {
	t.Parallel()
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v, want ErrNotExist", err)
	}
}

// checkAWS checks a file with an AWS SecretsManager section: its
// backend has the config, or, when it is not built in, the file reports
// so.
func checkAWS(t *testing.T, f *File) {
	t.Helper()
	if f.KeyStoreKind != "aws.secretsmanager" {
		t.Errorf("KeyStoreKind = %q, want aws.secretsmanager", f.KeyStoreKind)
	}
	if _, ok := keystore.Lookup("aws.secretsmanager"); ok {
		if f.KeyStore == nil || f.KeyStoreError() != nil {
			t.Errorf("KeyStore = %v, KeyStoreError() = %v; want a config", f.KeyStore, f.KeyStoreError())
		}
		return
	}
	const want = "keystore.aws.secretsmanager: not built into this binary (kes_omit_aws)"
	if err := f.KeyStoreError(); err == nil || err.Error() != want {
		t.Errorf("KeyStoreError() = %v, want %q", err, want)
	}
}

func TestKeyStoreError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		store   string
		kind    string
		wantErr string
	}{
		{name: "registered", store: fsStore, kind: "fs"},
		{name: "vault", store: "keystore: {vault: {endpoint: https://vault:8200, approle: {id: a, secret: b}}}\n", kind: "vault"},
		{name: "etcd", store: "keystore: {etcd: {endpoints: [http://127.0.0.1:2379]}}\n", kind: "etcd"},
		{name: "not built", store: "keystore: {entrust: {keycontrol: {endpoint: e}}}\n", kind: "entrust.keycontrol",
			wantErr: "keystore.entrust.keycontrol: not built into this binary (kes_omit_entrust)"},
		{name: "registered two-part kind", store: "keystore: {openkes: {nested: {name: x}}}\n", kind: "openkes.nested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, adminTLS+tt.store)
			if f.KeyStoreKind != tt.kind {
				t.Errorf("KeyStoreKind = %q, want %q", f.KeyStoreKind, tt.kind)
			}
			err := f.KeyStoreError()
			if tt.wantErr == "" {
				if err != nil || f.KeyStore == nil {
					t.Errorf("KeyStoreError() = %v, KeyStore = %v; want nil and a config", err, f.KeyStore)
				}
				return
			}
			var u *UnsupportedKeyStoreError
			if err == nil || err.Error() != tt.wantErr || !errors.As(err, &u) || u.Kind != tt.kind {
				t.Errorf("KeyStoreError() = %v, want %q", err, tt.wantErr)
			}
			if f.KeyStore != nil {
				t.Errorf("KeyStore = %v, want nil", f.KeyStore)
			}
		})
	}
	if err := (&File{}).KeyStoreError(); err == nil {
		t.Error("KeyStoreError() of an empty File = nil, want error")
	}
}

// TestNotBuilt covers every section of the original server: a section
// whose backend is not built into the binary is reported by
// KeyStoreError with the build tag that left it out, and is not decoded
// here (only its backend knows its fields), except that it must be a
// mapping.
func TestNotBuilt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, section, tag string
	}{
		{"fs", "fs", "kes_omit_fs"},
		{"vault", "vault", "kes_omit_vault"},
		{"etcd", "etcd", "kes_omit_etcd"},
		{"aws.secretsmanager", "aws: {secretsmanager", "kes_omit_aws"},
		{"gcp.secretmanager", "gcp: {secretmanager", "kes_omit_gcp"},
		{"azure.keyvault", "azure: {keyvault", "kes_omit_azure"},
		{"gemalto.keysecure", "gemalto: {keysecure", "kes_omit_gemalto"},
		{"fortanix.sdkms", "fortanix: {sdkms", "kes_omit_fortanix"},
		{"entrust.keycontrol", "entrust: {keycontrol", "kes_omit_entrust"},
	}
	if len(tests) != len(storeKinds)-1 {
		t.Errorf("%d kinds tested, want every kind of storeKinds but kes (%d)", len(tests), len(storeKinds)-1)
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			want := "keystore." + tt.kind + ": not built into this binary (" + tt.tag + ")"
			if got := (&File{KeyStoreKind: tt.kind}).KeyStoreError(); got == nil || got.Error() != want {
				t.Errorf("KeyStoreError() = %v, want %q", got, want)
			}
			if _, ok := keystore.Lookup(tt.kind); ok {
				return // built into this test binary: decoded by its backend
			}
			closing := strings.Repeat("}", strings.Count(tt.section, "{"))
			f := mustParse(t, adminTLS+"keystore: {"+tt.section+": {any_field: x, endpoint: [a]}"+closing+"}\n")
			var u *UnsupportedKeyStoreError
			if err := f.KeyStoreError(); !errors.As(err, &u) || err.Error() != want || u.Tag != tt.tag || u.Name != storeName(tt.kind) {
				t.Errorf("KeyStoreError() = %v, want %q", err, want)
			}
			if f.KeyStoreKind != tt.kind || f.KeyStore != nil || len(f.Warnings) != 0 {
				t.Errorf("KeyStoreKind = %q, KeyStore = %v, Warnings = %q; want %s, nil, none", f.KeyStoreKind, f.KeyStore, f.Warnings, tt.kind)
			}
			_, err := Parse([]byte(adminTLS+"keystore: {"+tt.section+": x"+closing+"}\n"), noEnv)
			if want := "keystore." + tt.kind + ": expected a mapping, found the value 'x'"; err == nil || err.Error() != want {
				t.Errorf("Parse() of a scalar section = %v, want %q", err, want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{
		"ADMIN":   "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
		"EMPTY":   "",
		"NULL":    "null",
		"ANY":     "90s",
		"SECONDS": "300",
		"YES":     "yes",
		"TRUE":    "true",
		"N":       "3",
		"KEY":     "./server.key",
		"AUTH":    "on",
		"ADDR":    "127.0.0.1:7000",
		"LEVEL":   "WARN",
		"ID":      "7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1",
		"PATTERN": "/v1/key/create/*",
		"KEYNAME": "my-key",
		"PATH":    "/var/keys",
	})
	tests := []struct {
		name    string
		config  string
		check   func(t *testing.T, f *File)
		wantErr []string
	}{
		{
			name:   "present",
			config: "admin:\n  identity: ${ADMIN}\ntls:\n  key: ${KEY}\n  cert: ./c\n  auth: ${AUTH}\naddress: ${ADDR}\n" + fsStore,
			check: func(t *testing.T, f *File) {
				got := []any{f.Admin, f.TLS.KeyFile, f.TLS.Auth, f.Addr}
				want := []any{"3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", "./server.key", true, "127.0.0.1:7000"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "white space around the reference and the name",
			config: "admin: {identity: '  ${ ADMIN }  '}\ntls: {key: ./k, cert: ./c}\n" + fsStore,
			check: func(t *testing.T, f *File) {
				if f.Admin != "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22" {
					t.Errorf("Admin = %q", f.Admin)
				}
			},
		},
		{
			name:    "missing",
			config:  "admin:\n  identity: ${NOPE}\ntls: {key: ./k, cert: ./c}\n" + fsStore,
			wantErr: []string{"admin.identity: referenced env. variable 'NOPE' not found (line 2)"},
		},
		{
			name:   "missing in lists and keystore, all reported",
			config: adminTLS + "keys:\n- name: a\n- name: '${NOPE1}'\npolicy:\n  p:\n    identities: ['${NOPE2}']\nkeystore:\n  openkes-test:\n    name: '${NOPE3}'\n",
			wantErr: []string{
				"keys[1].name: referenced env. variable 'NOPE1' not found (line 5)",
				"policy.p.identities[0]: referenced env. variable 'NOPE2' not found (line 8)",
				"keystore.openkes-test.name: referenced env. variable 'NOPE3' not found (line 11)",
			},
		},
		{
			name:   "empty but set is fine",
			config: "admin: {identity: disabled}\ntls: {key: ./k, cert: ./c, password: '${EMPTY}'}\npolicy:\n  p:\n    identities: ['${ID}', '${EMPTY}', '']\n" + fsStore,
			check: func(t *testing.T, f *File) {
				if f.TLS.Password != "" {
					t.Errorf("Password = %q, want empty", f.TLS.Password)
				}
				if diff := cmp.Diff([]string{"7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1"}, f.Policies["p"].Identities); diff != "" {
					t.Errorf("identities mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "values that look like null or bool stay strings",
			config: "admin: {identity: '${NULL}'}\ntls: {key: '${TRUE}', cert: '${N}'}\n" + fsStore,
			check: func(t *testing.T, f *File) {
				got := []string{f.Admin, f.TLS.KeyFile, f.TLS.CertFile}
				if diff := cmp.Diff([]string{"null", "true", "3"}, got); diff != "" {
					t.Errorf("mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:   "partial interpolation stays literal",
			config: "admin:\n  identity: pre-${ADMIN}\ntls:\n  key: ${KEY}-old\n  cert: ./c\n" + fsStore,
			check: func(t *testing.T, f *File) {
				if f.Admin != "pre-${ADMIN}" || f.TLS.KeyFile != "${KEY}-old" {
					t.Errorf("Admin, KeyFile = %q, %q; want them literal", f.Admin, f.TLS.KeyFile)
				}
			},
		},
		{
			name: "typed fields",
			config: adminTLS + "cache: {expiry: {any: '${ANY}'}}\napi:\n  /v1/ready: {skip_auth: '${YES}', timeout: '${ANY}'}\n" +
				"log: {error: '${LEVEL}'}\nkeys: [{name: '${KEYNAME}'}]\n" +
				"keystore:\n  openkes-test: {name: '${PATH}', retries: '${N}', enabled: '${TRUE}', timeout: '${ANY}', tags: ['${KEYNAME}']}\n",
			check: func(t *testing.T, f *File) {
				if f.Cache.Any != 90*time.Second {
					t.Errorf("Cache.Any = %v, want 90s", f.Cache.Any)
				}
				if r := f.Routes["/v1/ready"]; !r.SkipAuth || r.Timeout != 90*time.Second {
					t.Errorf("Routes[/v1/ready] = %+v, want skip_auth and 90s", r)
				}
				if f.ErrorLevel != slog.LevelWarn {
					t.Errorf("ErrorLevel = %v, want WARN", f.ErrorLevel)
				}
				if diff := cmp.Diff([]string{"my-key"}, f.Keys); diff != "" {
					t.Errorf("Keys mismatch (-want +got):\n%s", diff)
				}
				want := &fakeConfig{Name: "/var/keys", Retries: 3, Enabled: true, Timeout: 90 * time.Second, Tags: []string{"my-key"}}
				if diff := cmp.Diff(want, f.KeyStore); diff != "" {
					t.Errorf("KeyStore mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "a number is not a duration, also via env",
			config:  minimal + "cache: {expiry: {any: '${SECONDS}'}}\n",
			wantErr: []string{"cache.expiry.any: invalid duration '300' (a unit is required"},
		},
		{
			name:   "policy patterns are not expanded",
			config: minimal + "policy:\n  p:\n    allow: ['${PATTERN}']\n    deny: ['${NOPE}']\n    identities: ['${ID}']\n",
			check: func(t *testing.T, f *File) {
				p := f.Policies["p"]
				if diff := cmp.Diff(server.Policy{
					Allow:      []string{"${PATTERN}"},
					Deny:       []string{"${NOPE}"},
					Identities: []string{"7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1"},
				}, p); diff != "" {
					t.Errorf("policy mismatch (-want +got):\n%s", diff)
				}
				if len(f.Warnings) != 2 {
					t.Errorf("Warnings = %q, want one per pattern", f.Warnings)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tt.config), vars)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Parse() succeeded, want errors %q", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Parse() error =\n%v\nwant it to contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			tt.check(t, f)
		})
	}
}

// TestValidation checks each error message. Every config is valid except
// for the listed problems, and wantErr lists every line of the error.
func TestValidation(t *testing.T) {
	t.Parallel()
	jwtMissing := filepath.Join(t.TempDir(), "missing-token")
	tests := []struct {
		name    string
		config  string
		wantErr []string
	}{
		{name: "empty file", config: "", wantErr: []string{
			"admin.identity: required", "tls.key: required", "tls.cert: required", "keystore: no keystore specified"}},
		{name: "version", config: "version: v2\n" + minimal, wantErr: []string{"version: invalid server config version 'v2'"}},
		{name: "host name", config: "address: localhost:7373\n" + minimal, wantErr: []string{"address: 'localhost' is not a valid IP address"}},
		{name: "no port", config: "address: 127.0.0.1\n" + minimal, wantErr: []string{"address: invalid address '127.0.0.1': use [ip]:port"}},
		{name: "bad port", config: "address: ':http'\n" + minimal, wantErr: []string{"address: invalid port 'http' in address ':http'"}},
		{name: "admin and tls", config: "admin: {identity: ' '}\ntls: {auth: x}\n" + fsStore, wantErr: []string{
			"admin.identity: required", "tls.key: required", "tls.cert: required", "tls.auth: invalid value 'x' (use on or off)"}},
		{name: "cache", config: minimal + "cache: {expiry: {any: -1s, unused: 30, offline: soon}}\n", wantErr: []string{
			"cache.expiry.any: invalid duration '-1s'",
			"cache.expiry.unused: invalid duration '30' (a unit is required, e.g. 30s or 5m)",
			"cache.expiry.offline: invalid duration 'soon'"}},
		{name: "api", config: minimal + "api:\n  /v1/ready: {timeout: -1s}\n  /v1/key/create/: {skip_auth: true}\n  /v1/status: {skip_auth: maybe}\n", wantErr: []string{
			"api./v1/status.skip_auth: invalid boolean 'maybe' (use true or false)",
			"api./v1/key/create/.skip_auth: skip_auth is only allowed for [/v1/ready /v1/status /v1/metrics /v1/api]",
			"api./v1/ready.timeout: invalid timeout '-1s'"}},
		{name: "keys", config: minimal + "keys: [{name: a}, {name: x}, {name: x}, {name: 'bad key'}]\n", wantErr: []string{
			"keys[2].name: key 'x' is defined multiple times",
			"keys[3].name: key name 'bad key' is empty, too long or contains invalid characters"}},
		{name: "limits", config: minimal + "limits: {connections: -1, unauthenticated_connections: -2, log_streams: -3}\n", wantErr: []string{
			"limits.connections: invalid value '-1' (use 0 for the default, or more)",
			"limits.unauthenticated_connections: invalid value '-2' (use 0 for the default, or more)",
			"limits.log_streams: invalid value '-3' (use 0 for the default, or more)"}},
		{name: "limits not numbers", config: minimal + "limits: {connections: many}\n", wantErr: []string{"limits.connections: line 4: cannot unmarshal !!str `many` into int"}},
		{name: "log levels", config: minimal + "log: {error: BOGUS, audit: WARN+x}\n", wantErr: []string{
			"log.error: invalid log level 'BOGUS'", "log.audit: invalid log level 'WARN+x'"}},
		{name: "audit file empty", config: minimal + "log: {audit_file: ' '}\n", wantErr: []string{
			"log.audit_file: empty path (remove the setting to write no audit file)"}},
		{name: "audit file directory", config: minimal + "log: {audit_file: /var/log/, audit_sync: sometimes}\n", wantErr: []string{
			"log.audit_sync: invalid boolean 'sometimes' (use true or false)",
			"log.audit_file: '/var/log/' is a directory, not a file"}},
		{name: "policies", config: "admin: {identity: root-id}\ntls: {key: ./k, cert: ./c, proxy: {identities: [root-id, id-b, '', proxy]}}\n" + fsStore +
			"policy:\n  a:\n    identities: [id-a, '', root-id]\n  b:\n    identities: [id-a, id-b]\n  bad.name:\n    identities: [bad/id]\n", wantErr: []string{
			"policy.a.identities[2]: identity 'root-id' is the admin identity and cannot be assigned to a policy",
			"policy.b.identities[0]: identity 'id-a' is assigned to both policy 'a' and policy 'b'",
			"policy.bad.name: policy name 'bad.name' is empty, too long or contains invalid characters",
			"policy.bad.name.identities[0]: identity 'bad/id' is empty, too long or contains invalid characters",
			"tls.proxy.identities[0]: identity 'root-id' is the admin identity and cannot be a TLS proxy",
			"tls.proxy.identities[1]: identity 'id-b' is assigned to policy 'b' and cannot be a TLS proxy"}},
		{name: "no keystore", config: adminTLS, wantErr: []string{"keystore: no keystore specified"}},
		{name: "empty keystore", config: adminTLS + "keystore:\n", wantErr: []string{"keystore: no keystore specified"}},
		{name: "only unknown keystore", config: adminTLS + "keystore: {fss: {path: x}}\n", wantErr: []string{"keystore: no keystore specified"}},
		{name: "only kes", config: adminTLS + "keystore: {kes: {endpoint: [https://127.0.0.1:7373]}}\n", wantErr: []string{
			"keystore: no keystore specified (the kes key store is not supported)"}},
		{name: "two keystores", config: adminTLS + "keystore:\n  fs: {path: /tmp}\n  vault: {endpoint: https://v, approle: {id: a, secret: b}}\n", wantErr: []string{
			"keystore: more than one keystore specified (fs, vault)"}},
		{name: "two keystores, both reported", config: adminTLS + "keystore:\n  openkes-test: {retries: 1}\n  vault: {approle: {id: a, secret: b}}\n", wantErr: []string{
			"keystore: more than one keystore specified (openkes-test, vault)",
			"keystore.openkes-test.name: required",
			"keystore.vault.endpoint: required"}},
		{name: "registered backend", config: adminTLS + "keystore: {fs: {path: ''}}\n", wantErr: []string{"keystore.fs.path: required"}},
		{name: "registered backend, several", config: adminTLS + "keystore: {openkes-test: {retries: -1}}\n", wantErr: []string{
			"keystore.openkes-test.name: required", "keystore.openkes-test.retries: must not be negative"}},
		{name: "registered backend, type error", config: adminTLS + "keystore: {openkes-test: {name: x, retries: many}}\n", wantErr: []string{
			"keystore.openkes-test.retries: line 3: cannot unmarshal !!str `many` into int"}},
		{name: "vault no endpoint, no auth", config: adminTLS + "keystore: {vault: {version: v3}}\n", wantErr: []string{
			"keystore.vault.endpoint: required",
			"keystore.vault.version: invalid engine API version 'v3' (use v1 or v2)",
			"keystore.vault: no authentication method specified (approle or kubernetes)"}},
		{name: "vault two auth methods", config: adminTLS + "keystore: {vault: {endpoint: e, approle: {id: a}, kubernetes: {jwt: j}}}\n", wantErr: []string{
			"keystore.vault: more than one authentication method specified (approle, kubernetes)"}},
		{name: "vault approle", config: adminTLS + "keystore: {vault: {endpoint: e, approle: {secret: s}, transit: {engine: t}, tls: {cert: c}, status: {ping: -1s}}}\n", wantErr: []string{
			"keystore.vault.approle.id: required",
			"keystore.vault.transit.key: required",
			"keystore.vault.tls.key: required when tls.cert is set",
			"keystore.vault.status.ping: invalid duration '-1s'"}},
		{name: "vault kubernetes", config: adminTLS + "keystore: {vault: {endpoint: e, kubernetes: {role: r}, tls: {key: k}}}\n", wantErr: []string{
			"keystore.vault.kubernetes.jwt: required",
			"keystore.vault.tls.cert: required when tls.key is set"}},
		{name: "vault JWT file missing", config: adminTLS + "keystore: {vault: {endpoint: e, kubernetes: {role: r, jwt: '" + jwtMissing + "'}}}\n", wantErr: []string{
			"keystore.vault.kubernetes.jwt: open " + jwtMissing + ": no such file or directory"}},
		{name: "etcd", config: adminTLS + "keystore: {etcd: {endpoints: [''], password: p, tls: {cert: c}, timeout: -1s}}\n", wantErr: []string{
			"keystore.etcd.endpoints[0]: required",
			"keystore.etcd.username: required",
			"keystore.etcd.tls.key: required when tls.cert is set",
			"keystore.etcd.timeout: invalid duration '-1s'"}},
		{name: "etcd no endpoints", config: adminTLS + "keystore: {etcd: {prefix: kes/}}\n", wantErr: []string{"keystore.etcd.endpoints: required"}},
		{name: "wrong types", config: "admin: [a]\ntls: x\nkeys: {name: a}\npolicy: {p: {allow: /v1/status}}\n" + fsStore, wantErr: []string{
			"admin: expected a mapping, found a list",
			"tls: expected a mapping, found the value 'x'",
			"policy.p.allow: expected a list, found the value '/v1/status'",
			"keys: expected a list, found a mapping"}},
		{name: "duplicate keys", config: minimal + "log: {error: INFO}\nlog: {audit: INFO}\n", wantErr: []string{
			"log: defined more than once (lines 4 and 5)"}},
		{name: "not a mapping", config: "- a\n- b\n", wantErr: []string{"config: the file must be a YAML mapping, found a list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tt.config), noEnv)
			if err == nil {
				t.Fatalf("Parse() = %+v, want errors %q", f, tt.wantErr)
			}
			if f != nil {
				t.Errorf("Parse() returned a File with an error")
			}
			got := strings.Split(err.Error(), "\n")
			if diff := cmp.Diff(tt.wantErr, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("Parse() errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string
		check  func(t *testing.T, f *File)
	}{
		{name: "ipv6 address", config: "address: '[::1]:7373'\n" + minimal, check: func(t *testing.T, f *File) {
			if f.Addr != "[::1]:7373" {
				t.Errorf("Addr = %q", f.Addr)
			}
		}},
		{name: "default address", config: minimal, check: func(t *testing.T, f *File) {
			if f.Addr != DefaultAddr {
				t.Errorf("Addr = %q, want %q", f.Addr, DefaultAddr)
			}
		}},
		{name: "port only", config: "address: :7373\n" + minimal, check: func(t *testing.T, f *File) {
			if f.Addr != ":7373" {
				t.Errorf("Addr = %q", f.Addr)
			}
		}},
		{name: "tls auth spelled differently", config: "admin: {identity: x}\ntls: {key: k, cert: c, auth: ' ON '}\n" + fsStore, check: func(t *testing.T, f *File) {
			if !f.TLS.Auth {
				t.Error("TLS.Auth = false, want true")
			}
		}},
		{name: "kes is ignored next to another store", config: minimal[:len(minimal)-2] + ", kes: {endpoint: [https://a]}}\n", check: func(t *testing.T, f *File) {
			if f.KeyStoreKind != "fs" {
				t.Errorf("KeyStoreKind = %q, want fs", f.KeyStoreKind)
			}
			if diff := cmp.Diff([]string{"keystore.kes: the KES key store is not supported, ignored"}, f.Warnings); diff != "" {
				t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
			}
		}},
		{name: "version null", config: "version:\n" + minimal, check: func(*testing.T, *File) {}},
		{name: "vault sample with empty auth sections", config: adminTLS +
			"keystore:\n  vault:\n    endpoint: https://v\n    approle: {engine: '', id: a, secret: b, retry: 15s}\n    kubernetes: {engine: '', role: '', jwt: '', retry: 15s}\n    transit: {engine: '', key: ''}\n",
			check: func(t *testing.T, f *File) {
				if len(f.Warnings) != 0 {
					t.Errorf("Warnings = %q, want none", f.Warnings)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, tt.config)
			tt.check(t, f)
		})
	}
}

func TestSeveralProblemsTogether(t *testing.T) {
	t.Parallel()
	config := "version: v0\naddress: kes.example:7373\ntls: {auth: maybe}\n" +
		"cache: {expiry: {unused: -5s}}\nlog: {error: LOUD}\nkeys: [{name: k}, {name: k}]\n" +
		"keystore:\n  fs: {path: /a}\n  vault: {endpoint: https://v}\n"
	_, err := Parse([]byte(config), noEnv)
	if err == nil {
		t.Fatal("Parse() succeeded, want errors")
	}
	want := []string{
		"version: invalid server config version 'v0'",
		"address: 'kes.example' is not a valid IP address",
		"admin.identity: required",
		"tls.key: required",
		"tls.cert: required",
		"tls.auth: invalid value 'maybe' (use on or off)",
		"cache.expiry.unused: invalid duration '-5s'",
		"log.error: invalid log level 'LOUD'",
		"keys[1].name: key 'k' is defined multiple times",
		"keystore: more than one keystore specified (fs, vault)",
		"keystore.vault: no authentication method specified (approle or kubernetes)",
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("Parse() errors mismatch (-want +got):\n%s", diff)
	}
}

func TestLegacyRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		config    string
		wantAdmin string
		wantWarn  string
	}{
		{name: "root only", config: "root: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", wantAdmin: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", wantWarn: "root: deprecated, use admin.identity"},
		{name: "both", config: "root: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nadmin: {identity: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb}\n", wantAdmin: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", wantWarn: "root: ignored because admin.identity is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, tt.config+"tls: {key: k, cert: c}\n"+fsStore)
			if f.Admin != tt.wantAdmin {
				t.Errorf("Admin = %q, want %q", f.Admin, tt.wantAdmin)
			}
			if diff := cmp.Diff([]string{tt.wantWarn}, f.Warnings); diff != "" {
				t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	t.Parallel()
	config := "admin: {identity: disabled, name: y}\ntls: {key: k, cert: c, ciphers: [a]}\nfoo: 1\n" +
		"policy:\n  p: {allow: [/v1/status], allwo: [/v1/api]}\napi:\n  /v1/status: {skip: true}\n" +
		"keystore:\n  fs: {path: /tmp, mode: 0700}\n  aws: {kms: {}}\n  mem: {}\n"
	f := mustParse(t, config)
	want := []string{
		"admin.name: unknown key, ignored",
		"tls.ciphers: unknown key, ignored",
		"foo: unknown key, ignored",
		"policy.p.allwo: unknown key, ignored",
		"api./v1/status.skip: unknown key, ignored",
		"keystore.aws.kms: unknown key store, ignored",
		"keystore.mem: unknown key store, ignored",
		"keystore.fs.mode: unknown key, ignored",
	}
	if diff := cmp.Diff(want, f.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestAPIPathWarnings(t *testing.T) {
	t.Parallel()
	config := minimal + "api:\n  /v1/status: {timeout: 1s}\n  /v1/key/create: {timeout: 1s}\n  /v1/foo: {timeout: 1s}\n  /v1/key/create/: {timeout: 1s}\n"
	f := mustParse(t, config)
	want := []string{
		"api./v1/foo: unknown API path, ignored",
		"api./v1/key/create: unknown API path, ignored (did you mean '/v1/key/create/'?)",
	}
	if diff := cmp.Diff(want, f.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
	if len(f.Routes) != 4 {
		t.Errorf("Routes = %v, want all four entries", f.Routes)
	}
}

func TestPatternWarnings(t *testing.T) {
	t.Parallel()
	config := minimal + "policy:\n  p:\n    allow: [/v1/key/create/*, '*', v1/key/list/*, '']\n    deny: [key/delete]\n"
	f := mustParse(t, config)
	want := []string{
		`policy.p.allow[2]: pattern "v1/key/list/*" never matches: it must start with '/' or '*'`,
		"policy.p.allow[3]: empty pattern never matches",
		`policy.p.deny[0]: pattern "key/delete" never matches: it must start with '/' or '*'`,
	}
	if diff := cmp.Diff(want, f.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
}

func TestCacheDefaults(t *testing.T) {
	t.Parallel()
	def := server.DefaultCacheConfig
	tests := []struct {
		name  string
		cache string
		want  server.CacheConfig
	}{
		{name: "absent", cache: "", want: def},
		{name: "empty section", cache: "cache:\n", want: def},
		{name: "null values", cache: "cache: {expiry: {any: , unused: ~}}\n", want: def},
		{name: "only any", cache: "cache: {expiry: {any: 1m}}\n", want: server.CacheConfig{Any: time.Minute, Unused: def.Unused}},
		{name: "only unused", cache: "cache: {expiry: {unused: 10s}}\n", want: server.CacheConfig{Any: def.Any, Unused: 10 * time.Second}},
		{name: "explicit zero disables", cache: "cache: {expiry: {any: 0s, unused: 0s, offline: 0s}}\n", want: server.CacheConfig{}},
		{name: "all set", cache: "cache: {expiry: {any: 1h, unused: 2m, offline: 3h}}\n", want: server.CacheConfig{Any: time.Hour, Unused: 2 * time.Minute, Offline: 3 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, minimal+tt.cache)
			if f.Cache != tt.want {
				t.Errorf("Cache = %+v, want %+v", f.Cache, tt.want)
			}
		})
	}
}

func TestBooleans(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value string
		want  bool
	}{
		{"true", true}, {"True", true}, {"yes", true}, {"on", true}, {"Y", true}, {"'true'", true},
		{"false", false}, {"no", false}, {"off", false}, {"OFF", false}, {"", false},
	} {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, minimal+"api: {/v1/ready: {skip_auth: "+tt.value+"}}\n")
			if got := f.Routes["/v1/ready"].SkipAuth; got != tt.want {
				t.Errorf("skip_auth: %s = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{in: "", want: slog.LevelInfo},
		{in: "  ", want: slog.LevelInfo},
		{in: "on", want: slog.LevelInfo},
		{in: "ON", want: slog.LevelInfo},
		{in: "off", want: slog.LevelError + 1},
		{in: "debug", want: slog.LevelDebug},
		{in: " INFO ", want: slog.LevelInfo},
		{in: "Warn", want: slog.LevelWarn},
		{in: "ERROR", want: slog.LevelError},
		{in: "WARN+2", want: slog.LevelWarn + 2},
		{in: "error-1", want: slog.LevelError - 1},
		{in: "-4", want: slog.LevelDebug},
		{in: "12", want: 12},
		{in: "BOGUS", wantErr: true},
		{in: "WARNING", wantErr: true},
		{in: "INFO+", wantErr: true},
		{in: "true", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLevel(tt.in)
			if tt.wantErr {
				if err == nil || err.Error() != "invalid log level '"+strings.TrimSpace(tt.in)+"'" {
					t.Errorf("ParseLevel(%q) = %v, %v; want invalid log level error", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestYAMLFeatures(t *testing.T) {
	t.Parallel()
	t.Run("anchors and merge keys", func(t *testing.T) {
		t.Parallel()
		config := adminTLS + fsStore +
			"x-common: &common {allow: [/v1/status], deny: [/v1/api]}\n" +
			"x-id: &id 7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1\n" +
			"policy:\n  a:\n    <<: *common\n    deny: [/v1/metrics]\n    identities: [*id]\n"
		f := mustParse(t, config)
		want := server.Policy{
			Allow:      []string{"/v1/status"},
			Deny:       []string{"/v1/metrics"},
			Identities: []string{"7ec8095a5308a535b72b35d7ccd4ce1a7c2baf5fd6e5ce0e5ec4e5c74b2e9ea1"},
		}
		if diff := cmp.Diff(want, f.Policies["a"]); diff != "" {
			t.Errorf("policy mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		t.Parallel()
		// Each level merges ten copies of the previous one: 10^9 entries
		// if expanded naively.
		var b strings.Builder
		b.WriteString(minimal + "a0: &a0 {allow: [/v1/status]}\n")
		for i := 1; i < 10; i++ {
			fmt.Fprintf(&b, "a%d: &a%d {<<: [", i, i)
			for j := range 10 {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "*a%d", i-1)
			}
			b.WriteString("]}\n")
		}
		b.WriteString("policy: {p: {<<: *a9}}\n")
		_, err := Parse([]byte(b.String()), noEnv)
		if err == nil || !strings.Contains(err.Error(), "too many aliases") {
			t.Fatalf("Parse(alias bomb) error = %v, want too many aliases", err)
		}
	})
	t.Run("self-referencing anchor", func(t *testing.T) {
		t.Parallel()
		_, err := Parse([]byte(minimal+"policy: &p {<<: *p}\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Fatalf("Parse() error = %v, want nested too deeply", err)
		}
	})
	t.Run("syntax error", func(t *testing.T) {
		t.Parallel()
		_, err := Parse([]byte("admin: [\n"), noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), "yaml:") {
			t.Fatalf("Parse() error = %v, want a yaml error", err)
		}
	})
}

func TestServerConfig(t *testing.T) {
	t.Parallel()
	f, err := ReadFile("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := server.TLSConfig{
		VerifyClients:  true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil },
	}
	store := nopStore{}
	got := f.ServerConfig(store, tlsConf)
	want := &server.Config{
		Admin:    f.Admin,
		Policies: f.Policies,
		Keys:     f.Keys,
		Store:    store,
		Cache:    f.Cache,
		Routes:   f.Routes,
		TLS:      tlsConf,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(server.Config{}, "Store", "TLS")); diff != "" {
		t.Errorf("ServerConfig() mismatch (-want +got):\n%s", diff)
	}
	if got.Store != store || !got.TLS.VerifyClients {
		t.Errorf("ServerConfig() did not use the given store and TLS config")
	}
	if err := got.Validate(); err != nil {
		t.Errorf("ServerConfig().Validate() = %v", err)
	}
	// The result does not share memory with f.
	got.Keys[0] = "changed"
	got.Policies["minio"].Allow[0] = "changed"
	got.Routes["/v1/ready"] = server.RouteConfig{}
	if f.Keys[0] == "changed" || f.Policies["minio"].Allow[0] == "changed" || f.Routes["/v1/ready"] == (server.RouteConfig{}) {
		t.Error("ServerConfig() result shares memory with the File")
	}
}

func TestEnvRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		name   string
		wantOK bool
	}{
		{in: "${X}", name: "X", wantOK: true},
		{in: "  ${ X }\t", name: "X", wantOK: true},
		{in: "${}", name: "", wantOK: true},
		{in: "pre-${X}", wantOK: false},
		{in: "${X}-post", wantOK: false},
		{in: "$X", wantOK: false},
		{in: "{X}", wantOK: false},
		{in: "${", wantOK: false},
		{in: "", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			name, ok := envRef(tt.in)
			if ok != tt.wantOK || name != tt.name {
				t.Errorf("envRef(%q) = %q, %v; want %q, %v", tt.in, name, ok, tt.name, tt.wantOK)
			}
		})
	}
}

// TestOverrides checks that command-line overrides replace file settings
// before validation, so they can stand in for missing ones.
func TestOverrides(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	data := "policy:\n  app:\n    identities: [" + strings.Repeat("b", 64) + "]\nkeystore:\n  fs:\n    path: " + dir + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "admin.identity: required") || !strings.Contains(err.Error(), "tls.key: required") {
		t.Fatalf("ReadFile without overrides: err = %v, want admin.identity and tls.key required", err)
	}
	f, err := ReadFile(path, Overrides{Admin: strings.Repeat("a", 64), KeyFile: "k.pem", CertFile: "c.pem", Auth: "on", Addr: "127.0.0.1:7000"})
	if err != nil {
		t.Fatalf("ReadFile with overrides: %v", err)
	}
	if f.Admin != strings.Repeat("a", 64) || f.TLS.KeyFile != "k.pem" || f.TLS.CertFile != "c.pem" || !f.TLS.Auth || f.Addr != "127.0.0.1:7000" {
		t.Errorf("ReadFile with overrides = %+v", f)
	}
	// The admin override is validated like the file's value.
	if _, err := ReadFile(path, Overrides{Admin: strings.Repeat("b", 64), KeyFile: "k", CertFile: "c"}); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("admin override that is in a policy: err = %v, want an error", err)
	}
	if _, err := ReadFile(path, Overrides{Admin: strings.Repeat("a", 64), KeyFile: "k", CertFile: "c", Addr: "localhost:1"}); err == nil || !strings.Contains(err.Error(), "address") {
		t.Errorf("addr override with a host name: err = %v, want an address error", err)
	}
}

// TestAuditFile checks log.audit_file and log.audit_sync: not set, set,
// set through ${VAR}, and an empty ${VAR}, which is an error rather than
// a silent "no audit file".
func TestAuditFile(t *testing.T) {
	t.Parallel()
	env := func(name string) (string, bool) {
		switch name {
		case "AUDIT_FILE":
			return "/var/log/kes/audit.jsonl", true
		case "EMPTY":
			return "", true
		case "SYNC":
			return "yes", true
		}
		return "", false
	}
	tests := []struct {
		name     string
		log      string
		wantFile string
		wantSync bool
		wantErr  string
	}{
		{name: "not set", log: ""},
		{name: "null", log: "log: {audit_file: }\n"},
		{name: "path", log: "log: {audit_file: ' ./audit.log ', audit_sync: true}\n", wantFile: "./audit.log", wantSync: true},
		{name: "env", log: "log:\n  audit_file: ${AUDIT_FILE}\n  audit_sync: ${SYNC}\n", wantFile: "/var/log/kes/audit.jsonl", wantSync: true},
		{name: "empty env", log: "log: {audit_file: '${EMPTY}'}\n", wantErr: "log.audit_file: empty path (remove the setting to write no audit file)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(minimal+tt.log), env)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Parse() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if f.AuditFile != tt.wantFile || f.AuditSync != tt.wantSync {
				t.Errorf("Parse() AuditFile, AuditSync = %q, %v, want %q, %v", f.AuditFile, f.AuditSync, tt.wantFile, tt.wantSync)
			}
			if len(f.Warnings) > 0 {
				t.Errorf("Parse() Warnings = %q, want none", f.Warnings)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		limits   string
		want     server.Limits
		warnings []string
	}{
		{name: "absent", limits: "", want: server.Limits{}},
		{name: "empty section", limits: "limits:\n", want: server.Limits{}},
		{name: "all set", limits: "limits: {connections: 1000, unauthenticated_connections: 50, log_streams: 4}\n",
			want: server.Limits{Connections: 1000, UnauthenticatedConnections: 50, LogStreams: 4}},
		{name: "budget above cap", limits: "limits: {connections: 10, unauthenticated_connections: 50}\n",
			want:     server.Limits{Connections: 10, UnauthenticatedConnections: 50},
			warnings: []string{"limits.unauthenticated_connections: 50 is more than limits.connections (10): at most 10 apply"}},
		{name: "unknown key", limits: "limits: {streams: 3}\n", want: server.Limits{},
			warnings: []string{"limits.streams: unknown key, ignored"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := mustParse(t, minimal+tt.limits)
			if f.Limits != tt.want {
				t.Errorf("Limits = %+v, want %+v", f.Limits, tt.want)
			}
			if diff := cmp.Diff(tt.warnings, f.Warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Warnings (-want +got):\n%s", diff)
			}
			if got := f.ServerConfig(nil, server.TLSConfig{}).Limits; got != tt.want {
				t.Errorf("ServerConfig().Limits = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// mustParse parses config without environment variables and fails t on
// an error.
func mustParse(t *testing.T, config string) *File {
	t.Helper()
	f, err := Parse([]byte(config), noEnv)
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	return f
}
