package etcd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []string{"https://127.0.0.1:2379"}
	tests := []struct {
		name string
		conf Config
		want []string
	}{
		{name: "minimal", conf: Config{Endpoints: ok}},
		{name: "full", conf: Config{
			Endpoints: []string{"https://etcd-0:2379", "https://etcd-1:2379/", "https://[::1]:2379"},
			Prefix:    "kes",
			Username:  "kes",
			Password:  keystore.NewSecret("pw"),
			TLS:       TLSConfig{CA: "ca.pem", Cert: "c.pem", Key: "k.pem"},
			Timeout:   time.Second,
		}},
		{name: "http", conf: Config{Endpoints: []string{"http://localhost:2379"}}},
		{name: "empty", conf: Config{}, want: []string{"endpoints: required"}},
		{name: "blank-endpoint", conf: Config{Endpoints: []string{"https://a:1", " ", ""}},
			want: []string{"endpoints[1]: required", "endpoints[2]: required"}},
		{name: "password-without-username", conf: Config{Endpoints: ok, Password: keystore.NewSecret("pw")},
			want: []string{"username: required"}},
		{name: "blank-username", conf: Config{Endpoints: ok, Username: " ", Password: keystore.NewSecret("pw")},
			want: []string{"username: required"}},
		{name: "username-without-password", conf: Config{Endpoints: ok, Username: "kes"},
			want: []string{"password: required"}},
		{name: "cert-without-key", conf: Config{Endpoints: ok, TLS: TLSConfig{Cert: "c.pem"}},
			want: []string{"tls.key: required when tls.cert is set"}},
		{name: "key-without-cert", conf: Config{Endpoints: ok, TLS: TLSConfig{Key: "k.pem"}},
			want: []string{"tls.cert: required when tls.key is set"}},
		{name: "negative-timeout", conf: Config{Endpoints: ok, Timeout: -time.Second},
			want: []string{"timeout: invalid duration '-1s'"}},
		{name: "no-scheme", conf: Config{Endpoints: []string{"127.0.0.1:2379"}},
			want: []string{"endpoints[0]: missing scheme in '127.0.0.1:2379' (use http:// or https://)"}},
		{name: "host-port-no-scheme", conf: Config{Endpoints: []string{"localhost:2379"}},
			want: []string{"endpoints[0]: missing scheme in 'localhost:2379' (use http:// or https://)"}},
		{name: "bad-scheme", conf: Config{Endpoints: []string{"unix://etcd.sock"}},
			want: []string{"endpoints[0]: unsupported scheme 'unix' in 'unix://etcd.sock' (use http or https)"}},
		{name: "bad-url", conf: Config{Endpoints: []string{"https://[::1:2379"}},
			want: []string{"endpoints[0]: invalid URL 'https://[::1:2379'"}},
		{name: "no-host", conf: Config{Endpoints: []string{"https://:2379"}},
			want: []string{"endpoints[0]: missing host in 'https://:2379'"}},
		{name: "no-port", conf: Config{Endpoints: []string{"https://etcd"}},
			want: []string{"endpoints[0]: missing port in 'https://etcd' (etcd listens on 2379 by default)"}},
		{name: "user-in-url", conf: Config{Endpoints: []string{"https://kes:secret@etcd:2379"}},
			want: []string{"endpoints[0]: 'https://kes:xxxxx@etcd:2379' must not contain a user name (use username and password)"}},
		{name: "path", conf: Config{Endpoints: []string{"https://etcd:2379/v3"}},
			want: []string{"endpoints[0]: 'https://etcd:2379/v3' must be scheme://host:port only"}},
		{name: "mixed-schemes", conf: Config{Endpoints: []string{"https://a:2379", "http://b:2379"}},
			want: []string{"endpoints[1]: scheme 'http' differs from 'https' of the other endpoints (use one scheme for all)"}},
		{name: "tls-with-http", conf: Config{Endpoints: []string{"http://a:2379"}, TLS: TLSConfig{CA: "ca.pem"}},
			want: []string{"endpoints[0]: 'http://a:2379' does not use TLS, but tls is configured (use https://)"}},
		{name: "everything-wrong", conf: Config{
			Endpoints: []string{""},
			Password:  keystore.NewSecret("pw"),
			TLS:       TLSConfig{Cert: "c.pem"},
			Timeout:   -time.Minute,
		}, want: []string{
			"endpoints[0]: required",
			"username: required",
			"tls.key: required when tls.cert is set",
			"timeout: invalid duration '-1m0s'",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := keystoretest.CheckValidate(t, &tt.conf, tt.want); err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Validate() = %q, reveals the password", err)
			}
		})
	}
}

func TestNormalizePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "", "kes": "kes/", "kes/": "kes/", "/kes": "/kes/", "/": "/", "a/b": "a/b/"} {
		if got := normalizePrefix(in); got != want {
			t.Errorf("normalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// The config parser decodes "keystore.etcd" into Config once it is
// registered, as keystore/all does; this test binary registers it here.
func init() {
	if _, ok := keystore.Lookup("etcd"); !ok {
		keystore.Register("etcd", NewConfig)
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	if _, ok := NewConfig().(*Config); !ok {
		t.Fatalf("NewConfig() = %T, want *etcd.Config", NewConfig())
	}
}

// TestConfigFile reads a complete config file through the config package
// and checks that the etcd section arrives in a Config. It sets an
// environment variable, so it does not run in parallel.
func TestConfigFile(t *testing.T) {
	const file = `version: v1
address: 0.0.0.0:7373
admin:
  identity: disabled
tls:
  key: ./private.key
  cert: ./public.crt
keystore:
  etcd:
    endpoints:
    - https://etcd-0:2379
    - https://etcd-1:2379
    prefix: kes
    username: kes
    password: ${ETCD_TEST_PASSWORD}
    tls:
      ca: /etc/etcd/ca.pem
      cert: /etc/kes/etcd.pem
      key: /etc/kes/etcd.key
    timeout: 5s
`
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ETCD_TEST_PASSWORD", "s3cret")
	f, err := config.ReadFile(path)
	if err != nil {
		t.Fatalf("config.ReadFile() = %v, want nil", err)
	}
	if f.KeyStoreKind != "etcd" {
		t.Fatalf("KeyStoreKind = %q, want %q", f.KeyStoreKind, "etcd")
	}
	got, ok := f.KeyStore.(*Config)
	if !ok {
		t.Fatalf("KeyStore = %T, want *etcd.Config", f.KeyStore)
	}
	want := &Config{
		Endpoints: []string{"https://etcd-0:2379", "https://etcd-1:2379"},
		Prefix:    "kes",
		Username:  "kes",
		Password:  keystore.NewSecret("s3cret"),
		TLS:       TLSConfig{CA: "/etc/etcd/ca.pem", Cert: "/etc/kes/etcd.pem", Key: "/etc/kes/etcd.key"},
		Timeout:   5 * time.Second,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b keystore.Secret) bool { return a.Reveal() == b.Reveal() })); diff != "" {
		t.Errorf("KeyStore mismatch (-want +got):\n%s", diff)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", f.Warnings)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, got); strings.Contains(s, "s3cret") {
			t.Errorf("Sprintf(%q, config) = %s, reveals the password", format, s)
		}
	}
}

// TestConfigFileErrors checks that Validate's messages arrive with the
// section's path.
func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	const file = `admin: {identity: disabled}
tls: {key: ./k, cert: ./c}
keystore:
  etcd:
    endpoints: ["", "etcd:2379"]
    username: kes
    tls: {cert: ./c.pem}
    timeout: -1s
`
	_, err := config.Parse([]byte(file), func(string) (string, bool) { return "", false })
	want := []string{
		"keystore.etcd.endpoints[0]: required",
		"keystore.etcd.endpoints[1]: missing scheme in 'etcd:2379' (use http:// or https://)",
		"keystore.etcd.password: required",
		"keystore.etcd.tls.key: required when tls.cert is set",
		"keystore.etcd.timeout: invalid duration '-1s'",
	}
	if diff := cmp.Diff(want, keystoretest.ErrorLines(err)); diff != "" {
		t.Errorf("config.Parse() errors mismatch (-want +got):\n%s", diff)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	t.Parallel()
	_, err := New(t.Context(), &Config{Endpoints: []string{"etcd:2379"}}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "etcd: invalid config: endpoints[0]: missing scheme") {
		t.Fatalf("New() = %v, want an error about the missing scheme", err)
	}
	_, err = New(t.Context(), &Config{Endpoints: []string{"https://127.0.0.1:2379"}, TLS: TLSConfig{CA: filepath.Join(t.TempDir(), "missing.pem")}}, nil)
	if err == nil || !strings.Contains(err.Error(), "tls.ca") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New() with a missing CA file = %v, want an error about tls.ca", err)
	}
}
