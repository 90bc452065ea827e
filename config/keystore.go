package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
)

// storeKind describes a key store section that this package knows even if
// no backend is registered for it, so that "exactly one keystore" is
// checked for every section of the original server, and a section whose
// backend was left out of the binary gets a clear error. The sections
// themselves are decoded and validated by the backends (see
// keystore.Register), never here.
type storeKind struct {
	name string // display name, as in the original's banner
	tag  string // kes_omit_<tag> leaves the backend out (see keystore/all)
}

// storeKinds lists the sections the original server understands (plus
// etcd), by the dotted name under "keystore".
var storeKinds = map[string]storeKind{
	"fs":                 {"Filesystem", "fs"},
	"vault":              {"Hashicorp Vault", "vault"},
	"etcd":               {"etcd", "etcd"},
	"fortanix.sdkms":     {"Fortanix SDKMS", "fortanix"},
	"gemalto.keysecure":  {"Gemalto KeySecure", "gemalto"},
	"gcp.secretmanager":  {"GCP SecretManager", "gcp"},
	"aws.secretsmanager": {"AWS SecretsManager", "aws"},
	"azure.keyvault":     {"Azure KeyVault", "azure"},
	"entrust.keycontrol": {"Entrust KeyControl", "entrust"},
	"kes":                {"KES", ""},
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

// omitTag returns the build tag that leaves the backend of kind out,
// "kes_omit_aws" for "aws.secretsmanager".
func omitTag(kind string) string {
	if k, ok := storeKinds[kind]; ok && k.tag != "" {
		return "kes_omit_" + k.tag
	}
	name, _, _ := strings.Cut(kind, ".")
	return "kes_omit_" + name
}

// UnsupportedKeyStoreError is returned by [File.KeyStoreError] for a key
// store section whose backend is not built into this program: it was
// left out by its build tag (see keystore/all), or OpenKES has none yet.
type UnsupportedKeyStoreError struct {
	Kind string // the section, e.g. "aws.secretsmanager"
	Name string // the display name, e.g. "AWS SecretsManager"
	Tag  string // the build tag that leaves it out, e.g. "kes_omit_aws"
}

func (e *UnsupportedKeyStoreError) Error() string {
	return fmt.Sprintf("keystore.%s: not built into this binary (%s)", e.Kind, e.Tag)
}

// section is one key store section found under "keystore".
type section struct {
	kind string
	node *yaml.Node
}

// parseKeyStore finds the key store sections under "keystore", checks
// that there is exactly one, and decodes and validates it. It returns the
// kind and, if a backend is registered for it, its decoded Config, else
// nil.
func (d *decoder) parseKeyStore(n *yaml.Node) (kind string, conf keystore.Config) {
	const path = "keystore"
	n = resolve(n)
	if isNull(n) {
		d.add(path, "no keystore specified")
		return "", nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, "expected a mapping, found %s", kindName(n))
		return "", nil
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
			d.decode(s.node, join(path, s.kind), reflect.ValueOf(new(kesSection)).Elem())
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
		return "", nil
	case 1:
	default:
		kinds := make([]string, len(found))
		for i, s := range found {
			kinds[i] = s.kind
		}
		d.add(path, "more than one keystore specified (%s)", strings.Join(kinds, ", "))
	}
	for _, s := range found {
		c := d.decodeSection(s)
		if len(found) == 1 {
			return s.kind, c
		}
	}
	return "", nil
}

// decodeSection decodes one key store section into the registered
// Config and validates it. A section without a backend is left alone:
// only its backend knows its fields.
func (d *decoder) decodeSection(s section) keystore.Config {
	path := join("keystore", s.kind)
	newConfig, ok := keystore.Lookup(s.kind)
	if !ok {
		if n := resolve(s.node); !isNull(n) && n.Kind != yaml.MappingNode {
			d.fail(path, "expected a mapping, found %s", kindName(n))
		}
		return nil
	}
	conf := newConfig()
	v := reflect.ValueOf(conf)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("config: keystore.Register(%q): the config must be a non-nil pointer, got %T", s.kind, conf))
	}
	d.decode(s.node, path, v.Elem())
	if d.hasFailed(path) {
		return conf // Validate would only repeat the decoding errors
	}
	if err := conf.Validate(); err != nil {
		for _, e := range unjoin(err) {
			d.addBackend(path, e)
		}
	}
	return conf
}

// unjoin returns the errors joined in err by errors.Join, or err itself.
func unjoin(err error) []error { return keystore.Unjoin(err) }

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

// kesSection is the "kes" section of the original server, which it
// parses but does not implement: decoded only so that unknown keys are
// reported, never used.
type kesSection struct {
	Endpoint []string `yaml:"endpoint"`
	Enclave  string   `yaml:"enclave"`
	TLS      struct {
		Key  string `yaml:"key"`
		Cert string `yaml:"cert"`
		CA   string `yaml:"ca"`
	} `yaml:"tls"`
}
