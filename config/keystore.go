package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
)

// storeKind describes a key store section that this package knows even if
// no backend is registered for it, so that a config written for the
// original server is parsed and checked completely.
type storeKind struct {
	name   string        // display name, as in the original's banner
	mirror func() mirror // checks the section when no backend is registered
}

// mirror is the private image of a keystore section of the original
// server, used when no backend for the kind is compiled in.
type mirror interface {
	validate(p *problems, path string)
}

// storeKinds lists the sections the original server understands (plus
// etcd), by the dotted name under "keystore".
var storeKinds = map[string]storeKind{
	"fs":                 {"Filesystem", func() mirror { return new(fsMirror) }},
	"vault":              {"Hashicorp Vault", func() mirror { return new(vaultMirror) }},
	"etcd":               {"etcd", func() mirror { return new(etcdMirror) }},
	"fortanix.sdkms":     {"Fortanix SDKMS", func() mirror { return new(fortanixMirror) }},
	"gemalto.keysecure":  {"Gemalto KeySecure", func() mirror { return new(gemaltoMirror) }},
	"gcp.secretmanager":  {"GCP SecretManager", func() mirror { return new(gcpMirror) }},
	"aws.secretsmanager": {"AWS SecretsManager", func() mirror { return new(awsMirror) }},
	"azure.keyvault":     {"Azure KeyVault", func() mirror { return new(azureMirror) }},
	"entrust.keycontrol": {"Entrust KeyControl", func() mirror { return new(entrustMirror) }},
	"kes":                {"KES", func() mirror { return new(kesMirror) }},
}

// unsupportedKind is a section the original server parses but does not
// implement: it never counts as a key store (see parseKeyStore).
const unsupportedKind = "kes"

// known reports whether kind names a key store section, registered or
// known from the original server.
func known(kind string) bool {
	if _, ok := storeKinds[kind]; ok {
		return true
	}
	_, ok := keystore.Lookup(kind)
	return ok
}

// isGroup reports whether key is the first part of a two-part kind such
// as "aws" in "aws.secretsmanager".
func isGroup(key string) bool {
	for kind := range storeKinds {
		if strings.HasPrefix(kind, key+".") {
			return true
		}
	}
	for _, kind := range keystore.Kinds() {
		if strings.HasPrefix(kind, key+".") {
			return true
		}
	}
	return false
}

// storeName returns the display name of kind.
func storeName(kind string) string {
	if k, ok := storeKinds[kind]; ok {
		return k.name
	}
	return kind
}

// UnsupportedKeyStoreError is returned by [File.KeyStoreError] for a key
// store section that was parsed and validated, but whose backend is not
// compiled into this program.
type UnsupportedKeyStoreError struct {
	Kind string // the section, e.g. "aws.secretsmanager"
	Name string // the display name, e.g. "AWS SecretsManager"
}

func (e *UnsupportedKeyStoreError) Error() string {
	return fmt.Sprintf("keystore.%s: the %s key store is not supported by this build of OpenKES yet", e.Kind, e.Name)
}

// section is one key store section found under "keystore".
type section struct {
	kind string
	node *yaml.Node
}

