package config

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/server"
)

// build validates the decoded mirror and turns it into a File. Problems
// go to d.problems.
func (d *decoder) build(m *fileMirror) *File {
	d.applyOverrides(m)
	f := &File{
		Addr: strings.TrimSpace(m.Address),
		TLS: TLS{
			KeyFile:         m.TLS.Key,
			CertFile:        m.TLS.Cert,
			Password:        m.TLS.Password,
			CAFile:          m.TLS.CA,
			ProxyCertHeader: m.TLS.Proxy.Header.Cert,
		},
	}

	if m.Version != nil && *m.Version != "v1" {
		d.add("version", "invalid server config version '%s'", *m.Version)
	}
	if err := CheckAddr(f.Addr); err != nil {
		d.add("address", "%v", err)
	}

	f.Admin = m.Admin.Identity
	if d.overrides.Admin != "" {
		f.Admin, m.Root = d.overrides.Admin, ""
	}
	if m.Root != "" {
		if f.Admin != "" {
			d.warn("root", "ignored because admin.identity is set")
		} else {
			f.Admin = m.Root
			d.warn("root", "deprecated, use admin.identity")
		}
	}
	d.required("admin.identity", f.Admin)
	if f.Admin != "" {
		if err := checkIdentity(f.Admin); err != nil {
			d.warn("admin.identity", "%v", err)
		}
	}

	d.required("tls.key", m.TLS.Key)
	d.required("tls.cert", m.TLS.Cert)
	switch strings.ToLower(strings.TrimSpace(m.TLS.Auth)) {
	case "", "off":
	case "on":
		f.TLS.Auth = true
	default:
		d.add("tls.auth", "invalid value '%s' (use on or off)", m.TLS.Auth)
	}

	// Policies, in name order so that warnings come out the same every
	// time. Empty identities (typically an unset-but-empty ${VAR}) are
	// dropped; origIndex remembers where the others were in the file.
	origIndex := map[string][]int{}
	if m.Policy != nil {
		f.Policies = make(map[string]server.Policy, len(m.Policy))
	}
	for _, name := range slices.Sorted(maps.Keys(m.Policy)) {
		pm := m.Policy[name]
		path := join("policy", name)
		for _, list := range []struct {
			key      string
			patterns []string
		}{{"allow", pm.Allow}, {"deny", pm.Deny}} {
			for i, pat := range list.patterns {
				if err := checkPattern(pat); err != nil {
					d.warn(index(join(path, list.key), i), "%v", err)
				}
			}
		}
		var ids []string
		for i, id := range pm.Identities {
			if strings.TrimSpace(id) == "" {
				continue
			}
			if err := checkIdentity(id); err != nil {
				d.warn(index(join(path, "identities"), i), "%v", err)
			}
			ids = append(ids, id)
			origIndex[name] = append(origIndex[name], i)
		}
		f.Policies[name] = server.Policy{Allow: pm.Allow, Deny: pm.Deny, Identities: ids}
	}

	if m.API != nil {
		f.Routes = make(map[string]server.RouteConfig, len(m.API))
	}
	routes := map[string]bool{}
	for _, r := range api.AllRoutes() {
		routes[r.Path] = true
	}
	for _, path := range slices.Sorted(maps.Keys(m.API)) {
		r := m.API[path]
		f.Routes[path] = server.RouteConfig{Timeout: r.Timeout, SkipAuth: r.SkipAuth}
		// The server matches overrides by exact route path, so a
		// misspelt path silently changes nothing.
		switch {
		case routes[path]:
		case routes[path+"/"]:
			d.warn(join("api", path), "unknown API path, ignored (did you mean '%s/'?)", path)
		default:
			d.warn(join("api", path), "unknown API path, ignored")
		}
	}

	// applyDefaults has set every cache duration.
	f.Cache = server.CacheConfig{
		Any:     *m.Cache.Expiry.Any,
		Unused:  *m.Cache.Expiry.Unused,
		Offline: *m.Cache.Expiry.Offline,
	}
	d.nonNegative("cache.expiry.any", f.Cache.Any)
	d.nonNegative("cache.expiry.unused", f.Cache.Unused)
	d.nonNegative("cache.expiry.offline", f.Cache.Offline)

	f.Deletion = server.DeletionConfig{Window: m.Deletion.Window}
	if w := f.Deletion.Window; w != 0 && w < server.MinDeletionWindow {
		d.add("deletion.window", "invalid deletion window '%v' (use at least %v, or leave it out to delete keys at once)", w, server.MinDeletionWindow)
	}

	f.Limits = server.Limits{
		Connections:                m.Limits.Connections,
		UnauthenticatedConnections: m.Limits.UnauthenticatedConnections,
		LogStreams:                 m.Limits.LogStreams,
	}
	for _, l := range []struct {
		key string
		n   int
	}{
		{"connections", f.Limits.Connections},
		{"unauthenticated_connections", f.Limits.UnauthenticatedConnections},
		{"log_streams", f.Limits.LogStreams},
	} {
		if l.n < 0 {
			d.add(join("limits", l.key), "invalid value '%d' (use 0 for the default, or more)", l.n)
		}
	}
	if c, u := f.Limits.Connections, f.Limits.UnauthenticatedConnections; c > 0 && u > c {
		d.warn("limits.unauthenticated_connections", "%d is more than limits.connections (%d): at most %d apply", u, c, c)
	}

	var err error
	if f.ErrorLevel, err = ParseLevel(m.Log.Error); err != nil {
		d.add("log.error", "%v", err)
	}
	if f.AuditLevel, err = ParseLevel(m.Log.Audit); err != nil {
		d.add("log.audit", "%v", err)
	}
	if p := m.Log.AuditFile; p != nil {
		// Whether the directory exists is checked when the file is
		// opened: this package does not touch the file system.
		switch f.AuditFile = strings.TrimSpace(*p); {
		case f.AuditFile == "":
			d.add("log.audit_file", "empty path (remove the setting to write no audit file)")
		case strings.HasSuffix(f.AuditFile, "/"):
			d.add("log.audit_file", "'%s' is a directory, not a file", f.AuditFile)
		}
	}
	f.AuditSync = m.Log.AuditSync

	seen := map[string]bool{}
	for i, k := range m.Keys {
		if seen[k.Name] {
			d.add(index("keys", i)+".name", "key '%s' is defined multiple times", k.Name)
		}
		seen[k.Name] = true
		f.Keys = append(f.Keys, k.Name)
	}

	d.checkServer(f, origIndex)

	owner := map[string]string{} // identity → first policy that lists it
	for _, name := range slices.Sorted(maps.Keys(f.Policies)) {
		for _, id := range f.Policies[name].Identities {
			if _, ok := owner[id]; !ok {
				owner[id] = name
			}
		}
	}
	for i, id := range m.TLS.Proxy.Identities {
		if strings.TrimSpace(id) == "" {
			continue
		}
		path := index("tls.proxy.identities", i)
		switch {
		case id == f.Admin:
			d.add(path, "identity '%s' is the admin identity and cannot be a TLS proxy", id)
		case owner[id] != "":
			d.add(path, "identity '%s' is assigned to policy '%s' and cannot be a TLS proxy", id, owner[id])
		}
		f.TLS.ProxyIdentities = append(f.TLS.ProxyIdentities, id)
	}

	f.KeyStoreKind, f.KeyStore = d.parseKeyStore(&m.KeyStore)
	return f
}

