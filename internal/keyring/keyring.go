// Package keyring keeps the versions and the deletion state of KES keys in
// any [keystore.Store], with nothing but the store's own Create, Get,
// Delete and List (docs/keys.md).
//
// A key's first version is the store entry under the key's name, written
// and read exactly as upstream KES does, so a key that was never rotated
// is unchanged in every store. Version n >= 2 is a separate entry named
// "<name>-v<n>-", created with the store's atomic create-if-absent: two
// nodes rotating at once cannot both write one version, so they end with
// two distinct versions. A deletion scheduled with a window is the entry
// "<name>-deleted-". Both kinds of name end with '-', which no KES key
// name may, so they never collide with a key; [Ring.List] leaves them out.
//
// A version entry names the key it belongs to by a digest of the first
// version's stored value, so versions left behind by an interrupted
// delete are never taken for versions of a new key of the same name.
package keyring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
)

// The lifecycle errors of a [Ring].
var (
	// ErrScheduled is returned by [Ring.Rotate] and [Ring.ScheduleDeletion]
	// for a key that is scheduled for deletion.
	ErrScheduled = errors.New("key is scheduled for deletion")

	// ErrNotScheduled is returned by [Ring.Restore] for a key that is not
	// scheduled for deletion.
	ErrNotScheduled = errors.New("key is not scheduled for deletion")

	// ErrConflict is returned by [Ring.Rotate] when other rotations took
	// every version number it tried.
	ErrConflict = errors.New("key was rotated concurrently")
)

// maxRotateTries bounds how many version numbers Rotate tries.
const maxRotateTries = 8

// Version is one version of a key.
type Version struct {
	N   int // 1 for the key's first version
	Key crypto.KeyVersion
}

// Deletion is the state of a key scheduled for deletion.
type Deletion struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	DeleteAt    time.Time `json:"delete_at"`
	ScheduledBy string    `json:"scheduled_by,omitempty"`
}

// Expired reports whether the deletion window has ended at now.
func (d *Deletion) Expired(now time.Time) bool { return !now.Before(d.DeleteAt) }

// Key is a key with all its versions, oldest first. Versions[0] is
// version 1. A Key returned by [Ring.Load] is not changed afterwards and
// may be shared.
type Key struct {
	Versions []Version
	Deletion *Deletion // nil unless scheduled for deletion
}

// Latest returns the newest version.
func (k *Key) Latest() *Version { return &k.Versions[len(k.Versions)-1] }

// Rotated reports whether the key has a version other than 1.
func (k *Key) Rotated() bool { return len(k.Versions) > 1 }

// Version returns version n, if the key has it.
func (k *Key) Version(n int) (*Version, bool) {
	for i := len(k.Versions) - 1; i >= 0; i-- {
		if k.Versions[i].N == n {
			return &k.Versions[i], true
		}
	}
	return nil, false
}

// VersionName returns the store entry name of version n >= 2 of name.
func VersionName(name string, n int) string {
	return name + "-v" + strconv.Itoa(n) + "-"
}

// DeletionName returns the store entry name of name's scheduled deletion.
func DeletionName(name string) string { return name + "-deleted-" }

