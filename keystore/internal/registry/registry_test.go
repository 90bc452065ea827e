package registry

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := Registry[int]{Caller: "test: Register"}
	if kinds := r.Kinds(); len(kinds) != 0 {
		t.Fatalf("Kinds() of an empty registry = %q", kinds)
	}
	r.Register("b", func() int { return 2 })
	r.Register("a", func() int { return 1 })
	if kinds := r.Kinds(); !slices.Equal(kinds, []string{"a", "b"}) {
		t.Errorf("Kinds() = %q, want [a b]", kinds)
	}
	if f, ok := r.Lookup("b"); !ok || f() != 2 {
		t.Errorf("Lookup(b) = %t; want the constructor of b", ok)
	}
	if _, ok := r.Lookup("c"); ok {
		t.Errorf("Lookup(c) found an unregistered kind")
	}
	defer func() {
		if got := recover(); got != `test: Register called twice for "a"` {
			t.Errorf("second Register panicked with %v", got)
		}
	}()
	r.Register("a", func() int { return 3 })
}
