package vault

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
)

func init() {
	if _, ok := keystore.Lookup("vault"); !ok {
		keystore.Register("vault", NewConfig)
	}
}

// The config parser decodes "keystore.vault" into Config once it is
// registered, as keystore/all does; this test binary registers it here. These tests use the
// config files and the expected messages of the config package's own
// tests for Vault sections without a backend, so both stay the same.

const adminTLS = "admin: {identity: disabled}\ntls: {key: ./k, cert: ./c}\n"

func noEnv(string) (string, bool) { return "", false }

// ignoreRetry leaves the accepted-and-ignored retry settings out of
// comparisons.
var ignoreRetry = cmpopts.IgnoreTypes(yaml.Node{})

// compareConfig compares decoded configs, secrets by value.
func compareConfig(want, got *Config) string {
	return cmp.Diff(want, got, ignoreRetry, cmp.AllowUnexported(ClientConfig{}, timing{}),
		cmp.Comparer(func(a, b keystore.Secret) bool { return a.Reveal() == b.Reveal() }))
}

// k8sConfig is the config of the Kubernetes login files of TestConfigFiles,
// which differ in the JWT only.
func k8sConfig(jwt string) *Config {
	return &Config{
		ClientConfig: ClientConfig{
			Endpoint:   "https://127.0.0.1:8200",
			Namespace:  "ns1",
			Kubernetes: KubernetesConfig{Engine: "kubernetes", Role: "kes", JWT: keystore.NewSecret(jwt)},
			Status:     StatusConfig{Ping: 10 * time.Second},
		},
		Engine:  "kv",
		Version: "v1",
		Prefix:  "tenant-1",
	}
}