// parseKeyStore finds the key store sections under "keystore", checks
// that there is exactly one, and decodes and validates it. It returns the
// kind and, if a backend is registered for it, its decoded Config, else
// the decoded mirror.
func (d *decoder) parseKeyStore(n *yaml.Node) (kind string, conf keystore.Config, m mirror) {
	const path = "keystore"
	n = resolve(n)
	if isNull(n) {
		d.add(path, "no keystore specified")
		return "", nil, nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, found %s", kindName(n))
		return "", nil, nil
	}
	var found []section
	for _, p := range d.pairs(n, path) {
		switch {
		case known(p.key):
			found = append(found, section{p.key, p.value})
		case isGroup(p.key):
			v := resolve(p.value)
			if isNull(v) {
				d.warn(join(path, p.key), "empty, ignored")
				continue
			}
			if v.Kind != yaml.MappingNode {
				d.fail(join(path, p.key), "expected a mapping, found %s", kindName(v))
				continue
			}
			for _, sub := range d.pairs(v, join(path, p.key)) {
				if kind := p.key + "." + sub.key; known(kind) {
					found = append(found, section{kind, sub.value})
				} else {
					d.warn(join(path, kind), "unknown key store, ignored")
				}
			}
		default:
			d.warn(join(path, p.key), "unknown key store, ignored")
		}
	}

	// Like the original, a "kes" section is accepted but does not count as
	// a key store: with another store it is ignored, alone it is "no
	// keystore specified".
	var ignored bool
	if _, ok := keystore.Lookup(unsupportedKind); !ok {
		found = slices.DeleteFunc(found, func(s section) bool {
			if s.kind != unsupportedKind {
				return false
			}
			d.decodeMirror(s, storeKinds[s.kind].mirror())
			d.warn(join(path, s.kind), "the KES key store is not supported, ignored")
			ignored = true
			return true
		})
	}
	switch len(found) {
	case 0:
		if ignored {
			d.add(path, "no keystore specified (the kes key store is not supported)")
		} else {
			d.add(path, "no keystore specified")
		}
		return "", nil, nil
	case 1:
	default:
		kinds := make([]string, len(found))
		for i, s := range found {
			kinds[i] = s.kind
		}
		d.add(path, "more than one keystore specified (%s)", strings.Join(kinds, ", "))
	}
	for _, s := range found {
		c, m := d.decodeSection(s)
		if len(found) == 1 {
			return s.kind, c, m
		}
	}
	return "", nil, nil
}

// decodeSection decodes and validates one key store section, into the
// registered Config if there is one, else into the mirror.
func (d *decoder) decodeSection(s section) (keystore.Config, mirror) {
	path := join("keystore", s.kind)
	newConfig, ok := keystore.Lookup(s.kind)
	if !ok {
		m := storeKinds[s.kind].mirror()
		d.decodeMirror(s, m)
		return nil, m
	}
	conf := newConfig()
	v := reflect.ValueOf(conf)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("config: keystore.Register(%q): the config must be a non-nil pointer, got %T", s.kind, conf))
	}
	d.decode(s.node, path, v.Elem())
	if d.hasFailed(path) {
		return conf, nil // Validate would only repeat the decoding errors
	}
	if err := conf.Validate(); err != nil {
		for _, e := range unjoin(err) {
			d.addBackend(path, e)
		}
	}
	return conf, nil
}

// decodeMirror decodes and validates a section without a backend.
func (d *decoder) decodeMirror(s section, m mirror) {
	path := join("keystore", s.kind)
	d.decode(s.node, path, reflect.ValueOf(m).Elem())
	m.validate(d.problems, path)
}

// unjoin returns the errors joined in err by errors.Join, or err itself.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// addBackend records an error of a backend's Validate. Backends name the
// field relative to their section ("path: required"), so joining with "."
// yields "keystore.fs.path: required"; other messages are joined with
// ": ".
func (p *problems) addBackend(path string, err error) {
	msg := err.Error()
	if field, rest, ok := strings.Cut(msg, ": "); ok && isFieldPath(field) {
		p.add(join(path, field), "%s", rest)
		return
	}
	p.add(path, "%s", msg)
}

// isFieldPath reports whether s looks like a dotted field path such as
// "tls.cert" or "endpoints[0]".
func isFieldPath(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("_-.[]", c):
		default:
			return false
		}
	}
	return true
}

// ignored is a field accepted for compatibility with the original
// server's sample config, whose value is not used (for example
// "approle.retry"). Declaring it keeps such configs free of warnings.
type ignored = yaml.Node

// tlsClientMirror is the "tls" subsection of most backends.
type tlsClientMirror struct {
	Key  string `yaml:"key"`
	Cert string `yaml:"cert"`
	CA   string `yaml:"ca"`
}

// validate checks that a client certificate and its key come together.
func (t *tlsClientMirror) validate(p *problems, path string) {
	hasKey, hasCert := strings.TrimSpace(t.Key) != "", strings.TrimSpace(t.Cert) != ""
	if hasCert && !hasKey {
		p.add(join(path, "key"), "required when tls.cert is set")
	}
	if hasKey && !hasCert {
		p.add(join(path, "cert"), "required when tls.key is set")
	}
}

// caMirror is the "tls" subsection of backends that take only a CA.
type caMirror struct {
	CA string `yaml:"ca"`
}

type fsMirror struct {
	Path string  `yaml:"path"`
	Seal ignored `yaml:"seal"` // checked by the backend
}