// checkServer applies server.Config.Validate to the policies, routes and
// keys of f, so that the file is rejected at parse time with the same
// rules the server enforces. The key store, certificate and cache are
// checked by this package: Validate gets stand-ins for them.
func (d *decoder) checkServer(f *File, origIndex map[string][]int) {
	conf := server.Config{
		Admin:    f.Admin,
		Policies: f.Policies,
		Keys:     f.Keys,
		Routes:   f.Routes,
		Store:    nopStore{},
		TLS: server.TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("no certificate")
		}},
	}
	err := conf.Validate()
	if err == nil {
		return
	}
	// Validate ranges over the routes map: sort those errors so the
	// output is stable.
	var other, api []string
	for _, e := range unjoin(err) {
		if msg := e.Error(); strings.HasPrefix(msg, "api.") {
			api = append(api, msg)
		} else {
			other = append(other, msg)
		}
	}
	slices.Sort(api)
	for _, msg := range append(other, api...) {
		path, rest, ok := strings.Cut(msg, ": ")
		if !ok {
			path, rest = "config", msg
		}
		d.add(fixIdentityIndex(path, origIndex), "%s", rest)
	}
}

// fixIdentityIndex maps "policy.<p>.identities[<i>]", where i counts only
// the non-empty identities that were passed to Validate, back to the
// index in the file.
func fixIdentityIndex(path string, origIndex map[string][]int) string {
	rest, ok := strings.CutPrefix(path, "policy.")
	if !ok || !strings.HasSuffix(rest, "]") {
		return path
	}
	at := strings.LastIndex(rest, ".identities[")
	if at < 0 {
		return path
	}
	name, num := rest[:at], rest[at+len(".identities["):len(rest)-1]
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 || i >= len(origIndex[name]) {
		return path
	}
	return index(join(join("policy", name), "identities"), origIndex[name][i])
}

// CheckAddr checks a listen address: "[ip]:port", where the host part,
// if any, must be an IP address (the original rejects host names at
// start-up with the same message). The error says what is wrong.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address '%s': use [ip]:port", addr)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("'%s' is not a valid IP address", host)
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port '%s' in address '%s'", port, addr)
	}
	return nil
}

// ParseLevel parses a log level as written in log.error and log.audit:
// DEBUG, INFO, WARN or ERROR, optionally followed by +N or -N
// ("WARN+2"); a bare integer (the slog level number); ON (INFO); OFF
// (ERROR+1, above every record, so nothing is logged); or nothing (INFO).
// Case and surrounding white space are ignored.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	switch strings.ToUpper(s) {
	case "", "ON":
		return slog.LevelInfo, nil
	case "OFF":
		return slog.LevelError + 1, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return slog.Level(n), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("invalid log level '%s'", s)
	}
	return l, nil
}

// nopStore stands in for the key store when the server's validation runs
// at parse time; it is never used.
type nopStore struct{}

var _ keystore.Store = nopStore{}

var errNopStore = errors.New("config: placeholder key store")

func (nopStore) Create(context.Context, string, []byte) error { return errNopStore }
func (nopStore) Get(context.Context, string) ([]byte, error)  { return nil, errNopStore }
func (nopStore) Delete(context.Context, string) error         { return errNopStore }
func (nopStore) List(context.Context, string, int) ([]string, string, error) {
	return nil, "", errNopStore
}
func (nopStore) Status(context.Context) (keystore.State, error) { return keystore.State{}, errNopStore }
func (nopStore) Close() error                                   { return nil }

// applyOverrides replaces file settings by the command-line overrides.
func (d *decoder) applyOverrides(m *fileMirror) {
	o := d.overrides
	if o.KeyFile != "" || o.CertFile != "" {
		m.TLS.Key, m.TLS.Cert, m.TLS.Password = o.KeyFile, o.CertFile, ""
	}
	if o.Auth != "" {
		m.TLS.Auth = o.Auth
	}
	if o.Addr != "" {
		m.Address = o.Addr
	}
}
