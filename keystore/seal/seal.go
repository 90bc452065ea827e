// Package seal encrypts the values of a key store with a key-encryption
// key (KEK) before they leave the server, for stores that are not a KMS
// themselves (a directory, etcd). A copy of the directory or of the etcd
// data then reveals no key material.
//
// A sealed value is "kes:sealed:v1:<kek-id>:<payload>": the KEK's ID, and
// the value encrypted with the key name bound in, so that a value copied
// to another name does not unseal. A sealed store refuses values that are
// not sealed ([*UnsealedError]), because whoever can write to the store
// could otherwise plant a key; [AllowUnsealed] and seal.allow_unsealed
// relax that for the time of a migration (kes migrate --force).
//
// This package knows no KMS itself: a KMS that can hold a KEK implements
// [KEKConfig] in its own package and is registered with [RegisterKEK] from
// keystore/all, so a binary built without the KMS has none of its code.
//
// The seal section is described in docs/config.md#seal; migrating a store
// in docs/production.md#sealing-keys-at-rest-etcd-and-fs.
package seal

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/openkes/openkes/keystore"
)

// prefix starts every sealed value; version 1 of the format.
const (
	prefix   = "kes:sealed:"
	prefixV1 = prefix + "v1:"
)

// ErrUnseal is returned, wrapped, when a sealed value cannot be unsealed:
// it was modified, belongs to another key name or was sealed with another
// KEK.
var ErrUnseal = errors.New("seal: cannot unseal the stored value")

// KEK is a key-encryption key.
type KEK interface {
	// ID identifies the KEK in sealed values. It contains no ':'.
	ID() string
	// Seal encrypts value, bound to name, and returns the payload.
	Seal(ctx context.Context, name string, value []byte) (string, error)
	// Unseal reverses Seal.
	Unseal(ctx context.Context, name, payload string) ([]byte, error)
}

// IsSealed reports whether a stored value is sealed.
func IsSealed(value []byte) bool { return bytes.HasPrefix(value, []byte(prefix)) }

// SealedWith returns the ID of the KEK that sealed value, or "" and false
// if value is not sealed (or not in a format this package knows).
func SealedWith(value []byte) (id string, ok bool) {
	rest, ok := bytes.CutPrefix(value, []byte(prefixV1))
	if !ok {
		return "", false
	}
	id, _, ok = strings.Cut(string(rest), ":")
	return id, ok && id != ""
}

// UnsealedError is returned by a sealed store's Get for a value that is
// stored unsealed, unless such reads are allowed (see [AllowUnsealed]).
// It names the key, never the value.
type UnsealedError struct {
	Name string // the key
}

func (e *UnsealedError) Error() string {
	return fmt.Sprintf("seal: key %q is stored unsealed in a sealed key store "+
		"(see docs/production.md, \"Sealing keys at rest\": reseal it with "+
		"kes migrate --force --from <config> --to <config>, or set seal.allow_unsealed "+
		"for the time of a migration)", e.Name)
}

type allowUnsealedKey struct{}

// AllowUnsealed returns a context with which the Get of a sealed store
// returns a value stored unsealed, logging a warning that names the key,
// instead of refusing it with an [*UnsealedError]. kes migrate reads its
// source with it, so that it can reseal such values.
func AllowUnsealed(ctx context.Context) context.Context {
	return context.WithValue(ctx, allowUnsealedKey{}, true)
}

// unsealedAllowed reports whether ctx comes from AllowUnsealed.
func unsealedAllowed(ctx context.Context) bool {
	allowed, _ := ctx.Value(allowUnsealedKey{}).(bool)
	return allowed
}

// Options are the settings of a sealed store besides its KEKs.
type Options struct {
	// AllowUnsealed makes every Get return values stored unsealed,
	// as with [AllowUnsealed] (seal.allow_unsealed).
	AllowUnsealed bool

	// Log receives a warning for every unsealed value read; nil
	// discards them.
	Log *slog.Logger
}