// ParseEntryName reports what a store entry name is: a version entry
// (n >= 2), a deletion entry (deletion true), or, if ok is false, the
// entry of a key's first version (or something else OpenKES did not
// write).
func ParseEntryName(entry string) (name string, n int, deletion, ok bool) {
	if !strings.HasSuffix(entry, "-") {
		return "", 0, false, false
	}
	if name, found := strings.CutSuffix(entry, "-deleted-"); found && name != "" && !strings.HasSuffix(name, "-") {
		return name, 0, true, true
	}
	s := entry[:len(entry)-1]
	i := strings.LastIndex(s, "-v")
	if i <= 0 || strings.HasSuffix(s[:i], "-") {
		return "", 0, false, false
	}
	digits := s[i+2:]
	if digits == "" || digits[0] == '0' || len(digits) > 10 {
		return "", 0, false, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 2 || n > crypto.MaxVersion || strconv.Itoa(n) != digits {
		return "", 0, false, false
	}
	return s[:i], n, false, true
}

// Ring reads and changes versioned keys in a store. It is safe for
// concurrent use; it keeps no state besides the store.
type Ring struct {
	store keystore.Store
}

// New returns a Ring over store.
func New(store keystore.Store) *Ring { return &Ring{store: store} }

// Store returns the underlying store.
func (r *Ring) Store() keystore.Store { return r.store }

// versionEntry is the stored value of a version n >= 2.
type versionEntry struct {
	Version int    `json:"version"`
	Parent  string `json:"parent"` // parentDigest of version 1's stored value
	Key     string `json:"key"`    // the version's stored form, crypto.KeyVersion.MarshalText
}

// parentDigest binds a version entry to the first version's stored value.
func parentDigest(first []byte) string {
	h := sha256.New()
	h.Write([]byte("openkes key version parent\x00"))
	h.Write(first)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Create stores v as version 1 of a new key name; see
// [keystore.Store.Create]. The value is what upstream KES writes.
func (r *Ring) Create(ctx context.Context, name string, v *crypto.KeyVersion) error {
	b, err := v.MarshalText()
	if err != nil {
		return fmt.Errorf("keyring: create %q: %w", name, err)
	}
	if err := r.store.Create(ctx, name, b); err != nil {
		return fmt.Errorf("keyring: create %q: %w", name, err)
	}
	return nil
}

// DecodeError reports a stored value that cannot be decoded.
type DecodeError struct {
	Name string // the store entry
	Err  error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("keyring: key %q cannot be decoded: %v", e.Name, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Load reads a key with all its versions and its deletion state. It
// returns an error wrapping [keystore.ErrNotFound] if the key does not
// exist, a *DecodeError for a stored value that cannot be decoded, and
// the store's error otherwise.
//
// Versions are read in order from 2 until the first that does not exist;
// version entries of an earlier key of the same name (left behind by an
// interrupted delete) are skipped.
func (r *Ring) Load(ctx context.Context, name string) (*Key, error) {
	k, _, err := r.load(ctx, name)
	return k, err
}

// load is Load that also returns the digest of version 1.
func (r *Ring) load(ctx context.Context, name string) (*Key, string, error) {
	first, err := r.store.Get(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("keyring: get %q: %w", name, err)
	}
	v1, err := crypto.ParseKeyVersion(first)
	if err != nil {
		return nil, "", &DecodeError{Name: name, Err: err}
	}
	k := &Key{Versions: []Version{{N: 1, Key: v1}}}
	parent := parentDigest(first)
	for n := 2; ; n++ {
		v, err := r.loadVersion(ctx, name, n, parent)
		if errors.Is(err, keystore.ErrNotFound) {
			break
		}
		if errors.Is(err, errOrphan) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		k.Versions = append(k.Versions, Version{N: n, Key: v})
	}
	d, err := r.deletion(ctx, name)
	if err != nil {
		return nil, "", err
	}
	k.Deletion = d
	return k, parent, nil
}

// LoadVersion reads version n of a key without the versions before it,
// for a ciphertext of a version newer than a cached key. It returns an
// error wrapping [keystore.ErrNotFound] if the version does not exist.
func (r *Ring) LoadVersion(ctx context.Context, name string, n int) (crypto.KeyVersion, error) {
	first, err := r.store.Get(ctx, name)
	if err != nil {
		return crypto.KeyVersion{}, fmt.Errorf("keyring: get %q: %w", name, err)
	}
	if n == 1 {
		v, err := crypto.ParseKeyVersion(first)
		if err != nil {
			return crypto.KeyVersion{}, &DecodeError{Name: name, Err: err}
		}
		return v, nil
	}
	v, err := r.loadVersion(ctx, name, n, parentDigest(first))
	if errors.Is(err, errOrphan) {
		return crypto.KeyVersion{}, fmt.Errorf("keyring: get %q version %d: %w", name, n, keystore.ErrNotFound)
	}
	return v, err
}

// errOrphan marks a version entry that belongs to an earlier key.
var errOrphan = errors.New("version entry of another key")

func (r *Ring) loadVersion(ctx context.Context, name string, n int, parent string) (crypto.KeyVersion, error) {
	entry := VersionName(name, n)
	b, err := r.store.Get(ctx, entry)
	if err != nil {
		return crypto.KeyVersion{}, fmt.Errorf("keyring: get %q version %d: %w", name, n, err)
	}
	var e versionEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return crypto.KeyVersion{}, &DecodeError{Name: entry, Err: errors.New("invalid version entry")}
	}
	if e.Parent != parent {
		return crypto.KeyVersion{}, fmt.Errorf("keyring: get %q version %d: %w", name, n, errOrphan)
	}
	if e.Version != n {
		return crypto.KeyVersion{}, &DecodeError{Name: entry, Err: fmt.Errorf("entry holds version %d", e.Version)}
	}
	v, err := crypto.ParseKeyVersion([]byte(e.Key))
	if err != nil {
		return crypto.KeyVersion{}, &DecodeError{Name: entry, Err: err}
	}
	return v, nil
}

func (r *Ring) deletion(ctx context.Context, name string) (*Deletion, error) {
	b, err := r.store.Get(ctx, DeletionName(name))
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: get %q deletion: %w", name, err)
	}
	var d Deletion
	if err := json.Unmarshal(b, &d); err != nil || d.DeleteAt.IsZero() {
		return nil, &DecodeError{Name: DeletionName(name), Err: errors.New("invalid deletion entry")}
	}
	return &d, nil
}

// Rotate adds v as the newest version of an existing key and returns its
// number. If another rotation takes the number first, Rotate tries the
// next one, up to a few times, then fails with [ErrConflict]. A key
// scheduled for deletion cannot be rotated ([ErrScheduled]).
func (r *Ring) Rotate(ctx context.Context, name string, v *crypto.KeyVersion) (int, error) {
	text, err := v.MarshalText()
	if err != nil {
		return 0, fmt.Errorf("keyring: rotate %q: %w", name, err)
	}
	k, parent, err := r.load(ctx, name)
	if err != nil {
		return 0, err
	}
	if k.Deletion != nil {
		return 0, fmt.Errorf("keyring: rotate %q: %w", name, ErrScheduled)
	}
	n := k.Latest().N + 1
	for range maxRotateTries {
		if n > crypto.MaxVersion {
			return 0, fmt.Errorf("keyring: rotate %q: no version number left", name)
		}
		b, err := json.Marshal(versionEntry{Version: n, Parent: parent, Key: string(text)})
		if err != nil {
			return 0, fmt.Errorf("keyring: rotate %q: %w", name, err)
		}
		err = r.store.Create(ctx, VersionName(name, n), b)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, keystore.ErrExists) {
			return 0, fmt.Errorf("keyring: rotate %q: %w", name, err)
		}
		// Taken by a concurrent rotation, or by an entry an earlier key
		// of this name left behind (Load skips those): take the next.
		n++
	}
	return 0, fmt.Errorf("keyring: rotate %q: %w", name, ErrConflict)
}

// ScheduleDeletion marks an existing key for deletion at d.DeleteAt. It
// fails with [ErrScheduled] if the key is scheduled already and with an
// error wrapping [keystore.ErrNotFound] if it does not exist.
func (r *Ring) ScheduleDeletion(ctx context.Context, name string, d Deletion) error {
	if _, err := r.store.Get(ctx, name); err != nil {
		return fmt.Errorf("keyring: delete %q: %w", name, err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("keyring: delete %q: %w", name, err)
	}
	err = r.store.Create(ctx, DeletionName(name), b)
	if errors.Is(err, keystore.ErrExists) {
		return fmt.Errorf("keyring: delete %q: %w", name, ErrScheduled)
	}
	if err != nil {
		return fmt.Errorf("keyring: delete %q: %w", name, err)
	}
	return nil
}

// Restore cancels the scheduled deletion of a key. It fails with
// [ErrNotScheduled] if none is scheduled, and with an error wrapping
// [keystore.ErrNotFound] if the key does not exist.
func (r *Ring) Restore(ctx context.Context, name string) error {
	if _, err := r.store.Get(ctx, name); err != nil {
		return fmt.Errorf("keyring: restore %q: %w", name, err)
	}
	if _, err := r.store.Get(ctx, DeletionName(name)); err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("keyring: restore %q: %w", name, ErrNotScheduled)
		}
		return fmt.Errorf("keyring: restore %q: %w", name, err)
	}
	if err := r.store.Delete(ctx, DeletionName(name)); err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("keyring: restore %q: %w", name, ErrNotScheduled)
		}
		return fmt.Errorf("keyring: restore %q: %w", name, err)
	}
	return nil
}

