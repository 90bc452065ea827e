package config

import (
	"strings"
	"testing"

	"github.com/openkes/openkes/internal/policy"
)

func TestCheckPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // substring of the warning; "" for none
	}{
		{"*", ""},
		{"/*", ""},
		{"/v1/*", ""},
		{"/v1/key/*", ""},
		{"/v1/key/gen*", ""},
		{"/v1/key/generate/*", ""},
		{"/v1/key/generate/minio-*", ""},
		{"/v1/key/generate/my-key", ""},
		{"/v1/key/*/minio-internal*", ""},
		{"/v1/key/list/*", ""},
		{"/v1/key/list/", ""},
		{"/v1/key/list/my*", ""},
		{"/v1/status", ""},
		{"/v1/identity/self/describe", ""},
		{"/v1/log/audit", ""},
		{"/version", ""},
		{"/v1/key/create/_x", ""},
		// The examples.
		{"/v1//status", `contains "//"`},
		{"/v1/key/../status", `contains a ".." segment`},
		{"/v1/key/genrate/minio-*", `matches no API path (did you mean "/v1/key/generate/"?)`},
		{"/v1/key/generate/minio.key", "matches no API path"},
		{"/v1/key/generate/minio/x", "matches no API path"},
		{"/v1/key/generate/-x", "matches no API path"},
		{"/v1/key/generate/x-", "matches no API path"},
		{"/v1/key/generate/" + strings.Repeat("a", 81), "matches no API path"},
		{"/v1/key/generate/", "matches no API path"},
		{"/v1/status/x", "matches no API path"},
		{"/v1/stats", `matches no API path (did you mean "/v1/status"?)`},
		{"/v2/key/create/x", "matches no API path"},
		{"/v1/keys/*", "matches no API path"},
		{"/v1/key/create", "matches no API path"},
		{"v1/key/create/x", "must start with '/'"},
		{"", "empty pattern"},
	}
	testCheck(t, "checkPattern", checkPattern, tests)
}

func TestCheckIdentity(t *testing.T) {
	t.Parallel()
	hex := strings.Repeat("0a", 32)
	tests := []struct {
		in   string
		want string
	}{
		{hex, ""},
		{"_", ""},
		{"disabled", ""},
		{strings.ToUpper(hex), "upper-case"},
		{hex[:63], "not a 64-character hex"},
		{"my-app", "not a 64-character hex"},
		{hex[:62] + "zz", "not a 64-character hex"},
	}
	testCheck(t, "checkIdentity", checkIdentity, tests)
}

// testCheck runs check on every case: check(in) must return nil if want
// is "", else an error containing want. fname names check in the
// messages.
func testCheck(t *testing.T, fname string, check func(string) error, tests []struct{ in, want string }) {
	t.Helper()
	for _, tt := range tests {
		err := check(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s(%q) = %v, want nil", fname, tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s(%q) = %v, want an error containing %q", fname, tt.in, err, tt.want)
		}
	}
}

// samplePaths are request paths of every route, with a few names.
var samplePaths = func() []string {
	var paths []string
	for _, r := range routeShapes {
		if !r.slot {
			paths = append(paths, r.path)
			continue
		}
		for _, n := range []string{"a", "minio-key", "my-app-internal", "x_1", "Z9"} {
			paths = append(paths, r.path+n)
		}
		if r.listing {
			paths = append(paths, r.path, r.path+"minio*")
		}
	}
	return paths
}()

// FuzzCheckPattern: checkPattern never panics, a pattern it accepts is
// one policy.Check accepts, and a pattern it warns about matches none of
// samplePaths with the server's own matcher.
func FuzzCheckPattern(f *testing.F) {
	for _, s := range []string{"*", "/v1/key/generate/minio-*", "/v1//x", "/v1/key/*/x*", "/v1/key/list/", "**", "/*/*/*", "/v1/key/*/a", "/v1/*e*/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if len(p) > 256 {
			return
		}
		err := checkPattern(p)
		if err == nil {
			if perr := policy.Check(p); perr != nil {
				t.Fatalf("checkPattern(%q) = nil, but policy.Check = %v", p, perr)
			}
			return
		}
		pol, _ := policy.Compile([]string{p}, nil)
		for _, path := range samplePaths {
			if pol.Allows(path) {
				t.Fatalf("checkPattern(%q) = %v, but it matches %q", p, err, path)
			}
		}
	})
}
