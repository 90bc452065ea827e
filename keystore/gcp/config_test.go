package gcp

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/gcp/gcptest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestNewConfig: keystore/all registers NewConfig as the section's
// config (its own tests check the registration).
func TestNewConfig(t *testing.T) {
	t.Parallel()
	if c, ok := NewConfig().(*Config); !ok || Kind != "gcp.secretmanager" {
		t.Fatalf("NewConfig() = %T, Kind = %q; want *Config, gcp.secretmanager", c, Kind)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	full := Credentials{ClientEmail: "e", ClientID: "i", PrivateKeyID: "k", PrivateKey: keystore.NewSecret("p")}
	tests := []struct {
		name string
		conf Config
		want []string
	}{
		{name: "minimal", conf: Config{ProjectID: "p"}},
		{name: "credentials", conf: Config{ProjectID: "p", Credentials: full, Endpoint: "https://secretmanager.googleapis.com", Scopes: []string{DefaultScope}}},
		{name: "no-project", conf: Config{}, want: []string{
			"project_id: required (kesconf: invalid GCP secretmanager keystore: no project ID specified)"}},
		{name: "partial-credentials", conf: Config{ProjectID: "p", Credentials: Credentials{ClientEmail: "e"}}, want: []string{
			"credentials.client_id: required (all credentials must be set when one is)",
			"credentials.private_key_id: required (all credentials must be set when one is)",
			"credentials.private_key: required (all credentials must be set when one is)"}},
		{name: "only-private-key", conf: Config{ProjectID: "p", Credentials: Credentials{PrivateKey: keystore.NewSecret("p")}}, want: []string{
			"credentials.client_email: required (all credentials must be set when one is)",
			"credentials.client_id: required (all credentials must be set when one is)",
			"credentials.private_key_id: required (all credentials must be set when one is)"}},
		{name: "http-endpoint", conf: Config{ProjectID: "p", Endpoint: "http://localhost:8080"}, want: []string{
			"endpoint: unsupported scheme 'http' in 'http://localhost:8080' (use https:// or host:port)"}},
		{name: "endpoint-path", conf: Config{ProjectID: "p", Endpoint: "https://host/v1"}, want: []string{
			"endpoint: 'https://host/v1' must be https://host[:port] only"}},
		{name: "blank-scope-negative-timeout", conf: Config{ProjectID: "p", Scopes: []string{" "}, Timeout: -time.Second}, want: []string{
			"scopes[0]: required", "timeout: invalid duration '-1s'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keystoretest.CheckValidate(t, &tt.conf, tt.want)
		})
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"secretmanager.googleapis.com:443":      "secretmanager.googleapis.com:443",
		"secretmanager.googleapis.com":          "secretmanager.googleapis.com:443",
		"https://secretmanager.googleapis.com":  "secretmanager.googleapis.com:443",
		"https://secretmanager.googleapis.com/": "secretmanager.googleapis.com:443",
		"https://127.0.0.1:8443":                "127.0.0.1:8443",
		"[::1]:8443":                            "[::1]:8443",
		" localhost:1 ":                         "localhost:1",
	} {
		if got, err := normalizeEndpoint(in); err != nil || got != want {
			t.Errorf("normalizeEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"http://host", "ftp://host", "https://user@host", "https://", "a b:1", "https://host?x=1"} {
		if got, err := normalizeEndpoint(in); err == nil {
			t.Errorf("normalizeEndpoint(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzNormalizeEndpoint(f *testing.F) {
	for _, s := range []string{"secretmanager.googleapis.com:443", "https://h", "http://h", "[::1]:1", "::", "https://[::1]/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := normalizeEndpoint(in)
		if err != nil {
			return
		}
		again, err := normalizeEndpoint(got)
		if err != nil || again != got {
			t.Fatalf("normalizeEndpoint(%q) = %q, but normalizing that gives %q, %v", in, got, again, err)
		}
	})
}

// TestServiceAccountJSON checks the key file made from the config's
// credentials, as the original synthesises it.
func TestServiceAccountJSON(t *testing.T) {
	t.Parallel()
	c := Credentials{
		ClientEmail:  "kes@my-project.iam.gserviceaccount.com",
		ClientID:     "123",
		PrivateKeyID: "abc",
		PrivateKey:   keystore.NewSecret(`-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\n`),
	}
	b, err := c.serviceAccountJSON("my-project")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"type":                        "service_account",
		"project_id":                  "my-project",
		"private_key_id":              "abc",
		"private_key":                 "-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\n",
		"client_email":                "kes@my-project.iam.gserviceaccount.com",
		"client_id":                   "123",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/kes%40my-project.iam.gserviceaccount.com",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("serviceAccountJSON mismatch (-want +got):\n%s", diff)
	}
}

// TestConfigCredentials connects with credentials from the config file
// (a real RSA key, written with literal \n as in a JSON key file) and
// with a malformed key, whose text must not show up in the error.
func TestConfigCredentials(t *testing.T) {
	t.Parallel()
	ts := gcptest.NewTokenServer(t, time.Hour)
	sa := ts.NewServiceAccount(t, "kes")
	doc := fmt.Sprintf("project_id: p\nendpoint: 127.0.0.1:1\ncredentials:\n  client_email: %s\n  client_id: %q\n  private_key_id: %s\n  private_key: %q\n",
		sa.ClientEmail, sa.ClientID, sa.PrivateKeyID, strings.ReplaceAll(sa.PrivateKeyPEM, "\n", `\n`))
	var conf Config
	if err := yaml.Unmarshal([]byte(doc), &conf); err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), &conf, nil)
	if err != nil {
		t.Fatalf("New with the config's credentials = %v", err)
	}
	s.Close()
	if strings.Contains(fmt.Sprintf("%v %+v %#v", conf, conf, conf), "PRIVATE KEY") {
		t.Error("printing the config shows the private key")
	}

	conf.Credentials.PrivateKey = keystore.NewSecret("not-a-pem-key-SECRETSECRET")
	_, err = New(t.Context(), &conf, nil)
	if err == nil || strings.Contains(err.Error(), "SECRETSECRET") {
		t.Errorf("New with a malformed private key = %v, want an error without the key", err)
	}
}

// TestNoApplicationDefaultCredentials checks the error when the config
// has no credentials and the environment none either.
func TestNoApplicationDefaultCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "missing.json"))
	_, err := New(t.Context(), &Config{ProjectID: "p"}, nil)
	if err == nil || !strings.Contains(err.Error(), "Application Default Credentials") {
		t.Errorf("New without credentials = %v, want an error about Application Default Credentials", err)
	}
}

// TestOmitGCP checks that the kes_omit_gcp build tag drops the SDK from
// the kes binary.
func TestOmitGCP(t *testing.T) {
	t.Parallel()
	deps := func(tags string) string {
		t.Helper()
		return strings.Join(keystoretest.GoList(t, ".", "-deps", "-tags", tags, "github.com/openkes/openkes/cmd/kes"), "\n")
	}
	const sdk = "cloud.google.com/go/secretmanager/apiv1"
	if d := deps(""); !strings.Contains(d, sdk) {
		t.Errorf("the kes binary does not import %s", sdk)
	}
	if d := deps("kes_omit_gcp"); strings.Contains(d, "cloud.google.com/") || strings.Contains(d, "keystore/gcp") {
		t.Errorf("with kes_omit_gcp the kes binary still imports the GCP SDK")
	}
}