func TestConfigFiles(t *testing.T) {
	// Not parallel: t.Chdir, for the relative JWT path of one file.
	t.Chdir("../../config")
	tests := []struct {
		file string
		want *Config
	}{
		{
			file: "vault-approle.yml",
			want: &Config{
				ClientConfig: ClientConfig{
					Endpoint:  "https://127.0.0.1:8200",
					Namespace: "ns1",
					AppRole: AppRoleConfig{
						Engine: "approle",
						ID:     "db02de05-fa39-4855-059b-67221c5c2f63",
						Secret: keystore.NewSecret("6a174c20-f6de-a53c-74d2-6018fcceff64"),
					},
					Status: StatusConfig{Ping: 10 * time.Second},
				},
				Engine:  "kv",
				Version: "v2",
				Prefix:  "tenant-1",
			},
		},
		{file: "vault-k8s.yml", want: k8sConfig("eyJhbGciOiJub25lIn0.eyJzdWIiOiJrZXMtdGVzdCJ9.")},
		{file: "vault-k8s-jwtfile.yml", want: k8sConfig("./testdata/vault-k8s-service-account")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := config.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("ReadFile() = %v", err)
			}
			if len(f.Warnings) != 0 {
				t.Errorf("Warnings = %q, want none", f.Warnings)
			}
			if err := f.KeyStoreError(); err != nil {
				t.Fatalf("KeyStoreError() = %v", err)
			}
			got, ok := f.KeyStore.(*Config)
			if f.KeyStoreKind != "vault" || !ok {
				t.Fatalf("KeyStore = %s %T, want vault *vault.Config", f.KeyStoreKind, f.KeyStore)
			}
			if diff := compareConfig(tt.want, got); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
			// The secret is not printed.
			for _, format := range []string{"%v", "%+v", "%#v"} {
				if s := fmt.Sprintf(format, got); strings.Contains(s, "6a174c20") || strings.Contains(s, "eyJzdWIi") {
					t.Errorf("Sprintf(%q, config) = %s, shows a secret", format, s)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	jwtMissing := filepath.Join(t.TempDir(), "missing-token")
	tests := []struct {
		name    string
		store   string
		wantErr []string
	}{
		{name: "no endpoint, no auth", store: "keystore: {vault: {version: v3}}\n", wantErr: []string{
			"keystore.vault.endpoint: required",
			"keystore.vault.version: invalid engine API version 'v3' (use v1 or v2)",
			"keystore.vault: no authentication method specified (approle or kubernetes)"}},
		{name: "two auth methods", store: "keystore: {vault: {endpoint: e, approle: {id: a}, kubernetes: {jwt: j}}}\n", wantErr: []string{
			"keystore.vault: more than one authentication method specified (approle, kubernetes)"}},
		{name: "approle", store: "keystore: {vault: {endpoint: e, approle: {secret: s}, transit: {engine: t}, tls: {cert: c}, status: {ping: -1s}}}\n", wantErr: []string{
			"keystore.vault.approle.id: required",
			"keystore.vault.transit.key: required",
			"keystore.vault.tls.key: required when tls.cert is set",
			"keystore.vault.status.ping: invalid duration '-1s'"}},
		{name: "kubernetes", store: "keystore: {vault: {endpoint: e, kubernetes: {role: r}, tls: {key: k}}}\n", wantErr: []string{
			"keystore.vault.kubernetes.jwt: required",
			"keystore.vault.tls.cert: required when tls.key is set"}},
		{name: "JWT file missing", store: "keystore: {vault: {endpoint: e, kubernetes: {role: r, jwt: '" + jwtMissing + "'}}}\n", wantErr: []string{
			"keystore.vault.kubernetes.jwt: open " + jwtMissing + ": no such file or directory"}},
		{name: "approle secret", store: "keystore: {vault: {endpoint: e, approle: {id: a, secret: ' '}}}\n", wantErr: []string{
			"keystore.vault.approle.secret: required"}},
		{name: "kubernetes role", store: "keystore: {vault: {endpoint: ' ', kubernetes: {jwt: j}}}\n", wantErr: []string{
			"keystore.vault.endpoint: required",
			"keystore.vault.kubernetes.role: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(adminTLS+tt.store), noEnv)
			keystoretest.CheckErrLines(t, "Parse()", err, tt.wantErr, true)
		})
	}
}

func TestConfigValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		store string
		want  *Config
	}{
		{
			name: "sample with empty auth sections",
			store: "keystore:\n  vault:\n    endpoint: https://v\n    approle: {engine: '', id: a, secret: b, retry: 15s}\n" +
				"    kubernetes: {engine: '', role: '', jwt: '', retry: 15s}\n    transit: {engine: '', key: ''}\n",
			want: &Config{ClientConfig: ClientConfig{Endpoint: "https://v", AppRole: AppRoleConfig{ID: "a", Secret: keystore.NewSecret("b")}}},
		},
		{
			name: "everything",
			store: "keystore:\n  vault:\n    endpoint: https://vault:8200\n    engine: secret/kes\n    version: v2\n    namespace: ns1/ns2\n    prefix: /a/b/\n" +
				"    transit: {engine: tr, key: k}\n    approle: {engine: ar, namespace: /, id: i, secret: s}\n" +
				"    tls: {key: k.pem, cert: c.pem, ca: ca.pem}\n    status: {ping: 3s}\n",
			want: &Config{
				ClientConfig: ClientConfig{
					Endpoint:  "https://vault:8200",
					Namespace: "ns1/ns2",
					AppRole:   AppRoleConfig{Engine: "ar", Namespace: "/", ID: "i", Secret: keystore.NewSecret("s")},
					TLS:       TLSConfig{Key: "k.pem", Cert: "c.pem", CA: "ca.pem"},
					Status:    StatusConfig{Ping: 3 * time.Second},
				},
				Engine:  "secret/kes",
				Version: "v2",
				Prefix:  "/a/b/",
				Transit: TransitConfig{Engine: "tr", Key: "k"},
			},
		},
		{
			name:  "environment",
			store: "keystore:\n  vault:\n    endpoint: ${VAULT_ADDR}\n    approle: {id: '${ROLE_ID}', secret: '${SECRET_ID}'}\n",
			want:  &Config{ClientConfig: ClientConfig{Endpoint: "https://env:8200", AppRole: AppRoleConfig{ID: "env-role", Secret: keystore.NewSecret("env-secret")}}},
		},
	}
	env := map[string]string{"VAULT_ADDR": "https://env:8200", "ROLE_ID": "env-role", "SECRET_ID": "env-secret"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := config.Parse([]byte(adminTLS+tt.store), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if len(f.Warnings) != 0 {
				t.Errorf("Warnings = %q, want none", f.Warnings)
			}
			if diff := compareConfig(tt.want, f.KeyStore.(*Config)); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
