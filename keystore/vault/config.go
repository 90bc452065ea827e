package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
)

// NewConfig returns an empty Config, for keystore.Register, which
// keystore/all calls: importing this package registers nothing.
func NewConfig() keystore.Config { return new(Config) }

// Defaults applied by [Config.Connect] and [NewClient] to empty fields.
const (
	DefaultEngine           = "kv"
	DefaultVersion          = "v1"
	DefaultTransitEngine    = "transit"
	DefaultAppRoleEngine    = "approle"
	DefaultKubernetesEngine = "kubernetes"
	DefaultPing             = 10 * time.Second
)

// Config is the "keystore.vault" section of the config file, with the
// schema of the original KES server.
type Config struct {
	// ClientConfig holds the connection settings: endpoint, namespace,
	// authentication, TLS and status probing.
	ClientConfig `yaml:",inline"`

	// Engine is the mount path of the K/V secrets engine. Default "kv".
	Engine string `yaml:"engine"`

	// Version is the K/V engine's API version, "v1" (default) or "v2".
	Version string `yaml:"version"`

	// Prefix is the folder inside the engine that holds the keys, e.g.
	// "tenant-1" or "kes/keys". Leading and trailing slashes are
	// ignored. Empty means the root of the engine.
	Prefix string `yaml:"prefix"`

	// Transit, if its key is set, wraps every value with a Vault transit
	// key before it is stored.
	Transit TransitConfig `yaml:"transit"`
}

// TransitConfig is the "transit" subsection.
type TransitConfig struct {
	Engine string `yaml:"engine"` // mount path; default "transit"
	Key    string `yaml:"key"`    // key name; required if the section is used
}

// ClientConfig is what a [Client] needs to reach and log in to Vault. It
// is embedded in [Config] and can be embedded, with `yaml:",inline"`, in
// the configuration of other Vault users (such as a transit-based
// key-encryption key).
type ClientConfig struct {
	// Endpoint is Vault's base URL, e.g. "https://vault:8200".
	Endpoint string `yaml:"endpoint"`

	// Namespace is sent as X-Vault-Namespace with every data request
	// (Vault Enterprise, OpenBao). Empty means the root namespace.
	Namespace string `yaml:"namespace"`

	// AppRole and Kubernetes are the two authentication methods; exactly
	// one must be configured.
	AppRole    AppRoleConfig    `yaml:"approle"`
	Kubernetes KubernetesConfig `yaml:"kubernetes"`

	// TLS holds the client certificate and the CAs to trust.
	TLS TLSConfig `yaml:"tls"`

	// Status holds the health probing settings.
	Status StatusConfig `yaml:"status"`

	// timing holds the internal time constants; tests shorten them.
	timing timing
}

// AppRoleConfig is the "approle" subsection.
type AppRoleConfig struct {
	// Engine is the mount path of the AppRole auth method below auth/.
	// Default "approle".
	Engine string `yaml:"engine"`

	// Namespace is the namespace to log in to: empty means the store's
	// namespace, "/" the root namespace.
	Namespace string `yaml:"namespace"`

	ID     string          `yaml:"id"`     // the role ID
	Secret keystore.Secret `yaml:"secret"` // the secret ID

	// Retry is accepted for compatibility with the original's sample
	// config and ignored: failed logins are retried with exponential
	// backoff.
	Retry yaml.Node `yaml:"retry"`
}

// KubernetesConfig is the "kubernetes" subsection.
type KubernetesConfig struct {
	// Engine is the mount path of the Kubernetes auth method below
	// auth/. Default "kubernetes".
	Engine string `yaml:"engine"`

	// Namespace is the namespace to log in to, as for AppRole.
	Namespace string `yaml:"namespace"`

	// Role is the Vault role to log in as.
	Role string `yaml:"role"`

	// JWT is the service account token, or, if it contains a path
	// separator, the file holding it, which is read at every login (the
	// kubelet rotates it).
	JWT keystore.Secret `yaml:"jwt"`

	// Retry is accepted and ignored, as for AppRole.
	Retry yaml.Node `yaml:"retry"`
}

