package policy

import (
	"strconv"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		path    string
		want    bool
	}{
		// Empty pattern.
		{"empty pattern, empty path", "", "", false},
		{"empty pattern", "", "/v1/status", false},

		// Literal patterns.
		{"literal equal", "/v1/status", "/v1/status", true},
		{"literal longer path", "/v1/status", "/v1/status/x", false},
		{"literal shorter path", "/v1/status", "/v1/stat", false},
		{"literal trailing slash", "/v1/status", "/v1/status/", false},
		{"literal case", "/v1/status", "/V1/STATUS", false},
		{"question mark is literal", "/v1/key/create/a?c", "/v1/key/create/abc", false},
		{"question mark matches itself", "/v1/key/create/a?c", "/v1/key/create/a?c", true},
		{"bracket is literal", "/v1/key/create/[ab]", "/v1/key/create/a", false},
		{"bracket matches itself", "/v1/key/create/[ab]", "/v1/key/create/[ab]", true},
		{"backslash is literal", `/v1/key/create/\*`, `/v1/key/create/\x`, true},

		// Prefix patterns (upstream semantics).
		{"star alone", "*", "/v1/key/create/x", true},
		{"star alone empty path", "*", "", true},
		{"prefix crosses slash", "/v1/key/*", "/v1/key/create/x", true},
		{"prefix exact", "/v1/key/*", "/v1/key/", true},
		{"prefix short", "/v1/key/*", "/v1/key", false},
		{"prefix name", "/v1/key/generate/my-app*", "/v1/key/generate/my-app", true},
		{"prefix name longer", "/v1/key/generate/my-app*", "/v1/key/generate/my-app-internal", true},
		{"prefix other name", "/v1/key/generate/my-app*", "/v1/key/generate/other", false},
		{"prefix other api", "/v1/key/generate/my-app*", "/v1/key/decrypt/my-app", false},
		{"prefix case", "/v1/key/create/*", "/V1/KEY/CREATE/x", false},
		{"upstream create", "/v1/key/create/*", "/v1/key/create/minio-key", true},
		{"upstream generate", "/v1/key/generate/*", "/v1/key/generate/minio-key", true},
		{"upstream decrypt", "/v1/key/decrypt/*", "/v1/key/decrypt/minio-key", true},
		{"upstream decrypt other api", "/v1/key/decrypt/*", "/v1/key/delete/minio-key", false},

		// Globs: inner '*' stays within a segment.
		{"inner star", "/v1/key/*/my-key", "/v1/key/create/my-key", true},
		{"inner star empty segment", "/v1/key/*/my-key", "/v1/key//my-key", true},
		{"inner star no cross", "/v1/key/*/my-key", "/v1/key/create/a/my-key", false},
		{"inner star other name", "/v1/key/*/my-key", "/v1/key/create/my-key2", false},
		{"inner and trailing", "/v1/key/*/my-key-internal*", "/v1/key/create/my-key-internal", true},
		{"inner and trailing 2", "/v1/key/*/my-key-internal*", "/v1/key/generate/my-key-internal2", true},
		{"inner and trailing crosses", "/v1/key/*/my-key-internal*", "/v1/key/generate/my-key-internal/x", true},
		{"inner and trailing other", "/v1/key/*/my-key-internal*", "/v1/key/create/other", false},
		{"inner and trailing short", "/v1/key/*/my-key-internal*", "/v1/key/create", false},
		{"star in segment", "/v1/key/create/app-*-key", "/v1/key/create/app-1-key", true},
		{"star in segment empty", "/v1/key/create/app-*-key", "/v1/key/create/app--key", true},
		{"star in segment no cross", "/v1/key/create/app-*-key", "/v1/key/create/app-1/2-key", false},
		{"star in segment suffix", "/v1/key/create/*-key", "/v1/key/create/a-key-key", true},
		{"two stars in segment", "/v1/key/create/*a*b", "/v1/key/create/xaybzb", true},
		{"two stars in segment no", "/v1/key/create/*a*b", "/v1/key/create/xaybzc", false},
		{"leading star segment", "*/v1/status", "/v1/status", true},
		{"leading star not first segment", "*/status", "/v1/status", false},
		{"double star is two stars", "/v1/**/x", "/v1/a/x", true},
		{"double star no cross", "/v1/**/x", "/v1/a/b/x", false},
		{"double trailing star", "/v1/**", "/v1/a/b/x", true},
		{"star segment then trailing", "/v1/*/*", "/v1/key/create/x", true},
		{"star segment then trailing short", "/v1/*/*", "/v1/key", false},
		{"star slash end", "/v1/*/", "/v1/key/", true},
		{"star slash end no", "/v1/*/", "/v1/key/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Match(tt.pattern, tt.path); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
			if got := refMatch(tt.pattern, tt.path); got != tt.want {
				t.Errorf("refMatch(%q, %q) = %v, want %v (test or reference is wrong)", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	// A policy as MinIO deployments use it, plus a deny rule and a glob.
	minio := mustCompile(t, []string{
		"/v1/key/create/*",
		"/v1/key/generate/*",
		"/v1/key/decrypt/*",
		"/v1/status",
	}, []string{
		"/v1/key/generate/my-app-internal*",
	})
	glob := mustCompile(t, []string{"/v1/key/*/my-key-internal*"}, nil)
	everything := mustCompile(t, []string{"*"}, nil)
	denyAll := mustCompile(t, []string{"*"}, []string{"*"})
	empty := mustCompile(t, nil, nil)

	tests := []struct {
		name   string
		policy *Policy
		path   string
		want   bool
	}{
		{"nil policy", nil, "/v1/status", false},
		{"empty policy", empty, "/v1/status", false},
		{"deny wins over allow", denyAll, "/v1/status", false},
		{"allow everything", everything, "/v1/key/delete/x", true},

		{"create", minio, "/v1/key/create/minio-key", true},
		{"generate", minio, "/v1/key/generate/minio-key", true},
		{"decrypt", minio, "/v1/key/decrypt/minio-key", true},
		{"status", minio, "/v1/status", true},
		{"status subpath", minio, "/v1/status/x", false},
		{"delete not allowed", minio, "/v1/key/delete/minio-key", false},
		{"denied generate", minio, "/v1/key/generate/my-app-internal", false},
		{"denied generate longer", minio, "/v1/key/generate/my-app-internal-2", false},
		{"not denied prefix", minio, "/v1/key/generate/my-app-interna", true},
		{"deny only generate", minio, "/v1/key/create/my-app-internal", true},

		{"glob create", glob, "/v1/key/create/my-key-internal", true},
		{"glob generate", glob, "/v1/key/generate/my-key-internal2", true},
		{"glob other", glob, "/v1/key/create/other", false},

		// Path tricks never reach an allow rule, whatever the policy.
		{"dotdot", minio, "/v1/key/create/my-app/../../delete/x", false},
		{"dotdot everything", everything, "/v1/key/create/my-app/../../delete/x", false},
		{"dotdot end", everything, "/v1/key/create/..", false},
		{"dot", minio, "/v1/key/create/./x", false},
		{"dot end", everything, "/v1/key/create/.", false},
		{"double slash lead", minio, "//v1/key/create/x", false},
		{"double slash inner", everything, "/v1/key//create/x", false},
		{"double slash end", everything, "/v1/status//", false},
		{"upper case", minio, "/V1/KEY/CREATE/x", false},
		{"mixed case", minio, "/v1/Key/create/x", false},
		{"relative", everything, "v1/key/create/x", false},
		{"empty path", everything, "", false},
		{"backslash", everything, `/v1/key/create\..\delete/x`, false},
		{"nul", everything, "/v1/key/create/x\x00", false},
		{"dotdot glob", glob, "/v1/key/create/../delete/my-key-internal", false},

		// Clean paths that look odd are fine.
		{"dot in name", everything, "/v1/key/create/.x", true},
		{"dots in name", everything, "/v1/key/create/x..", true},
		{"trailing slash", everything, "/v1/key/", true},
		{"root", everything, "/", true},

		// Compile accepts patterns that never match.
		{"accepts never-matching patterns", mustCompile(t, []string{"v1/status", "", "/v1/status"}, nil), "/v1/status", true},
		{"relative pattern never matches", mustCompile(t, []string{"v1/status"}, nil), "/v1/status", false},
		{"empty allow never matches", mustCompile(t, []string{""}, nil), "/v1/status", false},
		{"empty deny never matches", mustCompile(t, []string{"*"}, []string{""}), "/v1/status", true},
		{"duplicates", mustCompile(t, []string{"/v1/status", "/v1/status"}, []string{"/v1/x", "/v1/x"}), "/v1/status", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.policy.Allows(tt.path); got != tt.want {
				t.Errorf("Allows(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		wantErr bool
	}{
		{"empty", "", true},
		{"star", "*", false},
		{"stars", "**", false},
		{"literal", "/v1/status", false},
		{"prefix", "/v1/key/create/my-app*", false},
		{"glob", "/v1/key/*/my-key", false},
		{"leading star", "*/v1/status", false},
		{"root", "/", false},
		{"trailing slash", "/v1/key/", false},
		{"relative", "v1/status", true},
		{"relative star", "v1/*", true},
		{"star then text", "*v1/status", true},
		{"star then text trailing", "*v1*", true},
		{"double slash", "/v1//status", true},
		{"double slash trailing", "//*", true},
		{"dot segment", "/v1/./status", true},
		{"dotdot segment", "/v1/../status", true},
		{"dotdot last", "/v1/..", true},
		{"dot last trailing star", "/v1/key/create/.*", false},
		{"dotdot last trailing star", "/v1/key/create/..*", false},
		{"dot glob segment", "/v1/.*/x", false},
		{"backslash", `/v1/key\*`, true},
		{"nul", "/v1/\x00", true},
		{"question mark", "/v1/key/create/a?", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(tt.pattern)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Check(%q) = %v, want error: %v", tt.pattern, err, tt.wantErr)
			}
			if err != nil && tt.pattern != "" && !strings.Contains(err.Error(), strconv.Quote(tt.pattern)) {
				t.Errorf("Check(%q) = %q, want the pattern named in the error", tt.pattern, err)
			}
		})
	}
}

// TestCheckAgreesWithMatch checks that a pattern rejected by Check does
// not match any of a set of clean paths, and that IsClean agrees with the
// path tricks Allows must reject.
func TestCheckAgreesWithMatch(t *testing.T) {
	t.Parallel()
	paths := []string{
		"/", "/v1", "/v1/", "/v1/status", "/v1/key/create/x", "/v1/key/create/.x",
		"/v1/key/create/..x", "/v1/key/create/x/y", "/a", "/a/b/c/d",
	}
	patterns := []string{
		"", "v1/status", "*v1/status", "/v1//status", "//*", "/v1/./status", "/v1/..",
		`/v1/key\*`, "*v1*", "/v1/*/./x",
	}
	for _, pattern := range patterns {
		if Check(pattern) == nil {
			t.Errorf("Check(%q) = nil, want error", pattern)
			continue
		}
		for _, path := range paths {
			if !IsClean(path) {
				t.Fatalf("IsClean(%q) = false, want true", path)
			}
			if Match(pattern, path) {
				t.Errorf("Match(%q, %q) = true, but Check says it never matches", pattern, path)
			}
		}
	}
}

func TestAllowsDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, []string{"/v1/key/create/*", "/v1/key/*/my-key-internal*", "/v1/status"},
		[]string{"/v1/key/generate/my-app-internal*"})
	paths := []string{"/v1/status", "/v1/key/decrypt/my-key-internal-x", "/v1/key/delete/x"}
	allocs := testing.AllocsPerRun(100, func() {
		for _, path := range paths {
			p.Allows(path)
		}
	})
	if allocs != 0 {
		t.Errorf("Allows allocates %v times per run, want 0", allocs)
	}
}

// refMatch is a direct, recursive statement of the pattern semantics used
// as the reference for the compiled matcher. It memoises on the lengths of
// the remaining pattern and path so that it stays polynomial.
func refMatch(pattern, path string) bool {
	if pattern == "" {
		return false
	}
	memo := map[[2]int]bool{}
	var glob func(p, s string) bool
	glob = func(p, s string) bool {
		key := [2]int{len(p), len(s)}
		if v, ok := memo[key]; ok {
			return v
		}
		var v bool
		switch {
		case p == "":
			v = s == ""
		case p == "*":
			v = true // a '*' ending the pattern matches anything
		case p[0] == '*':
			// An inner '*' matches any run of bytes other than '/'.
			for i := 0; i <= len(s); i++ {
				if glob(p[1:], s[i:]) {
					v = true
					break
				}
				if i < len(s) && s[i] == '/' {
					break
				}
			}
		default:
			v = s != "" && s[0] == p[0] && glob(p[1:], s[1:])
		}
		memo[key] = v
		return v
	}
	return glob(pattern, path)
}

func FuzzMatch(f *testing.F) {
	seeds := []struct{ pattern, path string }{
		{"", ""},
		{"*", "/v1/status"},
		{"/v1/status", "/v1/status"},
		{"/v1/key/*", "/v1/key/create/x"},
		{"/v1/key/*/my-key", "/v1/key/create/my-key"},
		{"/v1/key/*/my-key", "/v1/key/create/a/my-key"},
		{"/v1/key/*/my-key-internal*", "/v1/key/generate/my-key-internal2"},
		{"/v1/key/create/*a*b", "/v1/key/create/xaybzb"},
		{"*/v1/*", "/v1/x"},
		{"/v1/key/create/[ab]?", "/v1/key/create/[ab]?"},
		{"/v1/key/create/my-app*", "/v1/key/create/my-app/../../delete/x"},
		{"/v1/**", "//v1/key"},
	}
	for _, s := range seeds {
		f.Add(s.pattern, s.path)
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := Match(pattern, path)
		p, err := Compile([]string{pattern}, nil)
		if err != nil {
			t.Fatalf("Compile(%q) error: %v", pattern, err)
		}
		if allowed := p.Allows(path); allowed != (got && IsClean(path)) {
			t.Fatalf("Allows(%q) = %v with pattern %q, want Match && IsClean = %v", path, allowed, pattern, got && IsClean(path))
		}
		if got && IsClean(path) && Check(pattern) != nil {
			t.Fatalf("pattern %q matches clean path %q, but Check says: %v", pattern, path, Check(pattern))
		}

		switch stars := strings.Count(pattern, "*"); {
		case pattern == "":
			if got {
				t.Fatalf("Match(%q, %q) = true, want false for the empty pattern", pattern, path)
			}
		case stars == 0:
			if want := pattern == path; got != want {
				t.Fatalf("Match(%q, %q) = %v, want %v (literal)", pattern, path, got, want)
			}
		case stars == 1 && strings.HasSuffix(pattern, "*"):
			if want := strings.HasPrefix(path, pattern[:len(pattern)-1]); got != want {
				t.Fatalf("Match(%q, %q) = %v, want %v (prefix)", pattern, path, got, want)
			}
		}
		if want := refMatch(pattern, path); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, path, got, want)
		}
	})
}

func BenchmarkAllows(b *testing.B) {
	p := mustCompile(b, []string{
		"/v1/key/create/*",
		"/v1/key/generate/*",
		"/v1/key/decrypt/*",
		"/v1/key/*/my-key-internal*",
		"/v1/status",
	}, []string{
		"/v1/key/generate/my-app-internal*",
	})
	benchmarks := []struct {
		name string
		path string
	}{
		{"literal", "/v1/status"},
		{"prefix", "/v1/key/decrypt/minio-default-key"},
		{"glob", "/v1/key/encrypt/my-key-internal-2"},
		{"denied", "/v1/key/generate/my-app-internal"},
		{"no match", "/v1/key/delete/minio-default-key"},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Allows(bm.path)
			}
		})
	}
}

func mustCompile(tb testing.TB, allow, deny []string) *Policy {
	tb.Helper()
	p, err := Compile(allow, deny)
	if err != nil {
		tb.Fatalf("Compile(%q, %q) error: %v", allow, deny, err)
	}
	return p
}
