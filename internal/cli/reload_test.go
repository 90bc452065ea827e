package cli

import (
	"testing"

	"github.com/openkes/openkes/config"
)

func TestDescribeChanges(t *testing.T) {
	t.Parallel()
	const base = "admin: {identity: disabled}\ntls: {key: k, cert: c}\nkeystore: {fs: {path: /tmp/keys}}\n" +
		"policy:\n  a: {allow: [/v1/status]}\n  b: {allow: [/v1/status]}\n"
	parse := func(extra string) *config.File {
		t.Helper()
		f, err := config.Parse([]byte(base+extra), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := parse("")
	tests := []struct {
		name string
		cur  *config.File
		want string
	}{
		{"nothing", parse(""), "no changes (certificates and the audit file re-read)"},
		{"log level", parse("log: {error: debug}\n"), "changed log.error"},
		{"policy added", parse("  c: {allow: [/v1/api]}\n"), "changed policies (added c)"},
		{"cache and auth", parse("cache: {expiry: {any: 1m}}\n" + "api: {/v1/status: {timeout: 5s}}\n"), "changed api, cache"},
	}
	for _, tt := range tests {
		if got := describeChanges(old, tt.cur); got != tt.want {
			t.Errorf("%s: describeChanges = %q, want %q", tt.name, got, tt.want)
		}
	}
	f, err := config.Parse([]byte("admin: {identity: disabled}\ntls: {key: k, cert: c, auth: on}\nkeystore: {fs: {path: /tmp/other}}\npolicy:\n  a: {allow: [/v1/api]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeChanges(old, f), "changed tls.auth, policies (removed b; changed a), keystore.fs"; got != want {
		t.Errorf("describeChanges = %q, want %q", got, want)
	}
}