func (c *fsMirror) validate(p *problems, path string) {
	p.required(join(path, "path"), c.Path)
}

type vaultMirror struct {
	Endpoint  string `yaml:"endpoint"`
	Engine    string `yaml:"engine"`
	Version   string `yaml:"version"`
	Namespace string `yaml:"namespace"`
	Prefix    string `yaml:"prefix"`
	Transit   struct {
		Engine string `yaml:"engine"`
		Key    string `yaml:"key"`
	} `yaml:"transit"`
	AppRole struct {
		Engine    string  `yaml:"engine"`
		Namespace string  `yaml:"namespace"`
		ID        string  `yaml:"id"`
		Secret    string  `yaml:"secret"`
		Retry     ignored `yaml:"retry"`
	} `yaml:"approle"`
	Kubernetes struct {
		Engine    string  `yaml:"engine"`
		Namespace string  `yaml:"namespace"`
		Role      string  `yaml:"role"`
		JWT       string  `yaml:"jwt"`
		Retry     ignored `yaml:"retry"`
	} `yaml:"kubernetes"`
	TLS    tlsClientMirror `yaml:"tls"`
	Status struct {
		Ping time.Duration `yaml:"ping"`
	} `yaml:"status"`
}

func (c *vaultMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	switch c.Version {
	case "", "v1", "v2":
	default:
		p.add(join(path, "version"), "invalid engine API version '%s' (use v1 or v2)", c.Version)
	}
	// An auth method counts as configured when its credentials are set:
	// the original's sample config lists both methods with empty values.
	approle := c.AppRole.ID != "" || c.AppRole.Secret != ""
	k8s := c.Kubernetes.Role != "" || c.Kubernetes.JWT != ""
	switch {
	case approle && k8s:
		p.add(path, "more than one authentication method specified (approle, kubernetes)")
	case !approle && !k8s:
		p.add(path, "no authentication method specified (approle or kubernetes)")
	case approle:
		p.required(join(path, "approle.id"), c.AppRole.ID)
		p.required(join(path, "approle.secret"), c.AppRole.Secret)
	case k8s:
		p.required(join(path, "kubernetes.role"), c.Kubernetes.Role)
		p.required(join(path, "kubernetes.jwt"), c.Kubernetes.JWT)
		// A JWT containing a path separator is a file, read at every
		// login; like the original, check now that it can be read.
		if jwt := c.Kubernetes.JWT; strings.ContainsRune(jwt, '/') || strings.ContainsRune(jwt, os.PathSeparator) {
			if f, err := os.Open(jwt); err != nil {
				p.add(join(path, "kubernetes.jwt"), "%v", err)
			} else {
				f.Close()
			}
		}
	}
	if c.Transit.Engine != "" || c.Transit.Key != "" {
		p.required(join(path, "transit.key"), c.Transit.Key)
	}
	c.TLS.validate(p, join(path, "tls"))
	p.nonNegative(join(path, "status.ping"), c.Status.Ping)
}

type etcdMirror struct {
	Endpoints []string        `yaml:"endpoints"`
	Prefix    string          `yaml:"prefix"`
	Username  string          `yaml:"username"`
	Password  string          `yaml:"password"`
	TLS       tlsClientMirror `yaml:"tls"`
	Timeout   time.Duration   `yaml:"timeout"`
	Seal      ignored         `yaml:"seal"` // checked by the backend
}

func (c *etcdMirror) validate(p *problems, path string) {
	if len(c.Endpoints) == 0 {
		p.add(join(path, "endpoints"), "required")
	}
	for i, e := range c.Endpoints {
		p.required(index(join(path, "endpoints"), i), e)
	}
	if c.Password != "" {
		p.required(join(path, "username"), c.Username)
	}
	if c.Username != "" {
		p.required(join(path, "password"), c.Password)
	}
	c.TLS.validate(p, join(path, "tls"))
	p.nonNegative(join(path, "timeout"), c.Timeout)
}

type fortanixMirror struct {
	Endpoint    string `yaml:"endpoint"`
	GroupID     string `yaml:"group_id"`
	Credentials struct {
		Key string `yaml:"key"`
	} `yaml:"credentials"`
	TLS caMirror `yaml:"tls"`
}

func (c *fortanixMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	p.required(join(path, "credentials.key"), c.Credentials.Key)
}

