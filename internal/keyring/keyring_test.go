package keyring_test

import (
	"strings"
	"testing"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/keyring"
)

func TestParseEntryName(t *testing.T) {
	tests := []struct {
		entry    string
		name     string
		n        int
		deletion bool
		ok       bool
	}{
		{"my-key", "", 0, false, false},
		{"my-key-v2-", "my-key", 2, false, true},
		{"my-key-v10-", "my-key", 10, false, true},
		{"a-v2-v3-", "a-v2", 3, false, true},
		{"my-key-deleted-", "my-key", 0, true, true},
		{"a-v2-deleted-", "a-v2", 0, true, true},
		{"x-deleted-v2-", "x-deleted", 2, false, true},
		{"x-deleted-deleted-", "x-deleted", 0, true, true},
		{"k-v4294967295-", "k", 4294967295, false, true},
		{"k-v4294967296-", "", 0, false, false}, // beyond a ciphertext header
		{"k-v1-", "", 0, false, false},          // version 1 is the key itself
		{"k-v0-", "", 0, false, false},
		{"k-v02-", "", 0, false, false}, // not canonical
		{"k-v-", "", 0, false, false},
		{"k-vx-", "", 0, false, false},
		{"-v2-", "", 0, false, false},
		{"k--v2-", "", 0, false, false}, // "k-" is no key name
		{"-deleted-", "", 0, false, false},
		{"k--deleted-", "", 0, false, false},
		{"k-v2", "", 0, false, false},
		{"k-v+2-", "", 0, false, false},
	}
	for _, tt := range tests {
		name, n, deletion, ok := keyring.ParseEntryName(tt.entry)
		if name != tt.name || n != tt.n || deletion != tt.deletion || ok != tt.ok {
			t.Errorf("keyring.ParseEntryName(%q) = %q, %d, %v, %v; want %q, %d, %v, %v",
				tt.entry, name, n, deletion, ok, tt.name, tt.n, tt.deletion, tt.ok)
		}
	}
}

// FuzzParseEntryName checks that the entries of versions and deletions
// are never valid key names (so they cannot collide with a key, and List
// hides no key), and that every accepted entry is the one VersionName or
// DeletionName makes of the name it yields.
func FuzzParseEntryName(f *testing.F) {
	for _, s := range []string{"k", "k-v2-", "a-v2-v3-", "k-deleted-", "x-deleted-v9-", "k-v02-", "-v2-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		if api.ValidName(entry) {
			if _, _, _, ok := keyring.ParseEntryName(entry); ok {
				t.Fatalf("valid key name %q taken for an entry", entry)
			}
			for _, e := range []string{keyring.VersionName(entry, 2), keyring.VersionName(entry, 1<<31), keyring.DeletionName(entry)} {
				if api.ValidName(e) {
					t.Fatalf("entry %q of key %q is a valid key name", e, entry)
				}
				if name, _, _, ok := keyring.ParseEntryName(e); !ok || name != entry {
					t.Fatalf("keyring.ParseEntryName(%q) = %q, %v; want %q", e, name, ok, entry)
				}
			}
		}
		name, n, deletion, ok := keyring.ParseEntryName(entry)
		if !ok {
			return
		}
		if strings.HasSuffix(name, "-") || name == "" {
			t.Fatalf("keyring.ParseEntryName(%q) = name %q", entry, name)
		}
		want := keyring.DeletionName(name)
		if !deletion {
			want = keyring.VersionName(name, n)
		}
		if want != entry {
			t.Fatalf("keyring.ParseEntryName(%q) = %q, %d, %v, which names entry %q", entry, name, n, deletion, want)
		}
	})
}
