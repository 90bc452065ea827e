// Package migrate copies keys from one key store to another: the engine
// of 'kes migrate', usable on its own.
//
// # Semantics
//
// A [Migration] lists the source once, keeps the names that match its
// pattern and copies each key with [keystore.Store.Create] into the
// target. Keys are never removed from the source, so an interrupted
// migration loses nothing; what a key that already exists in the target
// means is the [Mode]:
//
//   - [Fail] stops the migration with a [*ConflictError].
//   - [Merge] keeps the target's value, so a second run resumes an
//     interrupted one.
//   - [Force] replaces the target's value with the source's, atomically
//     where the target is a [keystore.Replacer], else by a delete and a
//     create.
//
// Merge and Force both skip keys whose value in the target is already
// the same, so a finished migration can be repeated. With Force and a
// target that reports values needing a reseal (keystore/seal), identical
// values are rewritten too: that seals a store in place.
//
// # Sealed stores
//
// A store that seals its values says so with an optional method
// Sealed() bool. Copying from a sealed store to one that is not would
// store its keys unsealed: Run refuses that with [ErrUnsealing] unless
// the mode is Force.
package migrate

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore"
)

// Mode says what to do with a key that exists in the target.
type Mode int

const (
	Fail  Mode = iota // stop the migration
	Merge             // keep the target's value
	Force             // replace it with the source's
)

// Outcome is what happened to one key.
type Outcome int

const (
	Copied    Outcome = iota // created in the target
	Replaced                 // Force: the target's value was replaced
	Kept                     // Merge: in the target with a different value, left alone
	Identical                // in the target with the same value
	Vanished                 // deleted from the source since it was listed

	numOutcomes = iota
)

// MaxDiffering is how many names of keys kept with a different value
// (Merge) [Stats] records.
const MaxDiffering = 10

// DefaultWorkers is the number of keys copied at the same time unless
// [Migration.Workers] says otherwise. Copying is latency-bound (an fsync
// per key on a filesystem, a round trip per request for a remote store),
// so a few requests in flight speed it up a lot; more could trip the
// request rate limits of cloud key stores.
const DefaultWorkers = 4

// replaceTimeout bounds the replacement of a key (Force), which runs to
// completion even after ctx is done so that the key is not left deleted.
const replaceTimeout = 30 * time.Second

// ErrUnsealing is returned by [Migration.Run], before anything is copied,
// when the source is sealed, the target is not and the mode is not Force.
var ErrUnsealing = errors.New("the source key store is sealed and the target is not: its keys would be stored unsealed")

// ConflictError is returned in mode [Fail] for a key that exists in the
// target. It wraps [keystore.ErrExists].
type ConflictError struct {
	Name string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("key '%s' already exists in the target", e.Name)
}

func (e *ConflictError) Unwrap() error { return keystore.ErrExists }

// Stats counts the keys of a migration by outcome.
type Stats struct {
	Total  int              // keys matching the pattern
	Count  [numOutcomes]int // keys by Outcome
	Differ []string         // the first MaxDiffering keys with outcome Kept
}

func (s *Stats) add(name string, o Outcome) {
	s.Count[o]++
	if o == Kept && len(s.Differ) < MaxDiffering {
		s.Differ = append(s.Differ, name)
	}
}

// Migrated returns the number of keys copied or replaced.
func (s *Stats) Migrated() int { return s.Count[Copied] + s.Count[Replaced] }

// Processed returns the number of keys done, whatever the outcome.
func (s *Stats) Processed() int {
	sum := 0
	for _, n := range s.Count {
		sum += n
	}
	return sum
}

// Remaining returns the number of matching keys not done yet.
func (s *Stats) Remaining() int { return s.Total - s.Processed() }

// CheckPattern returns an error wrapping [path.ErrBadPattern] if pattern
// is not a valid glob.
func CheckPattern(pattern string) error {
	_, err := path.Match(pattern, "")
	return err
}

// Migration copies keys from Source to Target.
type Migration struct {
	Source, Target keystore.Store

	// Pattern is a glob ('*' and '?' match any characters, [a-z] a
	// class) that the names to copy match; "" means every key.
	Pattern string

	Mode Mode

	// Workers is the number of keys copied at the same time; 0 means
	// DefaultWorkers.
	Workers int

	// ReadContext, if set, derives the context of every read of a value
	// (Get, and the reseal check of the target) from the context of Run.
	// It lets the caller mark reads, for example to allow a sealed store
	// to hand out values it holds unsealed while they are resealed in
	// place.
	ReadContext func(context.Context) context.Context

	// Progress, if set, is called from the goroutine of Run with the
	// current counts: first once the keys to copy are listed (nothing is
	// processed yet), then after every key and on every value from Tick.
	Progress func(Stats)

	// Tick, if set, makes Run call Progress while no key finishes, so
	// that a report can go on while a slow store holds up every key.
	Tick <-chan time.Time
}

// sealed is implemented by key stores that seal their values.
type sealed interface{ Sealed() bool }

func isSealed(s keystore.Store) bool {
	v, ok := s.(sealed)
	return ok && v.Sealed()
}