// Delete removes a key now: its versions newest first, then the key,
// then its deletion entry, so that an interrupted Delete leaves a key
// with fewer versions, or entries that Load of a new key of the same
// name skips. It returns an error wrapping
// [keystore.ErrNotFound] if the key does not exist.
func (r *Ring) Delete(ctx context.Context, name string) error {
	var versions []int
	first, errGet := r.store.Get(ctx, name)
	if err := errGet; err == nil {
		parent := parentDigest(first)
		for n := 2; ; n++ {
			_, err := r.loadVersion(ctx, name, n, parent)
			if errors.Is(err, keystore.ErrNotFound) {
				break
			}
			var de *DecodeError
			if err != nil && !errors.Is(err, errOrphan) && !errors.As(err, &de) {
				return fmt.Errorf("keyring: delete %q: %w", name, err)
			}
			versions = append(versions, n)
		}
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return fmt.Errorf("keyring: delete %q: %w", name, err)
	}
	for i := len(versions) - 1; i >= 0; i-- {
		if err := r.store.Delete(ctx, VersionName(name, versions[i])); err != nil && !errors.Is(err, keystore.ErrNotFound) {
			return fmt.Errorf("keyring: delete %q: %w", name, err)
		}
	}
	errKey := r.store.Delete(ctx, name)
	if errKey != nil && !errors.Is(errKey, keystore.ErrNotFound) {
		return fmt.Errorf("keyring: delete %q: %w", name, errKey)
	}
	if err := r.store.Delete(ctx, DeletionName(name)); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return fmt.Errorf("keyring: delete %q: %w", name, err)
	}
	if errKey == nil && errGet != nil {
		// Stores that cannot tell a missing entry from a deleted one
		// answer nil; the Get above could.
		errKey = errGet
	}
	if errKey != nil {
		return fmt.Errorf("keyring: delete %q: %w", name, errKey)
	}
	return nil
}

