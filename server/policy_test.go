package server

import (
	"net/http"
	"testing"
)

// TestPolicyEnforcement checks authorization over real TLS: the seed
// example of the policy semantics, deny over allow, listing without a
// trailing slash, and path tricks that must never reach a denied route or
// slip past an allow rule.
func TestPolicyEnforcement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		p := c.Policies["my-app"]
		p.Allow = []string{
			"/v1/key/create/*",
			"/v1/key/generate/*",
			"/v1/key/describe/my-key*",
			"/v1/key/list/*",
		}
		p.Deny = []string{"/v1/key/*/my-key-internal*"}
		c.Policies["my-app"] = p
	})
	admin, user := e.client(t, e.admin), e.client(t, e.user)
	for _, name := range []string{"my-key", "my-key-internal", "my-key-internal2", "other"} {
		do(t, admin, "POST", e.url("/v1/key/create/"+name), "").wantEmpty(t)
	}

	tests := []struct {
		name, method, path string
		want               int
	}{
		// The seed example: a '*' inside the pattern matches one segment.
		{"mid-star denies create", "POST", "/v1/key/create/my-key-internal", http.StatusForbidden},
		{"mid-star denies generate with suffix", "POST", "/v1/key/generate/my-key-internal2", http.StatusForbidden},
		{"mid-star denies describe", "GET", "/v1/key/describe/my-key-internal", http.StatusForbidden},
		{"allowed generate", "POST", "/v1/key/generate/my-key", http.StatusOK},
		{"allowed describe by prefix", "GET", "/v1/key/describe/my-key", http.StatusOK},
		{"not allowed describe", "GET", "/v1/key/describe/other", http.StatusForbidden},
		{"not allowed delete", "DELETE", "/v1/key/delete/my-key", http.StatusForbidden},
		{"deny wins over allow", "POST", "/v1/key/create/my-key-internal-3", http.StatusForbidden},
		{"allowed create", "POST", "/v1/key/create/my-key-3", http.StatusOK},
		// kms-go sends ListKeys(ctx, "", n) without the trailing slash.
		{"list without slash", "GET", "/v1/key/list", http.StatusOK},
		{"list with slash", "GET", "/v1/key/list/", http.StatusOK},
		// Paths are case sensitive: no route, no match.
		{"upper case route", "GET", "/V1/KEY/DESCRIBE/my-key", http.StatusNotFound},
		{"upper case key", "GET", "/v1/key/describe/MY-KEY", http.StatusForbidden},
		// Non-canonical paths are redirected, never served.
		{"dot-dot into delete", "DELETE", "/v1/key/describe/my-key/../../delete/my-key", http.StatusMovedPermanently},
		{"dot segment", "GET", "/v1/key/describe/./my-key-internal", http.StatusMovedPermanently},
		{"double slash", "GET", "/v1/key//describe/my-key", http.StatusMovedPermanently},
		{"leading double slash", "GET", "//v1/key/describe/my-key", http.StatusMovedPermanently},
		{"encoded dot-dot", "GET", "/v1/key/describe/my-key%2F..%2F..%2Fdelete%2Fother", http.StatusMovedPermanently},
		// An encoded slash decodes to '/': the path then names no valid key
		// and the policy sees the decoded path.
		{"encoded slash after allowed prefix", "GET", "/v1/key/describe/my-key%2Fx", http.StatusBadRequest},
		{"encoded slash into denied key", "GET", "/v1/key/describe/my-key-internal%2Fx", http.StatusForbidden},
		{"encoded dash", "GET", "/v1/key/describe/my%2Dkey", http.StatusOK},
		{"encoded dash into denied key", "GET", "/v1/key/describe/my%2Dkey-internal", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, user, tt.method, e.url(tt.path), "")
			if resp.status != tt.want {
				t.Fatalf("%s %s: status %d, want %d (body %q)", tt.method, tt.path, resp.status, tt.want, resp.body)
			}
			if tt.want == http.StatusForbidden && string(resp.body) != "{\"message\":\"not authorized: insufficient permissions\"\n}" {
				t.Errorf("body = %q, want the 403 error", resp.body)
			}
		})
	}

	// Following the redirect of a trick path lands on the cleaned path,
	// which is authorised anew: the delete stays forbidden.
	resp := do(t, user, "DELETE", e.url("/v1/key/describe/my-key/../../delete/my-key"), "")
	if loc := resp.header.Get("Location"); loc != "/v1/key/delete/my-key" {
		t.Fatalf("Location = %q, want /v1/key/delete/my-key", loc)
	}
	do(t, user, "DELETE", e.url(resp.header.Get("Location")), "").wantError(t, http.StatusForbidden, "not authorized: insufficient permissions")
	do(t, admin, "GET", e.url("/v1/key/describe/my-key"), "").want(t, http.StatusOK)
}
