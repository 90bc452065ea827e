package api

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"my-key", true}, {"abc123", true}, {"0", true}, {"_-___---_", true},
		{"_0", true}, {"0-Z", true}, {"my_key-0", true}, {"disabled", true},
		{strings.Repeat("a", 80), true},
		{"", false}, {"my.key", false}, {"key/", false}, {"☰", false},
		{"hel<lo", false}, {"Εmacs", false}, {strings.Repeat("a", 81), false},
		{"_", false}, {"-a", false}, {"a-", false}, {"*", false}, {"a*", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		want    bool
	}{
		{"my-key", true}, {"*", true}, {"my*", true}, {"_-*", true}, {"", true},
		{"*-*", false}, {"my.key", false}, {"key/", false}, {strings.Repeat("a", 81), false},
		{"_", false}, {"-*", false}, {"a-", false}, {"a**", false},
	}
	for _, tt := range tests {
		if got := ValidPattern(tt.pattern); got != tt.want {
			t.Errorf("ValidPattern(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
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
