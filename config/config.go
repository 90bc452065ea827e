package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/server"
)

// DefaultAddr is the listen address used when the file sets none.
const DefaultAddr = "0.0.0.0:7373"

// File is a parsed and validated config file.
type File struct {
	// Addr is the listen address, "[ip]:port". Default [DefaultAddr].
	Addr string

	// Admin is the admin identity: admin.identity, or the legacy
	// top-level root key when admin.identity is not set.
	Admin string

	// TLS holds the tls section.
	TLS TLS

	// Policies maps policy names to policies. Allow and deny patterns are
	// as written; identities are env-expanded, empty ones dropped.
	Policies map[string]server.Policy

	// Cache holds cache.expiry, with [server.DefaultCacheConfig] for the
	// durations the file does not set.
	Cache server.CacheConfig

	// Routes holds the api section: per-route timeout and skip_auth.
	Routes map[string]server.RouteConfig

	// Deletion holds the deletion section (an OpenKES extension,
	// docs/keys.md): a zero window, the default, deletes keys at once.
	Deletion server.DeletionConfig

	// Limits holds the limits section (an OpenKES extension; upstream
	// warns about it as an unknown key): zero fields mean the defaults
	// of [server.DefaultLimits].
	Limits server.Limits

	// ErrorLevel is the level of log.error; default slog.LevelInfo.
	ErrorLevel slog.Level

	// AuditLevel is the level of log.audit; default slog.LevelInfo (the
	// audit log is on). "off" is slog.LevelError+1: nothing is logged.
	AuditLevel slog.Level

	// AuditFile is log.audit_file: a file to which every audit record is
	// appended as one JSON object per line, independent of AuditLevel,
	// which governs only the text lines on stdout. Empty means no file.
	// The file is opened (and reopened on SIGHUP) by the caller.
	AuditFile string

	// AuditSync is log.audit_sync: write every audit record as soon as it
	// is produced instead of buffering records for up to ~100 ms.
	AuditSync bool

	// Keys are the names of the keys to create at start-up.
	Keys []string

	// KeyStoreKind is the key store section, e.g. "fs", "vault" or
	// "aws.secretsmanager".
	KeyStoreKind string

	// KeyStore is the decoded and validated configuration of the key
	// store, or nil if no backend for KeyStoreKind is compiled into this
	// program (see [File.KeyStoreError]).
	KeyStore keystore.Config

	// Warnings lists problems that do not prevent the file from being
	// used, such as unknown keys, each prefixed with its dotted path (and,
	// from [ReadFile], with the file and line).
	Warnings  []string
	warnLines []int
}

// TLS is the tls section of a config file.
type TLS struct {
	KeyFile  string // tls.key: the server's private key (PEM)
	CertFile string // tls.cert: the server's certificate chain (PEM)
	Password string // tls.password: decrypts an RFC 1423 encrypted key

	// Auth is tls.auth: "on" verifies client certificates against the
	// system roots and CAFile; "off" (the default) accepts any client
	// certificate and leaves authorisation to the identity.
	Auth bool

	CAFile string // tls.ca: PEM file or directory of CA certificates

	// ProxyIdentities and ProxyCertHeader are tls.proxy.identities and
	// tls.proxy.header.cert. They are validated but, as in the original
	// server, have no effect.
	ProxyIdentities []string
	ProxyCertHeader string
}

// Overrides are settings given on the command line. A non-empty field
// replaces the file's value before the file is validated, so a flag can
// also stand in for a setting the file leaves out.
type Overrides struct {
	Admin    string // --root: admin.identity
	KeyFile  string // --key: tls.key (also clears tls.password)
	CertFile string // --cert: tls.cert
	Auth     string // --auth: tls.auth ("on" or "off")
	Addr     string // --addr: address
}

// ReadFile reads and parses the config file at path, resolving ${VAR}
// references from the process environment and applying the overrides
// (at most one). See [Parse] for the errors.
//
// Errors and warnings name the file and, where known, the line:
// "config.yml:12: policy.app.allow[0]: ...".
func ReadFile(path string, overrides ...Overrides) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var o Overrides
	if len(overrides) > 0 {
		o = overrides[0]
	}
	f, err := parse(data, os.LookupEnv, o)
	var ce *Error
	switch {
	case errors.As(err, &ce):
		ce.File = path
		ce.Warnings = locateWarnings(ce, ce.Warnings, ce.warnLines)
		return nil, ce
	case err != nil:
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.Warnings = locateWarnings(&Error{File: path}, f.Warnings, f.warnLines)
	return f, nil
}

// locateWarnings prefixes each warning with its file and line.
func locateWarnings(e *Error, warnings []string, lines []int) []string {
	if warnings == nil {
		return nil
	}
	out := make([]string, len(warnings))
	for i, w := range warnings {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		out[i] = e.locate(line) + w
	}
	return out
}

// Parse parses and validates a config file. lookupEnv resolves ${VAR}
// references; nil means os.LookupEnv.
//
// The error is a YAML syntax error, or the errors.Join of every problem
// found, each starting with the dotted path of the offending setting
// ("keystore.vault.endpoint: required"). On error the File is nil.
// Unknown keys are not errors, they are listed in File.Warnings.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*File, error) {
	return parse(data, lookupEnv, Overrides{})
}

func parse(data []byte, lookupEnv func(string) (string, bool), o Overrides) (*File, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	root, err := documentRoot(data)
	if err != nil {
		return nil, err
	}

	p := &problems{lines: nodeLines(root)}
	expandEnv(root, "", scopeRoot, lookupEnv, p)
	if len(p.errs) > 0 {
		// Decoding the unexpanded text would only add confusing errors.
		return nil, p.error()
	}
	d := &decoder{problems: p, overrides: o}
	var m fileMirror
	d.decode(root, "", reflect.ValueOf(&m).Elem())
	applyDefaults(&m)
	f := d.build(&m)
	if len(p.errs) > 0 {
		return nil, p.error()
	}
	f.Warnings = p.warnings
	f.warnLines = p.warnLines
	return f, nil
}

