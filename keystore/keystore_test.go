package keystore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/keystore"
)

func TestPage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		names    []string
		prefix   string
		n        int
		want     []string
		wantNext string
	}{
		{name: "nil", names: nil, want: []string{}},
		{name: "empty", names: []string{}, prefix: "my", n: 1, want: []string{}},
		{name: "sorts", names: []string{"b", "a", "c"}, want: []string{"a", "b", "c"}},
		{name: "byte-order", names: []string{"b", "B", "_", "0", "-"}, want: []string{"-", "0", "B", "_", "b"}},
		{name: "prefix", names: []string{"my-key2", "other", "my-key", "my_app", "a"}, prefix: "my", want: []string{"my-key", "my-key2", "my_app"}},
		{name: "prefix-n-1", names: []string{"my-key2", "other", "my-key", "my_app"}, prefix: "my", n: 1, want: []string{"my-key"}, wantNext: "my-key2"},
		{name: "prefix-n-exact", names: []string{"my-key2", "my-key"}, prefix: "my", n: 2, want: []string{"my-key", "my-key2"}},
		{name: "prefix-no-match", names: []string{"a", "z"}, prefix: "m", want: []string{}},
		{name: "prefix-after-all", names: []string{"a", "b"}, prefix: "c", n: 1, want: []string{}},
		{name: "prefix-longer-than-name", names: []string{"my", "my-key"}, prefix: "my-", want: []string{"my-key"}},
		{name: "prefix-equals-name", names: []string{"my", "myx", "mz"}, prefix: "my", want: []string{"my", "myx"}},
		{name: "negative-n", names: []string{"b", "a"}, n: -1, want: []string{"a", "b"}},
		{name: "n-all", names: []string{"c", "b", "a"}, n: 2, want: []string{"a", "b"}, wantNext: "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, next := keystore.Page(slices.Clone(tt.names), tt.prefix, tt.n)
			if page == nil {
				t.Errorf("Page(%q, %q, %d) returned a nil slice, want non-nil", tt.names, tt.prefix, tt.n)
			}
			if diff := cmp.Diff(tt.want, page); diff != "" {
				t.Errorf("Page(%q, %q, %d) mismatch (-want +got):\n%s", tt.names, tt.prefix, tt.n, diff)
			}
			if next != tt.wantNext {
				t.Errorf("Page(%q, %q, %d) next = %q, want %q", tt.names, tt.prefix, tt.n, next, tt.wantNext)
			}
		})
	}
}

// TestPageCapacity checks that appending to a page cannot overwrite the
// caller's remaining names.
func TestPageCapacity(t *testing.T) {
	t.Parallel()
	names := []string{"a", "b", "c"}
	page, _ := keystore.Page(names, "", 1)
	_ = append(page, "x")
	if names[1] != "b" {
		t.Errorf("append to a page changed the input: %q", names)
	}
}

func TestUnreachableError(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	tests := []struct {
		name    string
		err     error
		want    bool
		wantMsg string
	}{
		{name: "plain", err: &keystore.UnreachableError{Err: cause}, want: true, wantMsg: "key store is not reachable: connection refused"},
		{name: "nil-cause", err: &keystore.UnreachableError{}, want: true, wantMsg: "key store is not reachable"},
		{name: "wrapped", err: fmt.Errorf("vault: %w", &keystore.UnreachableError{Err: cause}), want: true},
		{name: "other", err: cause},
		{name: "nil", err: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := keystore.IsUnreachable(tt.err); got != tt.want {
				t.Errorf("IsUnreachable(%v) = %t, want %t", tt.err, got, tt.want)
			}
			if tt.wantMsg != "" && tt.err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.wantMsg)
			}
		})
	}
	if err := (&keystore.UnreachableError{Err: cause}); !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
}

type testConfig struct{}

func (testConfig) Validate() error { return nil }
func (testConfig) Connect(context.Context, *slog.Logger) (keystore.Store, error) {
	return nil, errors.New("not implemented")
}

// registerRuns makes the kind of TestRegister unique per run (-count).
var registerRuns int

// TestRegister touches the global registry, so it does not run in parallel
// and uses a kind no backend uses.
func TestRegister(t *testing.T) {
	registerRuns++
	kind := fmt.Sprintf("keystore_test.register%d", registerRuns)
	keystore.Register(kind, func() keystore.Config { return testConfig{} })

	newConfig, ok := keystore.Lookup(kind)
	if !ok || newConfig == nil {
		t.Fatalf("Lookup(%q) = _, %t; want the registered constructor", kind, ok)
	}
	if _, ok := newConfig().(testConfig); !ok {
		t.Errorf("Lookup(%q)() = %T, want testConfig", kind, newConfig())
	}
	if !slices.Contains(keystore.Kinds(), kind) || !slices.IsSorted(keystore.Kinds()) {
		t.Errorf("Kinds() = %q, want a sorted list containing %q", keystore.Kinds(), kind)
	}
	if _, ok := keystore.Lookup("keystore_test.missing"); ok {
		t.Errorf("Lookup of an unregistered kind = true, want false")
	}

	defer func() {
		if recover() == nil {
			t.Errorf("second Register(%q) did not panic", kind)
		}
	}()
	keystore.Register(kind, func() keystore.Config { return testConfig{} })
}
