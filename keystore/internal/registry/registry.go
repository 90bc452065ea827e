// Package registry is the table of config kinds that keystore.Register
// and seal.RegisterKEK fill: a name for each kind of section, and a
// function that returns a fresh, empty config for it.
package registry

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Registry maps kinds to config constructors. It is safe for concurrent
// use; its zero value is empty, with Caller set to name it in panics.
type Registry[T any] struct {
	// Caller is what Register panics name, e.g. "keystore: Register".
	Caller string

	mu sync.RWMutex
	m  map[string]func() T
}

// Register adds kind. It panics if kind is registered twice.
func (r *Registry[T]) Register(kind string, newConfig func() T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[kind]; ok {
		panic(fmt.Sprintf("%s called twice for %q", r.Caller, kind))
	}
	if r.m == nil {
		r.m = map[string]func() T{}
	}
	r.m[kind] = newConfig
}

// Lookup returns the constructor registered for kind.
func (r *Registry[T]) Lookup(kind string) (newConfig func() T, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	newConfig, ok = r.m[kind]
	return newConfig, ok
}

// Kinds returns the sorted names of the registered kinds.
func (r *Registry[T]) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.m))
}