// error returns the *Error of the problems found so far.
func (p *problems) error() *Error {
	e := &Error{Warnings: p.warnings}
	for _, err := range p.errs {
		if pr, ok := err.(*Problem); ok {
			e.Problems = append(e.Problems, pr)
		} else {
			e.Problems = append(e.Problems, &Problem{Path: "config", Message: err.Error()})
		}
	}
	e.warnLines = p.warnLines
	return e
}

// KeyStoreError returns an [*UnsupportedKeyStoreError] if the file
// configures a key store whose backend is not compiled into this program,
// and nil if f.KeyStore can be used.
func (f *File) KeyStoreError() error {
	if f.KeyStore != nil {
		return nil
	}
	if f.KeyStoreKind == "" {
		return errors.New("keystore: no keystore specified")
	}
	return &UnsupportedKeyStoreError{Kind: f.KeyStoreKind, Name: storeName(f.KeyStoreKind), Tag: omitTag(f.KeyStoreKind)}
}

// ServerConfig returns the server configuration described by f, with the
// given store and TLS settings, which the caller creates from f.KeyStore
// and f.TLS. Maps and slices are copied, so f and the result can be
// changed independently. Logging is left to the caller, which knows
// where to log to; f.ErrorLevel and f.AuditLevel hold the levels.
func (f *File) ServerConfig(store keystore.Store, tls server.TLSConfig) *server.Config {
	var policies map[string]server.Policy
	if f.Policies != nil {
		policies = make(map[string]server.Policy, len(f.Policies))
		for name, p := range f.Policies {
			policies[name] = server.Policy{
				Allow:      slices.Clone(p.Allow),
				Deny:       slices.Clone(p.Deny),
				Identities: slices.Clone(p.Identities),
			}
		}
	}
	return &server.Config{
		Admin:    f.Admin,
		Policies: policies,
		Keys:     slices.Clone(f.Keys),
		Store:    store,
		Cache:    f.Cache,
		Routes:   maps.Clone(f.Routes),
		Deletion: f.Deletion,
		TLS:      tls,
		Limits:   f.Limits,
	}
}

// fileMirror is the private image of the config file.
type fileMirror struct {
	Version *string `yaml:"version"`
	Address string  `yaml:"address"`
	Root    string  `yaml:"root"` // before admin.identity existed
	Admin   struct {
		Identity string `yaml:"identity"`
	} `yaml:"admin"`
	TLS struct {
		Key      string `yaml:"key"`
		Cert     string `yaml:"cert"`
		Password string `yaml:"password"`
		Auth     string `yaml:"auth"`
		CA       string `yaml:"ca"`
		Proxy    struct {
			Identities []string `yaml:"identities"`
			Header     struct {
				Cert string `yaml:"cert"`
			} `yaml:"header"`
		} `yaml:"proxy"`
	} `yaml:"tls"`
	Policy map[string]policyMirror `yaml:"policy"`
	API    map[string]struct {
		SkipAuth bool          `yaml:"skip_auth"`
		Timeout  time.Duration `yaml:"timeout"`
	} `yaml:"api"`
	Cache struct {
		Expiry struct {
			// Pointers tell "not set" (default) from "0s" (disabled).
			Any     *time.Duration `yaml:"any"`
			Unused  *time.Duration `yaml:"unused"`
			Offline *time.Duration `yaml:"offline"`
		} `yaml:"expiry"`
	} `yaml:"cache"`
	Deletion struct {
		Window time.Duration `yaml:"window"`
	} `yaml:"deletion"`
	Limits struct {
		Connections                int `yaml:"connections"`
		UnauthenticatedConnections int `yaml:"unauthenticated_connections"`
		LogStreams                 int `yaml:"log_streams"`
	} `yaml:"limits"`
	Log struct {
		Error string `yaml:"error"`
		Audit string `yaml:"audit"`
		// A pointer tells "not set" from a value that is empty, for
		// instance a ${VAR} that is set but empty: that is an error.
		AuditFile *string `yaml:"audit_file"`
		AuditSync bool    `yaml:"audit_sync"`
	} `yaml:"log"`
	Keys []struct {
		Name string `yaml:"name"`
	} `yaml:"keys"`
	KeyStore yaml.Node `yaml:"keystore"`
}

type policyMirror struct {
	Allow      []string `yaml:"allow"`
	Deny       []string `yaml:"deny"`
	Identities []string `yaml:"identities"`
}

// applyDefaults fills in every default of the file format. It is the
// only place defaults are applied.
//
// The cache defaults are the documented ones, server.DefaultCacheConfig
// (any 5m, unused 30s, offline disabled), each applied only if the file
// does not set that duration; an explicit 0s disables the expiry. The
// original server instead sets any to 5m when it is 0 and then, if unused
// is 0, overwrites any (not unused) with 30s, so that a file without a
// cache section gets any=30s and no unused expiry. That looks accidental
// and is not copied.
func applyDefaults(m *fileMirror) {
	if m.Address == "" {
		m.Address = DefaultAddr
	}
	def := server.DefaultCacheConfig
	for _, d := range []struct {
		field **time.Duration
		def   time.Duration
	}{
		{&m.Cache.Expiry.Any, def.Any},
		{&m.Cache.Expiry.Unused, def.Unused},
		{&m.Cache.Expiry.Offline, def.Offline},
	} {
		if *d.field == nil {
			*d.field = &d.def
		}
	}
}