type gemaltoMirror struct {
	Endpoint    string `yaml:"endpoint"`
	Credentials struct {
		Token  string  `yaml:"token"`
		Domain string  `yaml:"domain"`
		Retry  ignored `yaml:"retry"`
	} `yaml:"credentials"`
	TLS caMirror `yaml:"tls"`
}

func (c *gemaltoMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	p.required(join(path, "credentials.token"), c.Credentials.Token)
}

type gcpMirror struct {
	ProjectID   string   `yaml:"project_id"`
	Endpoint    string   `yaml:"endpoint"`
	Scopes      []string `yaml:"scopes"`
	Credentials struct {
		ClientEmail  string `yaml:"client_email"`
		ClientID     string `yaml:"client_id"`
		PrivateKeyID string `yaml:"private_key_id"`
		PrivateKey   string `yaml:"private_key"`
	} `yaml:"credentials"`
}

func (c *gcpMirror) validate(p *problems, path string) {
	p.required(join(path, "project_id"), c.ProjectID)
	cr := c.Credentials
	if cr.ClientEmail != "" || cr.ClientID != "" || cr.PrivateKeyID != "" || cr.PrivateKey != "" {
		// Partial credentials cannot form a service account; empty ones
		// select the ambient GCP credentials.
		p.required(join(path, "credentials.client_email"), cr.ClientEmail)
		p.required(join(path, "credentials.client_id"), cr.ClientID)
		p.required(join(path, "credentials.private_key_id"), cr.PrivateKeyID)
		p.required(join(path, "credentials.private_key"), cr.PrivateKey)
	}
}

type awsMirror struct {
	Endpoint    string `yaml:"endpoint"`
	Region      string `yaml:"region"`
	KMSKey      string `yaml:"kmskey"`
	Credentials struct {
		AccessKey    string `yaml:"accesskey"`
		SecretKey    string `yaml:"secretkey"`
		SessionToken string `yaml:"token"`
	} `yaml:"credentials"`
}

func (c *awsMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	p.required(join(path, "region"), c.Region)
	cr := c.Credentials
	if cr.AccessKey != "" || cr.SecretKey != "" || cr.SessionToken != "" {
		// All empty selects the SDK's default credential chain.
		p.required(join(path, "credentials.accesskey"), cr.AccessKey)
		p.required(join(path, "credentials.secretkey"), cr.SecretKey)
	}
}

type azureMirror struct {
	Endpoint    string `yaml:"endpoint"`
	Credentials struct {
		TenantID     string `yaml:"tenant_id"`
		ClientID     string `yaml:"client_id"`
		ClientSecret string `yaml:"client_secret"`
	} `yaml:"credentials"`
	ManagedIdentity struct {
		ClientID string `yaml:"client_id"`
	} `yaml:"managed_identity"`
}

func (c *azureMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	cr := c.Credentials
	creds := cr.TenantID != "" || cr.ClientID != "" || cr.ClientSecret != ""
	if creds {
		p.required(join(path, "credentials.tenant_id"), cr.TenantID)
		p.required(join(path, "credentials.client_id"), cr.ClientID)
		p.required(join(path, "credentials.client_secret"), cr.ClientSecret)
	}
	if creds && c.ManagedIdentity.ClientID != "" {
		p.add(path, "credentials and managed_identity are mutually exclusive")
	}
}

type entrustMirror struct {
	Endpoint    string `yaml:"endpoint"`
	VaultID     string `yaml:"vault_id"`
	BoxID       string `yaml:"box_id"`
	Credentials struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"credentials"`
	TLS caMirror `yaml:"tls"`
}

func (c *entrustMirror) validate(p *problems, path string) {
	p.required(join(path, "endpoint"), c.Endpoint)
	p.required(join(path, "vault_id"), c.VaultID)
	p.required(join(path, "box_id"), c.BoxID)
	p.required(join(path, "credentials.username"), c.Credentials.Username)
	p.required(join(path, "credentials.password"), c.Credentials.Password)
}

// kesMirror is the "kes" section: parsed (so its keys are checked) but
// never used.
type kesMirror struct {
	Endpoint []string        `yaml:"endpoint"`
	Enclave  string          `yaml:"enclave"`
	TLS      tlsClientMirror `yaml:"tls"`
}

func (c *kesMirror) validate(*problems, string) {}