// Run copies every key of the source that matches the pattern, with
// Workers keys in flight. It stops at the first error or when ctx is
// done, after the keys in flight are finished, so the returned Stats
// count exactly the keys that were copied. Errors name the key, never
// its value; an interrupted run returns ctx.Err().
func (m *Migration) Run(ctx context.Context) (Stats, error) {
	var stats Stats
	if m.Mode != Force && isSealed(m.Source) && !isSealed(m.Target) {
		return stats, ErrUnsealing
	}
	pattern := m.Pattern
	if pattern == "" {
		pattern = "*"
	}
	if err := CheckPattern(pattern); err != nil {
		return stats, fmt.Errorf("invalid pattern '%s': %w", pattern, err)
	}
	names, err := m.list(ctx, pattern)
	if err != nil {
		return stats, err
	}
	stats.Total = len(names)
	m.report(stats)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string)
	go func() {
		defer close(jobs)
		for _, name := range names {
			select {
			case jobs <- name:
			case <-ctx.Done():
				return
			}
		}
	}()
	type result struct {
		name    string
		outcome Outcome
		err     error
	}
	results := make(chan result)
	var wg sync.WaitGroup
	workers := m.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	for range workers {
		wg.Go(func() {
			for name := range jobs {
				o, err := m.copyKey(ctx, name)
				results <- result{name, o, err}
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var firstErr error
	for {
		select {
		case r, ok := <-results:
			if !ok {
				if firstErr == nil && stats.Remaining() > 0 {
					firstErr = ctx.Err() // interrupted between two keys
				}
				return stats, firstErr
			}
			switch {
			case r.err != nil && firstErr == nil:
				firstErr = r.err
				cancel()
			case r.err == nil:
				stats.add(r.name, r.outcome)
			}
			m.report(stats)
		case <-m.Tick:
			m.report(stats)
		}
	}
}

func (m *Migration) report(s Stats) {
	if m.Progress != nil {
		m.Progress(s)
	}
}

func (m *Migration) readContext(ctx context.Context) context.Context {
	if m.ReadContext != nil {
		return m.ReadContext(ctx)
	}
	return ctx
}

// list returns the sorted names of the source that match the pattern.
//
// It asks the store for all names at once (n = 0). The Store contract has
// no way to continue a listing after a given name: the "next" name it
// returns can only be passed on as a prefix, which skips every name that
// does not start with it (the bug of upstream's list iterator). The
// names of even millions of keys fit in memory.
func (m *Migration) list(ctx context.Context, pattern string) ([]string, error) {
	prefix := pattern
	if i := strings.IndexAny(prefix, `*?[\`); i >= 0 {
		prefix = prefix[:i]
	}
	names, next, err := m.Source.List(ctx, prefix, 0)
	if err != nil {
		return nil, fmt.Errorf("listing the source: %w", err)
	}
	if next != "" {
		return nil, fmt.Errorf("listing the source: the key store returned only part of its keys (up to '%s')", next)
	}
	matching := names[:0]
	for _, name := range names {
		// The entries of a key's later versions and of its scheduled
		// deletion (internal/keyring) go with the key.
		key := name
		if k, _, _, ok := keyring.ParseEntryName(name); ok {
			key = k
		}
		if ok, _ := path.Match(pattern, key); ok {
			matching = append(matching, name)
		}
	}
	return matching, nil
}

// resealer is implemented by sealing key stores (keystore/seal): it
// reports whether a stored value is not sealed with the current KEK.
type resealer interface {
	NeedsReseal(ctx context.Context, name string) (bool, error)
}

// copyKey copies one key, as the mode says.
func (m *Migration) copyKey(ctx context.Context, name string) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	rctx := m.readContext(ctx)
	value, err := m.Source.Get(rctx, name)
	if errors.Is(err, keystore.ErrNotFound) {
		return Vanished, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading key '%s' from the source: %w", name, err)
	}
	defer clear(value)

	err = m.Target.Create(ctx, name, value)
	if err == nil {
		return Copied, nil
	}
	if !errors.Is(err, keystore.ErrExists) {
		return 0, fmt.Errorf("creating key '%s' in the target: %w", name, err)
	}

	if m.Mode == Fail {
		return 0, &ConflictError{Name: name}
	}
	old, err := m.Target.Get(rctx, name)
	switch {
	case err == nil:
		same := subtle.ConstantTimeCompare(old, value) == 1
		clear(old)
		if same && m.Mode == Force {
			// A sealing target reads sealed values back unsealed: an
			// identical value may still be stored unsealed or under an
			// old KEK, and Force rewrites it sealed.
			if r, ok := m.Target.(resealer); ok {
				need, err := r.NeedsReseal(rctx, name)
				if err != nil {
					return 0, fmt.Errorf("reading key '%s' from the target: %w", name, err)
				}
				same = !need
			}
		}
		if same {
			return Identical, nil
		}
		if m.Mode == Merge {
			return Kept, nil
		}
	case errors.Is(err, keystore.ErrNotFound):
		// Deleted from the target since Create failed: try again.
		if err := m.Target.Create(ctx, name, value); err != nil {
			return 0, fmt.Errorf("creating key '%s' in the target: %w", name, err)
		}
		return Copied, nil
	default:
		return 0, fmt.Errorf("reading key '%s' from the target: %w", name, err)
	}

	// Force and a different value. Once the old value is deleted the new
	// one must be written, interrupt or not.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replaceTimeout)
	defer cancel()
	if r, ok := m.Target.(keystore.Replacer); ok {
		// Atomic: the key is never missing from the target.
		err := r.Replace(wctx, name, value)
		if err == nil {
			return Replaced, nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return 0, fmt.Errorf("replacing key '%s' in the target: %w", name, err)
		}
	}
	if err := m.Target.Delete(wctx, name); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return 0, fmt.Errorf("deleting key '%s' from the target: %w", name, err)
	}
	if err := m.Target.Create(wctx, name, value); err != nil {
		return 0, fmt.Errorf("key '%s' was deleted from the target to be replaced, but creating it failed: %w", name, err)
	}
	return Replaced, nil
}
