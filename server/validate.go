package server

import (
	"errors"
	"fmt"
	"slices"

	"github.com/openkes/openkes/internal/api"
)

// skipAuthRoutes are the only routes that may be opened to unauthenticated
// clients. Upstream allowed skip_auth on any route, including key
// creation; OpenKES refuses that at configuration time.
var skipAuthRoutes = []string{"/v1/ready", "/v1/status", "/v1/metrics", "/v1/api"}

// Validate reports every problem of c, joined with errors.Join. Each error
// starts with the dotted path of the offending setting in the config file
// (e.g. "policy.my-app.identities[1]: ...").
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.Store == nil {
		add("keystore", "no key store configured")
	}
	owner := map[string]string{} // identity → policy
	names := make([]string, 0, len(c.Policies))
	for name := range c.Policies {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := c.Policies[name]
		if !api.ValidName(name) {
			add("policy."+name, "%v", api.InvalidPolicyName(name))
		}
		for i, id := range p.Identities {
			path := fmt.Sprintf("policy.%s.identities[%d]", name, i)
			switch {
			case !api.ValidName(id):
				add(path, "%v", api.InvalidIdentity(id))
			case id == c.Admin:
				add(path, "identity '%s' is the admin identity and cannot be assigned to a policy", id)
			case owner[id] == name:
				// listed twice in one policy: harmless
			case owner[id] != "":
				add(path, "identity '%s' is assigned to both policy '%s' and policy '%s'", id, owner[id], name)
			default:
				owner[id] = name
			}
		}
	}
	for path, rc := range c.Routes {
		if rc.Timeout < 0 {
			add("api."+path+".timeout", "invalid timeout '%v'", rc.Timeout)
		}
		if rc.SkipAuth && !slices.Contains(skipAuthRoutes, path) {
			add("api."+path+".skip_auth", "skip_auth is only allowed for %v", skipAuthRoutes)
		}
	}
	for i, name := range c.Keys {
		if !api.ValidName(name) {
			add(fmt.Sprintf("keys[%d].name", i), "%v", api.InvalidKeyName(name))
		}
	}
	if c.Cache.Any < 0 {
		add("cache.expiry.any", "invalid cache expiry '%v'", c.Cache.Any)
	}
	if c.Cache.Unused < 0 {
		add("cache.expiry.unused", "invalid cache expiry '%v'", c.Cache.Unused)
	}
	if c.Cache.Offline < 0 {
		add("cache.expiry.offline", "invalid cache expiry '%v'", c.Cache.Offline)
	}
	if w := c.Deletion.Window; w != 0 && w < MinDeletionWindow {
		add("deletion.window", "invalid deletion window '%v': must be at least %v", w, MinDeletionWindow)
	}
	if c.TLS.GetCertificate == nil {
		add("tls", "no server certificate configured")
	}
	return errors.Join(errs...)
}
