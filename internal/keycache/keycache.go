// Package keycache is the read-through, in-memory cache of decoded keys
// between the server and its key store.
//
// STUB written by the lead; the cache helper implements it. Exported
// signatures must stay as they are (the server codes against them).
package keycache

import (
	"context"
	"log/slog"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
)

// Config controls expiry. Zero disables an expiry.
type Config struct {
	Any, Unused, Offline time.Duration
	// ProbeInterval is how often the store's Status is checked to detect
	// an outage; 0 means 10s.
	ProbeInterval time.Duration
}

// Cache is a key cache. Safe for concurrent use.
type Cache struct{}

// New returns a cache in front of store and starts its background work.
// The cache does not own the store: Close does not close it.
func New(store keystore.Store, conf Config, log *slog.Logger) *Cache { panic("unimplemented") }

// Get returns the decoded key version. Errors wrap keystore.ErrNotFound,
// *keystore.UnreachableError or a *DecodeError (stored value corrupt).
func (c *Cache) Get(ctx context.Context, name string) (crypto.KeyVersion, error) {
	panic("unimplemented")
}

// Create encodes v and creates it in the store (does not cache it).
func (c *Cache) Create(ctx context.Context, name string, v *crypto.KeyVersion) error {
	panic("unimplemented")
}

// Delete deletes from the store, then drops the entry from the cache.
func (c *Cache) Delete(ctx context.Context, name string) error { panic("unimplemented") }

// List passes through to the store.
func (c *Cache) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	panic("unimplemented")
}

// Status reports the store's state; while the cache has marked the store
// offline it returns an *keystore.UnreachableError at once.
func (c *Cache) Status(ctx context.Context) (keystore.State, error) { panic("unimplemented") }

// Close stops background work.
func (c *Cache) Close() error { panic("unimplemented") }

// DecodeError reports a stored value that is not a valid key.
type DecodeError struct {
	Name string
	Err  error
}

func (e *DecodeError) Error() string {
	return "keycache: invalid key '" + e.Name + "': " + e.Err.Error()
}
func (e *DecodeError) Unwrap() error { return e.Err }