// List returns the key names that start with prefix, as
// [keystore.Store.List] does, without the entries of versions and
// deletions. It lists all names of the prefix from the store and pages
// them itself, so a page is never cut short by hidden entries.
func (r *Ring) List(ctx context.Context, prefix string, n int) (names []string, next string, err error) {
	names, _, next, err = r.ListScheduled(ctx, prefix, n)
	return names, next, err
}

// ListScheduled is List that also returns which of the listed keys are
// scheduled for deletion, from the same store listing (nil if none is).
func (r *Ring) ListScheduled(ctx context.Context, prefix string, n int) (names []string, scheduled map[string]bool, next string, err error) {
	all, _, err := r.store.List(ctx, prefix, 0)
	if err != nil {
		return nil, nil, "", err
	}
	for _, entry := range all {
		if name, _, deletion, ok := ParseEntryName(entry); ok && deletion {
			if scheduled == nil {
				scheduled = map[string]bool{}
			}
			scheduled[name] = true
		}
	}
	names = keysOnly(all)
	if n > 0 && len(names) > n {
		return names[:n:n], scheduled, names[n], nil
	}
	return names, scheduled, "", nil
}

// keysOnly drops version and deletion entries from names, in place.
func keysOnly(names []string) []string {
	out := names[:0]
	for _, name := range names {
		if _, _, _, ok := ParseEntryName(name); !ok {
			out = append(out, name)
		}
	}
	return out
}

// Scheduled returns the keys scheduled for deletion with their state.
func (r *Ring) Scheduled(ctx context.Context) (map[string]Deletion, error) {
	all, _, err := r.store.List(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	out := map[string]Deletion{}
	for _, entry := range all {
		name, _, deletion, ok := ParseEntryName(entry)
		if !ok || !deletion {
			continue
		}
		d, err := r.deletion(ctx, name)
		if err != nil {
			return nil, err
		}
		if d != nil {
			out[name] = *d
		}
	}
	return out, nil
}

// Sweep deletes every key whose deletion window has ended at now and
// returns their names. A key that turns out to be gone already (another
// server sharing the store swept it first) is not returned, so that one
// server reports each removal. It goes on after a failed key and
// returns the errors joined.
func (r *Ring) Sweep(ctx context.Context, now time.Time) ([]string, error) {
	scheduled, err := r.Scheduled(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for name, d := range scheduled {
		if !d.Expired(now) {
			continue
		}
		err := r.Delete(ctx, name)
		if errors.Is(err, keystore.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
