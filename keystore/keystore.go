// Package keystore defines the contract between the KES server and the
// systems that persist its keys (a directory, Vault, etcd, a cloud KMS, ...).
//
// A key store is a byte-oriented, create-only key/value store: the server
// serialises every key (see internal/crypto) and hands the store an opaque
// value under the key's name. The store never sees plaintext key material
// unless it is the in-memory store.
//
// # Implementations
//
// Each backend lives in its own package below keystore/ and registers its
// configuration type with [Register] from an init function, so the config
// parser can find it by the name of its YAML section (for example "fs" or
// "vault"). The conformance suite in keystore/keystoretest must pass for
// every implementation.
package keystore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/openkes/openkes/keystore/internal/registry"
)

// ErrNotFound is returned, possibly wrapped, by Get and Delete when no key
// with the given name exists.
var ErrNotFound = errors.New("key does not exist")

// ErrExists is returned, possibly wrapped, by Create when a key with the
// given name already exists.
var ErrExists = errors.New("key already exists")

// UnreachableError reports that a key store could not be reached at all
// (network error, sealed Vault, missing directory, ...), as opposed to a
// store that answered with an error. The server answers /v1/ready with 504
// for an UnreachableError and with 502 for any other Status error.
type UnreachableError struct {
	Err error
}

func (e *UnreachableError) Error() string {
	if e.Err == nil {
		return "key store is not reachable"
	}
	return "key store is not reachable: " + e.Err.Error()
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err is or wraps an *UnreachableError.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// State describes a reachable key store.
type State struct {
	// Latency is the time the store took to answer the status probe.
	Latency time.Duration
}

// Store is a key store. Implementations must be safe for concurrent use.
//
// Names passed to a Store have already been validated by the server (1 to
// 80 characters of [A-Za-z0-9_-]); a Store may apply stricter rules of its
// own and return an error for names it cannot hold.
type Store interface {
	// Create stores value under name if, and only if, no entry with that
	// name exists. It returns an error wrapping ErrExists otherwise.
	// Create must be atomic: of two concurrent Creates for one name
	// exactly one succeeds.
	Create(ctx context.Context, name string, value []byte) error

	// Get returns the value stored under name, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)

	// Delete removes the entry with the given name. It returns an error
	// wrapping ErrNotFound if there is none (stores that cannot tell may
	// return nil).
	Delete(ctx context.Context, name string) error

	// List returns the names that start with prefix, sorted
	// lexicographically. If n > 0 at most n names are returned and next is
	// the first name not returned, or "" when there are no more. If n <= 0
	// all matching names are returned and next is "".
	List(ctx context.Context, prefix string, n int) (names []string, next string, err error)

	// Status probes the store. A store that cannot be reached returns an
	// error wrapping *UnreachableError.
	Status(ctx context.Context) (State, error)

	// Close releases resources and stops background work.
	io.Closer
}

// Config is the configuration of one kind of key store, as decoded from
// the keystore.<kind> section of the config file.
type Config interface {
	// Validate reports every problem of the configuration, joined with
	// errors.Join. Each error names the offending field relative to the
	// section, e.g. "path: required".
	Validate() error

	// Connect opens the key store described by the configuration. Connect
	// should not fail just because the store is unreachable right now if
	// the store can recover later; it may fail for permanent problems.
	Connect(ctx context.Context, log *slog.Logger) (Store, error)
}

var kinds = registry.Registry[Config]{Caller: "keystore: Register"}

// Register makes a kind of key store available under the given section
// name of the config file (for example "fs", "vault" or
// "aws.secretsmanager"). The newConfig function returns a fresh, empty
// configuration into which the YAML section is decoded; its fields must
// carry yaml struct tags. Register panics if kind is registered twice.
func Register(kind string, newConfig func() Config) { kinds.Register(kind, newConfig) }

// Lookup returns the config constructor registered for kind.
func Lookup(kind string) (newConfig func() Config, ok bool) { return kinds.Lookup(kind) }

// Kinds returns the sorted names of all registered kinds.
func Kinds() []string { return kinds.Kinds() }

// Page implements the List contract for stores that can only produce the
// complete set of names: it sorts names in place, keeps those starting with
// prefix and applies the page size n as described at [Store.List].
func Page(names []string, prefix string, n int) (page []string, next string) {
	slices.Sort(names)
	start, _ := slices.BinarySearch(names, prefix)
	end := start
	for end < len(names) && len(names[end]) >= len(prefix) && names[end][:len(prefix)] == prefix {
		end++
	}
	page = names[start:end]
	if n > 0 && len(page) > n {
		return page[:n:n], page[n]
	}
	if page == nil {
		page = []string{}
	}
	return page, ""
}

// Watcher is implemented by stores that can tell a server about changes
// made through other servers, so that its key cache never serves a key
// that was deleted or replaced elsewhere (see the etcd store). The server
// checks for it with a type assertion.
type Watcher interface {
	// Watch calls changed with the name of every key that is created,
	// replaced or deleted in the store, by any client, from the moment
	// Watch is called until ctx is done. It calls changed with "" when it
	// cannot tell which keys changed (for example when the store's change
	// history it was following is gone); the caller must then treat every
	// key as changed. Watch blocks until ctx is done and returns nil then;
	// it reconnects by itself after errors. Calls of changed are not
	// concurrent.
	Watch(ctx context.Context, changed func(name string)) error
}

// Replacer is implemented by stores that can atomically replace the value
// of an existing key, which `kes migrate --force` uses to rewrite keys in
// place (for example to seal them) without a moment in which the key is
// missing. The server itself never replaces keys.
type Replacer interface {
	// Replace sets the value of the existing key name. It returns an
	// error wrapping ErrNotFound if there is no such key.
	Replace(ctx context.Context, name string, value []byte) error
}
