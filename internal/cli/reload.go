package cli

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/openkes/openkes/config"
)

// describeChanges says what a reload changed between two config files,
// for the line the server prints after every SIGHUP: the settings that
// differ, by name, or "no changes". Values are not printed (identities and
// key-store settings may be sensitive); policies are named.
func describeChanges(old, cur *config.File) string {
	if old == nil || cur == nil {
		return "configuration loaded"
	}
	var changes []string
	add := func(changed bool, what string) {
		if changed {
			changes = append(changes, what)
		}
	}
	add(old.Admin != cur.Admin, "admin identity")
	add(old.TLS.CertFile != cur.TLS.CertFile || old.TLS.KeyFile != cur.TLS.KeyFile || old.TLS.Password != cur.TLS.Password, "tls certificate files")
	add(old.TLS.Auth != cur.TLS.Auth, "tls.auth")
	add(old.TLS.CAFile != cur.TLS.CAFile, "tls.ca")
	if p := policyChanges(old, cur); p != "" {
		changes = append(changes, p)
	}
	add(!reflect.DeepEqual(old.Routes, cur.Routes), "api")
	add(old.Cache != cur.Cache, "cache")
	add(old.ErrorLevel != cur.ErrorLevel, "log.error")
	add(old.AuditLevel != cur.AuditLevel, "log.audit")
	add(old.AuditFile != cur.AuditFile || old.AuditSync != cur.AuditSync, "log.audit_file")
	add(!slices.Equal(old.Keys, cur.Keys), "keys")
	add(old.KeyStoreKind != cur.KeyStoreKind || !reflect.DeepEqual(old.KeyStore, cur.KeyStore), "keystore."+cur.KeyStoreKind)
	add(old.Addr != cur.Addr, "address (takes effect after a restart)")
	if len(changes) == 0 {
		return "no changes (certificates and the audit file re-read)"
	}
	return "changed " + strings.Join(changes, ", ")
}

// policyChanges names the policies added, removed or changed (patterns or
// identities), or returns "".
func policyChanges(old, cur *config.File) string {
	var added, removed, changed []string
	for _, name := range slices.Sorted(maps.Keys(cur.Policies)) {
		p, ok := old.Policies[name]
		switch {
		case !ok:
			added = append(added, name)
		case !reflect.DeepEqual(p, cur.Policies[name]):
			changed = append(changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old.Policies)) {
		if _, ok := cur.Policies[name]; !ok {
			removed = append(removed, name)
		}
	}
	var parts []string
	for _, x := range []struct {
		what  string
		names []string
	}{{"added", added}, {"removed", removed}, {"changed", changed}} {
		if len(x.names) > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", x.what, strings.Join(x.names, " ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "policies (" + strings.Join(parts, "; ") + ")"
}