// Store is a key store whose values are sealed. Create seals with the
// current KEK; Get unseals with whichever configured KEK sealed the value
// and refuses values that are not sealed (see [UnsealedError]). Names,
// List, Delete and Status are those of the inner store.
type Store struct {
	inner         keystore.Store
	current       KEK
	keks          map[string]KEK
	allowUnsealed bool
	log           *slog.Logger
}

var _ keystore.Store = (*Store)(nil)

// Wrap returns a store that seals the values of inner with current. The
// old KEKs can still unseal values, but never seal. If inner implements
// keystore.Watcher, so does the returned store. Unsealed values are
// refused (see [WrapWith]).
func Wrap(inner keystore.Store, current KEK, old ...KEK) keystore.Store {
	return WrapWith(inner, Options{}, current, old...)
}

// WrapWith is [Wrap] with options.
func WrapWith(inner keystore.Store, opts Options, current KEK, old ...KEK) keystore.Store {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		inner:         inner,
		current:       current,
		keks:          map[string]KEK{current.ID(): current},
		allowUnsealed: opts.AllowUnsealed,
		log:           log,
	}
	for _, k := range old {
		if _, ok := s.keks[k.ID()]; !ok {
			s.keks[k.ID()] = k
		}
	}
	if w, ok := inner.(keystore.Watcher); ok {
		return &watchingStore{Store: s, w: w}
	}
	return s
}

// Sealed reports that the store's values are sealed; it is always true.
// Consumers that must know (kes migrate) declare interface{ Sealed()
// bool } and check for it with a type assertion.
func (s *Store) Sealed() bool { return true }

type watchingStore struct {
	*Store
	w keystore.Watcher
}

func (s *watchingStore) Watch(ctx context.Context, changed func(string)) error {
	return s.w.Watch(ctx, changed)
}

// Create seals value and creates it in the inner store.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	sealed, err := s.seal(ctx, name, value)
	if err != nil {
		return err
	}
	return s.inner.Create(ctx, name, sealed)
}

func (s *Store) seal(ctx context.Context, name string, value []byte) ([]byte, error) {
	if IsSealed(value) {
		// Sealing a sealed value would make a key nobody can parse:
		// this happens when a store is read without its seal config
		// and written with it (kes migrate from the wrong config).
		return nil, fmt.Errorf("seal: the value for key '%s' is sealed already; read it through the sealed key store", name)
	}
	payload, err := s.current.Seal(ctx, name, value)
	if err != nil {
		return nil, fmt.Errorf("seal: key '%s' with KEK %s: %w", name, s.current.ID(), err)
	}
	return []byte(prefixV1 + s.current.ID() + ":" + payload), nil
}

// Replace seals value and replaces the value of name in the inner store.
// It fails if the inner store is not a keystore.Replacer.
func (s *Store) Replace(ctx context.Context, name string, value []byte) error {
	r, ok := s.inner.(keystore.Replacer)
	if !ok {
		return fmt.Errorf("seal: the key store cannot replace key '%s' in place: %w", name, errors.ErrUnsupported)
	}
	sealed, err := s.seal(ctx, name, value)
	if err != nil {
		return err
	}
	return r.Replace(ctx, name, sealed)
}

// Get reads name from the inner store and unseals it. A value that is
// not sealed is refused with an [*UnsealedError], unless the store was
// opened with Options.AllowUnsealed or ctx comes from [AllowUnsealed]:
// then it is returned as stored, and the read logged at WARN.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	v, err := s.inner.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if IsSealed(v) {
		return s.unseal(ctx, name, v)
	}
	if !s.allowUnsealed && !unsealedAllowed(ctx) {
		return nil, &UnsealedError{Name: name}
	}
	s.log.WarnContext(ctx, "seal: read a key stored unsealed from a sealed key store; reseal it with kes migrate --force",
		slog.String("key", name))
	return v, nil
}

