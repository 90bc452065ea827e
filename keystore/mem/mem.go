// Package mem implements an in-memory [keystore.Store].
//
// It is the store of `kes server --dev` and the library default: fast,
// shared by nothing and gone when the process exits. Because it holds the
// serialised keys in process memory it has no configuration section and is
// not registered with [keystore.Register].
package mem

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/openkes/openkes/keystore"
)

// latency is what Status reports. The original reports a constant 1 ms, so
// /v1/status shows keystore_latency 1; a measured value would mostly be 0.
const latency = time.Millisecond

// Store is an in-memory key store. The zero value is not usable; call
// [New]. A Store is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	values map[string][]byte
}

var _ keystore.Store = (*Store)(nil)

// New returns an empty in-memory store.
func New() *Store {
	return &Store{values: map[string][]byte{}}
}

// String returns "In Memory", the name shown in the start-up banner.
func (s *Store) String() string { return "In Memory" }

// Create stores a copy of value under name. It returns an error wrapping
// [keystore.ErrExists] if name is already present. It never fails
// otherwise.
func (s *Store) Create(_ context.Context, name string, value []byte) error {
	v := make([]byte, len(value))
	copy(v, value)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; ok {
		clear(v)
		return fmt.Errorf("mem: create %q: %w", name, keystore.ErrExists)
	}
	s.values[name] = v
	return nil
}

// Get returns a copy of the value stored under name, or an error wrapping
// [keystore.ErrNotFound]. It never fails otherwise.
func (s *Store) Get(_ context.Context, name string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.values[name]
	if !ok {
		return nil, fmt.Errorf("mem: get %q: %w", name, keystore.ErrNotFound)
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}

// Delete removes name and clears its value. It returns an error wrapping
// [keystore.ErrNotFound] if name is not present, and never fails otherwise.
func (s *Store) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	if !ok {
		return fmt.Errorf("mem: delete %q: %w", name, keystore.ErrNotFound)
	}
	delete(s.values, name)
	clear(v) // Callers only ever saw copies.
	return nil
}

// List returns the sorted names starting with prefix, paged by n as
// described at [keystore.Store.List]. It never fails.
func (s *Store) List(_ context.Context, prefix string, n int) ([]string, string, error) {
	s.mu.RLock()
	names := make([]string, 0, len(s.values))
	for name := range s.values {
		names = append(names, name)
	}
	s.mu.RUnlock()

	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// Status reports a constant latency of 1 ms. It never fails.
func (s *Store) Status(context.Context) (keystore.State, error) {
	return keystore.State{Latency: latency}, nil
}

// Close clears and drops every stored value (best effort: Go cannot
// promise that no other copy exists). The store is empty afterwards. Close
// never fails.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.values {
		clear(v)
	}
	clear(s.values)
	return nil
}