// TLSConfig is the "tls" subsection.
type TLSConfig struct {
	Key  string `yaml:"key"`  // client private key file (PEM)
	Cert string `yaml:"cert"` // client certificate file (PEM)
	CA   string `yaml:"ca"`   // CA file or directory, added to the system roots
}

// StatusConfig is the "status" subsection.
type StatusConfig struct {
	// Ping is the interval of the background health probe (sys/health).
	// Default 10 s.
	Ping time.Duration `yaml:"ping"`
}

var _ keystore.Config = (*Config)(nil)

// usesAppRole and usesKubernetes tell which method is configured. A
// method counts as configured when its credentials are set: the
// original's sample config lists both sections with empty values.
func (c *ClientConfig) usesAppRole() bool {
	return c.AppRole.ID != "" || !c.AppRole.Secret.IsZero()
}

func (c *ClientConfig) usesKubernetes() bool {
	return c.Kubernetes.Role != "" || !c.Kubernetes.JWT.IsZero()
}

// isJWTFile reports whether a kubernetes.jwt value names a file.
func isJWTFile(jwt string) bool {
	return strings.ContainsRune(jwt, '/') || strings.ContainsRune(jwt, os.PathSeparator)
}

// blank reports whether s is empty or white space.
func blank(s string) bool { return strings.TrimSpace(s) == "" }

// Validate returns, joined with errors.Join, every problem of the
// connection settings, each naming its field relative to the section
// ("endpoint: required"). A kubernetes.jwt file must be readable.
func (c *ClientConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if blank(c.Endpoint) {
		add("endpoint: required")
	}
	approle, k8s := c.usesAppRole(), c.usesKubernetes()
	switch {
	case approle && k8s:
		add("more than one authentication method specified (approle, kubernetes)")
	case !approle && !k8s:
		add("no authentication method specified (approle or kubernetes)")
	case approle:
		if blank(c.AppRole.ID) {
			add("approle.id: required")
		}
		if blank(c.AppRole.Secret.Reveal()) {
			add("approle.secret: required")
		}
	case k8s:
		if blank(c.Kubernetes.Role) {
			add("kubernetes.role: required")
		}
		jwt := c.Kubernetes.JWT.Reveal()
		if blank(jwt) {
			add("kubernetes.jwt: required")
		} else if isJWTFile(jwt) {
			// Read at every login; check now that it can be read, as
			// the original does.
			if f, err := os.Open(jwt); err != nil {
				add("kubernetes.jwt: %v", err)
			} else {
				f.Close()
			}
		}
	}
	hasKey, hasCert := !blank(c.TLS.Key), !blank(c.TLS.Cert)
	if hasCert && !hasKey {
		add("tls.key: required when tls.cert is set")
	}
	if hasKey && !hasCert {
		add("tls.cert: required when tls.key is set")
	}
	if c.Status.Ping < 0 {
		add("status.ping: invalid duration '%v'", c.Status.Ping)
	}
	return errors.Join(errs...)
}

// Validate returns, joined with errors.Join, every problem of the
// configuration, each naming its field relative to the section (the
// config parser prefixes "keystore.vault."). The messages are those the
// config parser uses for Vault sections when no backend is compiled in.
func (c *Config) Validate() error {
	errs := []error{c.ClientConfig.Validate()}
	switch c.Version {
	case "", "v1", "v2":
	default:
		errs = append(errs, fmt.Errorf("version: invalid engine API version '%s' (use v1 or v2)", c.Version))
	}
	if c.Transit.Engine != "" || c.Transit.Key != "" {
		if blank(c.Transit.Key) {
			errs = append(errs, errors.New("transit.key: required"))
		}
	}
	return errors.Join(errs...)
}

// Connect validates the configuration and returns a [*Store]. It does not
// wait for Vault: the client logs in in the background, and operations
// fail with an error wrapping *[keystore.UnreachableError] until it has.
// Connect fails for configuration problems only: invalid settings, an
// endpoint that is not an http(s) URL, an engine or prefix with "." or
// ".." segments, unreadable TLS files. log receives the client's log
// records (logins, renewals, seal changes); it never sees a token or
// secret. A nil log discards them.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	if err := keystore.Prepare(ctx, "vault", c); err != nil {
		return nil, err
	}
	return connect(c, log)
}