func (s *Store) unseal(ctx context.Context, name string, v []byte) ([]byte, error) {
	id, ok := SealedWith(v)
	if !ok {
		return nil, fmt.Errorf("%w: key '%s' is sealed in an unknown format", ErrUnseal, name)
	}
	kek, ok := s.keks[id]
	if !ok {
		return nil, fmt.Errorf("%w: key '%s' is sealed with KEK %s, which is not configured", ErrUnseal, name, id)
	}
	payload := string(v[len(prefixV1)+len(id)+1:])
	plain, err := kek.Unseal(ctx, name, payload)
	if err != nil {
		return nil, fmt.Errorf("seal: key '%s' with KEK %s: %w", name, id, err)
	}
	return plain, nil
}

// NeedsReseal reports whether the stored value of name is not sealed with
// the current KEK (it is unsealed, or sealed with an old KEK).
func (s *Store) NeedsReseal(ctx context.Context, name string) (bool, error) {
	v, err := s.inner.Get(ctx, name)
	if err != nil {
		return false, err
	}
	id, ok := SealedWith(v)
	return !ok || id != s.current.ID(), nil
}

// String describes the inner store and the current KEK, e.g.
// "Filesystem: ./keys (sealed, KEK local-0123456789abcdef)", for the
// start-up banner.
func (s *Store) String() string {
	inner := "key store"
	if str, ok := s.inner.(fmt.Stringer); ok {
		inner = str.String()
	}
	return inner + " (sealed, KEK " + s.current.ID() + ")"
}

func (s *Store) Delete(ctx context.Context, name string) error { return s.inner.Delete(ctx, name) }

func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	return s.inner.List(ctx, prefix, n)
}

func (s *Store) Status(ctx context.Context) (keystore.State, error) { return s.inner.Status(ctx) }

// Close closes the inner store and the KEKs that need closing.
func (s *Store) Close() error {
	err := s.inner.Close()
	for _, k := range s.keks {
		if c, ok := k.(io.Closer); ok {
			err = errors.Join(err, c.Close())
		}
	}
	return err
}

// LocalKEK is a 256-bit key-encryption key held by the server, used with
// AES-256-GCM.
type LocalKEK struct {
	id   string
	aead cipher.AEAD
}

// NewLocalKEK returns a KEK for the 32-byte key k.
func NewLocalKEK(k []byte) (*LocalKEK, error) {
	if len(k) != 32 {
		return nil, fmt.Errorf("seal: a KEK must be 32 bytes, not %d", len(k))
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The ID is a hash of the KEK under a fixed label: it identifies the
	// KEK without revealing anything usable about it.
	h := sha256.Sum256(append([]byte("openkes seal kek id\x00"), k...))
	return &LocalKEK{id: "local-" + hex.EncodeToString(h[:8]), aead: aead}, nil
}

// ReadKEKFile reads a KEK from a file holding 32 bytes, raw or as hex or
// standard base64 text (white space around the text is ignored).
func ReadKEKFile(path string) (*LocalKEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	k, err := parseKEK(b)
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", path, err)
	}
	return NewLocalKEK(k)
}

func parseKEK(b []byte) ([]byte, error) {
	if len(b) == 32 {
		return b, nil
	}
	text := bytes.TrimSpace(b)
	if len(text) == 64 {
		if k, err := hex.DecodeString(string(text)); err == nil {
			return k, nil
		}
	}
	if k, err := base64.StdEncoding.DecodeString(string(text)); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("not a 256-bit key: want 32 bytes, raw or as 64 hex digits or base64 text (e.g. from 'openssl rand -base64 32')")
}

func (k *LocalKEK) ID() string { return k.id }

// String returns the KEK's ID, never the key.
func (k *LocalKEK) String() string { return "seal KEK " + k.id }

// LogValue logs the KEK's ID, never the key.
func (k *LocalKEK) LogValue() slog.Value { return slog.StringValue(k.id) }

func (k *LocalKEK) Seal(_ context.Context, name string, value []byte) (string, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(value)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(k.aead.Seal(nonce, nonce, value, []byte(name))), nil
}

func (k *LocalKEK) Unseal(_ context.Context, name, payload string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || len(b) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: malformed payload", ErrUnseal)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, b[:n], b[n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%w: not authentic (modified, moved from another key name, or sealed with another KEK)", ErrUnseal)
	}
	return plain, nil
}
