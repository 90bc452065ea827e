package aws

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/openkes/openkes/keystore"
)

// Kind is the config section of the store, keystore.aws.secretsmanager.
const Kind = "aws.secretsmanager"

// DefaultTimeout bounds every call to the service (including the SDK's
// retries) and every status probe. The original server has no timeout;
// 10 s is longer than a healthy call takes by orders of magnitude and
// shorter than the timeouts of the server's routes.
const DefaultTimeout = 10 * time.Second

// CredentialExpiryWindow is how long before their expiry temporary
// credentials (instance role, container, web identity) are renewed at
// the latest, so that no request is signed with credentials that expire
// on the way. Each renewal happens at a random time between half the
// window and the whole window before expiry, so that servers started
// together do not renew together.
const CredentialExpiryWindow = time.Minute

// Config is the "keystore.aws.secretsmanager" section of the config file,
// with the schema of the original KES server.
type Config struct {
	// Endpoint is the Secrets Manager endpoint, e.g.
	// "secretsmanager.us-east-2.amazonaws.com". Without a scheme,
	// https:// is used, as the original does.
	Endpoint string `yaml:"endpoint"`

	// Region is the AWS region, e.g. "us-east-2"; requests are signed
	// for it.
	Region string `yaml:"region"`

	// KMSKey, if set, is the KMS key (key ID, key ARN, alias name or
	// alias ARN) that Secrets Manager encrypts new secrets with. Empty
	// means the account's default key aws/secretsmanager.
	KMSKey string `yaml:"kmskey"`

	// Credentials are static credentials. All empty selects the SDK's
	// default credential chain (see the package documentation).
	Credentials Credentials `yaml:"credentials"`
}

// Credentials is the "credentials" subsection.
type Credentials struct {
	AccessKey string          `yaml:"accesskey"` // access key ID
	SecretKey keystore.Secret `yaml:"secretkey"` // secret access key
	Token     keystore.Secret `yaml:"token"`     // session token of temporary credentials
}

// isSet reports whether static credentials are configured.
func (c *Credentials) isSet() bool {
	return c.AccessKey != "" || !c.SecretKey.IsZero() || !c.Token.IsZero()
}

var _ keystore.Config = (*Config)(nil)

// NewConfig returns an empty Config, for keystore.Register.
func NewConfig() keystore.Config { return new(Config) }

func blank(s string) bool { return strings.TrimSpace(s) == "" }

// Validate returns, joined with errors.Join, every problem of the
// configuration, each naming its field relative to the section (the
// config parser prefixes "keystore.aws.secretsmanager."), followed by the
// original server's message where it has one. It does no I/O.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if blank(c.Endpoint) {
		add("endpoint: required (kesconf: invalid AWS secretsmanager keystore: no endpoint specified)")
	} else if _, err := endpointURL(c.Endpoint); err != nil {
		add("endpoint: %v", err)
	}
	if blank(c.Region) {
		add("region: required (kesconf: invalid AWS secretsmanager keystore: no region specified)")
	}
	if cr := &c.Credentials; cr.isSet() {
		if blank(cr.AccessKey) {
			add("credentials.accesskey: required when credentials are set (leave all credentials empty for the default credential chain)")
		}
		if blank(cr.SecretKey.Reveal()) {
			add("credentials.secretkey: required when credentials are set (leave all credentials empty for the default credential chain)")
		}
	}
	return errors.Join(errs...)
}

// endpointURL returns the base URL of an endpoint: https:// is prepended
// when there is no scheme, and a trailing slash is removed.
func endpointURL(endpoint string) (*url.URL, error) {
	e := strings.TrimSpace(endpoint)
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("invalid URL '%s'", endpoint)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("unsupported scheme '%s' in '%s' (use https)", u.Scheme, endpoint)
	case u.Host == "":
		return nil, fmt.Errorf("missing host in '%s'", endpoint)
	case u.User != nil:
		return nil, fmt.Errorf("'%s' must not contain a user name", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("'%s' must not have a query or fragment", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}
