package azure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openkes/openkes/keystore"
)

// Kind is the name under which the key store is registered: the
// keystore.azure.keyvault section of the config file.
const Kind = "azure.keyvault"

// DefaultTimeout bounds every call to Key Vault, SDK retries included.
const DefaultTimeout = 10 * time.Second

// NewConfig returns an empty Config, for keystore.Register.
func NewConfig() keystore.Config { return new(Config) }

// Config is the keystore.azure.keyvault section of the config file, with
// the schema of the original KES server.
type Config struct {
	// Endpoint is the vault's URL, e.g. https://my-vault.vault.azure.net.
	Endpoint string `yaml:"endpoint"`

	// Credentials selects a service principal with a client secret.
	Credentials Credentials `yaml:"credentials"`

	// ManagedIdentity selects a user-assigned managed identity.
	ManagedIdentity ManagedIdentity `yaml:"managed_identity"`

	// internal settings; tests set them.
	opts options
}

// Credentials is the "credentials" subsection: a service principal.
type Credentials struct {
	TenantID     string          `yaml:"tenant_id"`
	ClientID     string          `yaml:"client_id"`
	ClientSecret keystore.Secret `yaml:"client_secret"`
}

// ManagedIdentity is the "managed_identity" subsection.
type ManagedIdentity struct {
	ClientID string `yaml:"client_id"`
}

// options are settings without a config field.
type options struct {
	timeout       time.Duration     // per call; default DefaultTimeout
	transport     http.RoundTripper // nil: the SDK's default
	authorityHost string            // "": AZURE_AUTHORITY_HOST or Azure's public cloud
	backoffMax    time.Duration     // longest wait between failed logins; default 10 s
}

var _ keystore.Config = (*Config)(nil)

func (c *Config) usesCredentials() bool {
	cr := c.Credentials
	return cr.TenantID != "" || cr.ClientID != "" || !cr.ClientSecret.IsZero()
}

func (c *Config) usesManagedIdentity() bool { return c.ManagedIdentity.ClientID != "" }

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// upstream is the prefix of the original server's messages.
const upstream = "kesconf: invalid Azure keyvault keystore: "

// Validate returns, joined with errors.Join, every problem of the
// configuration. Each names its field relative to the section (the config
// parser prefixes "keystore.azure.keyvault.") and ends with the message
// of the original server in parentheses.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, problem, orig string) {
		errs = append(errs, fmt.Errorf("%s: %s (%s%s)", field, problem, upstream, orig))
	}
	if blank(c.Endpoint) {
		add("endpoint", "required", "no endpoint specified")
	} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("endpoint: not an https URL: '%s'", c.Endpoint))
	}
	if c.usesCredentials() {
		if blank(c.Credentials.TenantID) {
			add("credentials.tenant_id", "required", "no tenant ID specified")
		}
		if blank(c.Credentials.ClientID) {
			add("credentials.client_id", "required", "no client ID specified")
		}
		if blank(c.Credentials.ClientSecret.Reveal()) {
			add("credentials.client_secret", "required", "no client secret specified")
		}
		if c.usesManagedIdentity() {
			errs = append(errs, errors.New("credentials and managed_identity are mutually exclusive ("+upstream+"more than one authentication method specified)"))
		}
	}
	return errors.Join(errs...)
}

// Connect validates the configuration and returns a [*Store]. It does not
// contact Key Vault or the identity provider, so it succeeds while they
// are unreachable; operations then fail with an error wrapping
// *[keystore.UnreachableError] until they are back. log receives the
// store's records (failed and recovered logins, purges); it never sees a
// token or secret. A nil log discards them.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	if err := keystore.Prepare(ctx, "azure", c); err != nil {
		return nil, err
	}
	return connect(c, log)
}
