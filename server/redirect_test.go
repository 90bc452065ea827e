package server

// Redirects of non-canonical paths, found while recording the golden
// transcripts (internal/api/golden_test.go).
//
// Deliberate difference: routing and authorisation both work on the
// decoded path, so "%2F" separates segments and "%2E%2E" is a dot-dot
// segment (as with Go's pre-1.22 ServeMux). Upstream routes the escaped
// path, so "/v1/key/describe/a%2F..%2Fx" reaches describe there and a
// redirect to "/v1/key/x" here. Deciding the route and the policy on one
// and the same path means no encoding trick can separate the route a
// request reaches from the path its policy was checked against.

import (
	"testing"
)

// TestCleanPathRedirectToPrefixRoute: a non-canonical path whose clean
// form is a prefix route without its trailing slash (e.g.
// "/v1/key/list/x/..", "/v1/key//list") must be redirected straight to the
// route WITH the slash, as http.ServeMux does (docs/api.md#routing):
// ServeMux cleans the path and then applies its trailing-slash redirect to
// the clean path, before the clean-path redirect. Both the Go 1.21 mux
// (GODEBUG httpmuxgo121=1) and the Go ≥ 1.22 mux answer
// "Location: /v1/key/list/".
func TestCleanPathRedirectToPrefixRoute(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t)
	tests := []struct{ path, location string }{
		{"/v1/key/list/x/..", "/v1/key/list/"},
		{"/v1/key//list", "/v1/key/list/"},
		{"/v1/key/describe/x/..", "/v1/key/describe/"},
		{"/v1/./identity/list?x=1", "/v1/identity/list/?x=1"},
	}
	for _, tt := range tests {
		resp := do(t, c, "GET", e.url(tt.path), "")
		if got := resp.header.Get("Location"); resp.status != 301 || got != tt.location {
			t.Errorf("GET %s = %d Location %q, want 301 Location %q", tt.path, resp.status, got, tt.location)
		}
	}
}
