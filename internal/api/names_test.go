package api

import (
	"strings"
	"testing"
)

// TestValidNames checks ValidName and ValidPattern on names each must
// accept and names each must reject.
func TestValidNames(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name           string
		valid          func(string) bool
		accept, reject []string
	}{{
		name:  "ValidName",
		valid: ValidName,
		accept: []string{"my-key", "abc123", "0", "_-___---_", "_0", "0-Z", "my_key-0", "disabled",
			strings.Repeat("a", 80)},
		reject: []string{"", "my.key", "key/", "☰", "hel<lo", "Εmacs", strings.Repeat("a", 81),
			"_", "-a", "a-", "*", "a*"},
	}, {
		name:   "ValidPattern",
		valid:  ValidPattern,
		accept: []string{"my-key", "*", "my*", "_-*", ""},
		reject: []string{"*-*", "my.key", "key/", strings.Repeat("a", 81), "_", "-*", "a-", "a**"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range tt.accept {
				if !tt.valid(s) {
					t.Errorf("%s(%q) = false, want true", tt.name, s)
				}
			}
			for _, s := range tt.reject {
				if tt.valid(s) {
					t.Errorf("%s(%q) = true, want false", tt.name, s)
				}
			}
		})
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"my-key", "", "_", "a-", "☰", "a*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) {
			if len(s) == 0 || len(s) > MaxNameLen || strings.ContainsAny(s, "/.*\\ ") {
				t.Fatalf("ValidName(%q) = true for an unsafe name", s)
			}
			if !ValidPattern(s) {
				t.Fatalf("ValidName(%q) = true but ValidPattern = false", s)
			}
		}
		if ValidPattern(s) && strings.Contains(strings.TrimSuffix(s, "*"), "*") {
			t.Fatalf("ValidPattern(%q) = true with an inner '*'", s)
		}
	})
}
