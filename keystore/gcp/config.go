package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/openkes/keystore"
)

// Kind is the config section of the store, registered by keystore/all.
const Kind = "gcp.secretmanager"

// NewConfig returns an empty Config, for keystore.Register.
func NewConfig() keystore.Config { return new(Config) }

// DefaultTimeout bounds every call to Secret Manager (and every token
// request) when [Config.Timeout] is zero.
const DefaultTimeout = 10 * time.Second

// DefaultScope is the OAuth 2.0 scope requested when [Config.Scopes] is
// empty.
const DefaultScope = "https://www.googleapis.com/auth/cloud-platform"

// Config is the "keystore.gcp.secretmanager" section of the config file,
// with the schema of the original KES server.
type Config struct {
	// ProjectID is the GCP project that holds the secrets. Required.
	ProjectID string `yaml:"project_id"`

	// Endpoint is the Secret Manager gRPC endpoint, "host:port" or
	// "https://host[:port]" (port 443 by default). Empty means Google's
	// endpoint, secretmanager.googleapis.com:443.
	Endpoint string `yaml:"endpoint"`

	// Scopes are the OAuth 2.0 scopes of the access tokens. Empty means
	// DefaultScope.
	Scopes []string `yaml:"scopes"`

	// Credentials are the parts of a service account key. All empty means
	// the ambient credentials of the environment (Application Default
	// Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's credentials,
	// the metadata server of GCE, GKE, Cloud Run, ...).
	Credentials Credentials `yaml:"credentials"`

	// CredentialsJSON, if set, is a service account's JSON key file,
	// used instead of Credentials and of Application Default
	// Credentials. It
	// cannot be set from the config file; it is for programs that embed
	// the store.
	CredentialsJSON keystore.Secret `yaml:"-"`

	// Timeout bounds each call, including the SDK's retries. Zero means
	// DefaultTimeout. (An OpenKES extension; the original has no such
	// field.)
	Timeout time.Duration `yaml:"timeout"`
}

// Credentials is the "credentials" subsection: the fields of a service
// account's JSON key file of the same names. Either all or none must be
// set.
type Credentials struct {
	ClientEmail  string `yaml:"client_email"`
	ClientID     string `yaml:"client_id"`
	PrivateKeyID string `yaml:"private_key_id"`

	// PrivateKey is the PEM private key. Literal two-character "\n"
	// sequences, as in the JSON key file, are turned into newlines.
	PrivateKey keystore.Secret `yaml:"private_key"`
}

// isSet reports whether any credential field is set.
func (c *Credentials) isSet() bool {
	return c.ClientEmail != "" || c.ClientID != "" || c.PrivateKeyID != "" || !c.PrivateKey.IsZero()
}

var _ keystore.Config = (*Config)(nil)

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// Validate reports every problem of the configuration, joined with
// errors.Join, each naming its field relative to the section
// ("project_id: required (...)"), followed in parentheses by the
// original server's message where it has one.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if blank(c.ProjectID) {
		add("project_id", "required (kesconf: invalid GCP secretmanager keystore: no project ID specified)")
	}
	if c.Endpoint != "" {
		if _, err := normalizeEndpoint(c.Endpoint); err != nil {
			add("endpoint", "%v", err)
		}
	}
	for i, s := range c.Scopes {
		if blank(s) {
			add(fmt.Sprintf("scopes[%d]", i), "required")
		}
	}
	if cr := &c.Credentials; cr.isSet() {
		// Partial credentials cannot form a service account key.
		const why = "required (all credentials must be set when one is)"
		if blank(cr.ClientEmail) {
			add("credentials.client_email", why)
		}
		if blank(cr.ClientID) {
			add("credentials.client_id", why)
		}
		if blank(cr.PrivateKeyID) {
			add("credentials.private_key_id", why)
		}
		if blank(cr.PrivateKey.Reveal()) {
			add("credentials.private_key", why)
		}
	}
	if c.Timeout < 0 {
		add("timeout", "invalid duration '%v'", c.Timeout)
	}
	return errors.Join(errs...)
}

// normalizeEndpoint returns the gRPC target "host:port" of an endpoint
// given as "host:port", "host" or "https://host[:port][/]".
func normalizeEndpoint(e string) (string, error) {
	e = strings.TrimSpace(e)
	if strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil {
			return "", fmt.Errorf("invalid URL '%s'", e)
		}
		if u.Scheme != "https" {
			return "", fmt.Errorf("unsupported scheme '%s' in '%s' (use https:// or host:port)", u.Scheme, e)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("'%s' must be https://host[:port] only", u.Redacted())
		}
		e = u.Host
	}
	host, port, err := net.SplitHostPort(e)
	if err != nil {
		// No port: Google's endpoints listen on 443.
		host, port = strings.Trim(e, "[]"), "443"
	}
	if !validHost(host) || !validPort(port) {
		return "", fmt.Errorf("invalid endpoint '%s' (use host:port)", e)
	}
	return net.JoinHostPort(host, port), nil
}

// validHost reports whether h is an IP address or a DNS name.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// validPort reports whether p is a port number 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// serviceAccountJSON returns the service account key file made from
// the configured credentials, as the original server synthesises it.
// The result holds the private key: it must never be logged.
func (c *Credentials) serviceAccountJSON(projectID string) ([]byte, error) {
	key := strings.ReplaceAll(c.PrivateKey.Reveal(), `\n`, "\n")
	return json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  projectID,
		"private_key_id":              c.PrivateKeyID,
		"private_key":                 key,
		"client_email":                c.ClientEmail,
		"client_id":                   c.ClientID,
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   "https://oauth2.googleapis.com/token",
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.QueryEscape(c.ClientEmail),
	})
}

// Connect returns a store for the project, as [New] does.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	return New(ctx, c, log)
}
