// Package keycache is the read-through, in-memory cache of decoded keys
// between the server and its key store.
//
// # Reads
//
// A cached key is a [keyring.Key]: all its versions and its deletion
// state, read with [keyring.Ring.Load]. [Cache.Get] serves a cached key
// without locking or allocating, which matters because every encrypt,
// decrypt and generate request goes through it. On a miss, concurrent Gets for one name share a single
// store read (single flight), while misses for different names proceed
// independently. Only successfully decoded keys are cached: "not found"
// and errors are not.
//
// [Cache.GetVersion] is Get for a ciphertext of one version: if the cached
// key lacks that version (another server rotated the key since it was
// cached), the key is read again from the store, at most once per key per
// second (reloadInterval), so that a ciphertext made elsewhere after a
// rotation decrypts at once while ciphertexts naming versions that do not
// exist cannot make every request read the store.
//
// # Writes
//
// [Cache.Create] writes to the store only; the key enters the cache on
// its first Get, so the cache never serves a key the store has not
// committed. [Cache.Delete], [Cache.Rotate], [Cache.ScheduleDeletion],
// [Cache.Restore] and [Cache.Sweep] change the store through a
// [keyring.Ring], then drop the entries they changed.
//
// # Expiry
//
// Background tasks, stopped by [Cache.Close], bound how long a key stays
// cached (see [Config]): every Any all entries are dropped, and every
// Unused/2 the entries not read since the previous round are dropped.
//
// # Outages
//
// The store is marked offline when a Status probe fails or a store read
// fails with a *keystore.UnreachableError, and back online after the
// next successful probe. Then:
//
//   - Probes run every ProbeInterval, and every second while offline.
//   - While offline, [Cache.Status] fails at once without asking the store.
//   - With Config.Offline > 0, the Any and Unused expiries pause while
//     offline, so cached keys keep working, for at most Offline after the
//     outage was detected (and at most Offline per entry while it lasts).
//
// # Metrics
//
// An optional [Observer] in [Config] learns about hits (and whether the
// store was offline at the time), misses and expiry evictions. The hit
// path stays lock- and allocation-free with an Observer set.
package keycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore"
)

// reloadInterval bounds how often GetVersion reads a key again because a
// ciphertext names a version the cached key does not have.
const reloadInterval = time.Second

// maxReloads is the size of the reload bookkeeping past which entries
// older than reloadInterval are dropped.
const maxReloads = 1024

// DefaultProbeInterval is the interval of the store Status probe when
// Config.ProbeInterval is not positive.
const DefaultProbeInterval = 10 * time.Second

// maxProbeTimeout bounds a single Status probe. A probe that takes longer
// counts as a failure, i.e. the store is marked offline.
const maxProbeTimeout = 5 * time.Second

// Config controls expiry. A duration that is zero or negative disables
// the corresponding expiry.
type Config struct {
	// Any is the interval at which all entries are dropped, used or not.
	Any time.Duration
	// Unused bounds how long an entry stays cached without being read:
	// every Unused/2, the entries not read since the previous round are
	// dropped, so an unread entry lives between Unused/2 and Unused.
	Unused time.Duration
	// Offline, if positive, keeps cached keys usable while the store is
	// marked offline: the Any and Unused expiries are suspended, and
	// instead all entries are dropped Offline after the outage was
	// detected and every Offline after that while it lasts. If Offline
	// is not positive, the Any and Unused expiries continue during an
	// outage.
	Offline time.Duration
	// ProbeInterval is how often the store's Status is checked to detect
	// an outage; 0 (or a negative value) means DefaultProbeInterval. A
	// probe that fails with any error but context cancellation, or takes
	// longer than the smaller of ProbeInterval and 5s, marks the store
	// offline; a successful probe clears the mark.
	ProbeInterval time.Duration
	// Observer, if not nil, is told about hits, misses and evictions
	// (metrics). It is called on the hit path of Get, so its methods
	// must be cheap, must not block and must not allocate.
	Observer Observer

	// Watcher, if not nil, reports keys changed by other servers sharing
	// the store; the cache drops them at once (see [Cache.Invalidate]).
	// The cache runs Watch until Close.
	Watcher keystore.Watcher
}

// Observer receives cache events. Implementations must be safe for
// concurrent use.
type Observer interface {
	// CacheHit is called when Get serves a key from the cache; offline
	// reports whether the store is marked offline at that moment (the
	// key is served only because it is cached).
	CacheHit(offline bool)
	// CacheMiss is called when Get has to ask the store (or wait for
	// another Get asking it).
	CacheMiss()
	// CacheEvicted is called with the number of entries an expiry round
	// dropped (Any, Unused or Offline expiry; not Delete).
	CacheEvicted(n int)
}

// Cache is a key cache. Safe for concurrent use.
type Cache struct {
	store keystore.Store
	ring  *keyring.Ring
	conf  Config
	log   *slog.Logger

	// entries maps key names to *entry. sync.Map gives lock-free,
	// allocation-free reads, and its documented sweet spot is this one:
	// entries written once and then read many times.
	entries sync.Map

	// mu guards inflight and epoch. Cache insertions are made under mu
	// as well, so that they are ordered with respect to Delete.
	mu       sync.Mutex
	inflight map[string]*call
	// reloads holds when GetVersion last read a key again for a missing
	// version (see reloadInterval).
	reloads map[string]time.Time
	// epoch is incremented by every Delete. A store read that began in
	// an older epoch is returned to its callers but not cached, so a
	// read racing with a Delete cannot resurrect the deleted key.
	epoch uint64

	offline     atomic.Bool
	wentOffline chan struct{} // capacity 1; signals offline transitions
	probeNow    chan struct{} // capacity 1; asks for a probe now

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// entry is a cached key. v is never modified after the entry has been
// published in Cache.entries.
type entry struct {
	k    *keyring.Key
	used atomic.Bool
}

// call is a store read in flight, shared by all Gets for one name.
type call struct {
	done chan struct{} // closed when k and err are set
	k    *keyring.Key
	err  error
	// retry reports that the read failed because the context of the Get
	// doing it ended. Waiters whose own context is still alive then
	// read the key themselves instead of failing with a context error
	// that is not theirs.
	retry bool
}

// errLeaderPanicked is what waiters get when the store read they were
// waiting for panicked.
var errLeaderPanicked = errors.New("keycache: key store read panicked")

// New returns a cache in front of store and starts its background work.
// The cache does not own the store: Close does not close it. A nil log
// discards log output.
func New(store keystore.Store, conf Config, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if conf.ProbeInterval <= 0 {
		conf.ProbeInterval = DefaultProbeInterval
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Cache{
		store:       store,
		ring:        keyring.New(store),
		reloads:     make(map[string]time.Time),
		conf:        conf,
		log:         log,
		inflight:    make(map[string]*call),
		wentOffline: make(chan struct{}, 1),
		probeNow:    make(chan struct{}, 1),
		stop:        stop,
	}
	if conf.Any > 0 {
		c.every(ctx, conf.Any, c.expireAll)
	}
	if conf.Unused > 0 {
		c.every(ctx, max(conf.Unused/2, 1), c.expireUnused)
	}
	if conf.Offline > 0 {
		c.wg.Go(func() { c.offlineLoop(ctx) })
	}
	c.wg.Go(func() { c.probeLoop(ctx) })
	if w := conf.Watcher; w != nil {
		c.wg.Go(func() {
			if err := w.Watch(ctx, c.Invalidate); err != nil && ctx.Err() == nil {
				c.log.Error("keycache: watching the key store for changes stopped; keys deleted through other servers stay cached until they expire", slog.Any("err", err))
			}
		})
	}
	return c
}

// Get returns the decoded key with all its versions and its deletion
// state. The Key is shared and must not be modified. Get serves the key
// from the cache if it can, and reads it from the store otherwise.
//
// Store errors are wrapped, so errors.Is(err, keystore.ErrNotFound) and
// keystore.IsUnreachable(err) work on them. A stored value that cannot be
// decoded yields a *DecodeError. If ctx ends while Get waits for a read
// started by another Get, the error wraps ctx's error.
func (c *Cache) Get(ctx context.Context, name string) (*keyring.Key, error) {
	if k, ok := c.lookup(name); ok {
		if o := c.conf.Observer; o != nil {
			o.CacheHit(c.offline.Load())
		}
		return k, nil
	}
	if o := c.conf.Observer; o != nil {
		o.CacheMiss()
	}
	return c.getSlow(ctx, name)
}

// GetVersion is Get for a use of version n of the key: if the key has no
// version n, it is read from the store again (once for concurrent
// callers, and at most once per key per second), and the key read is
// returned. The caller checks whether it has version n.
func (c *Cache) GetVersion(ctx context.Context, name string, n int) (*keyring.Key, error) {
	k, err := c.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, ok := k.Version(n); ok {
		return k, nil
	}
	if c.mayReload(name) {
		c.Invalidate(name)
	}
	// Without a reload of its own, a caller still gets the result of a
	// reload in flight or just done by another.
	return c.Get(ctx, name)
}

// mayReload reports whether GetVersion may read name again now, and if
// so records that it does.
func (c *Cache) mayReload(name string) bool {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.reloads[name]; ok && now.Sub(last) < reloadInterval {
		return false
	}
	if len(c.reloads) >= maxReloads {
		for n, t := range c.reloads {
			if now.Sub(t) >= reloadInterval {
				delete(c.reloads, n)
			}
		}
	}
	c.reloads[name] = now
	return true
}

// lookup is the hit path of Get.
func (c *Cache) lookup(name string) (*keyring.Key, bool) {
	e, ok := c.entries.Load(name)
	if !ok {
		return nil, false
	}
	en := e.(*entry)
	// Load before Store: hot keys are nearly always marked already, and
	// not writing keeps the cache line shared between cores.
	if !en.used.Load() {
		en.used.Store(true)
	}
	return en.k, true
}

func (c *Cache) getSlow(ctx context.Context, name string) (*keyring.Key, error) {
	for {
		c.mu.Lock()
		// Re-check under mu: a read for name may have completed since
		// the lock-free lookup missed.
		if k, ok := c.lookup(name); ok {
			c.mu.Unlock()
			return k, nil
		}
		if cl, ok := c.inflight[name]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("keycache: get %q: %w", name, context.Cause(ctx))
			}
			if cl.retry && ctx.Err() == nil {
				continue
			}
			return cl.k, cl.err
		}
		cl := &call{done: make(chan struct{})}
		c.inflight[name] = cl
		epoch := c.epoch
		c.mu.Unlock()
		c.fill(ctx, name, cl, epoch)
		return cl.k, cl.err
	}
}

// fill reads name from the store into cl, caches the result if it may,
// and wakes up the waiters of cl, even if the store panics.
func (c *Cache) fill(ctx context.Context, name string, cl *call, epoch uint64) {
	completed := false
	defer func() {
		if !completed {
			cl.k, cl.err, cl.retry = nil, errLeaderPanicked, false
		}
		c.mu.Lock()
		if completed && cl.err == nil && c.epoch == epoch {
			e := &entry{k: cl.k}
			e.used.Store(true)
			c.entries.Store(name, e)
		}
		delete(c.inflight, name)
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.k, cl.err = c.load(ctx, name)
	cl.retry = cl.err != nil && ctx.Err() != nil
	completed = true
}

// load reads and decodes one key with its versions from the store.
func (c *Cache) load(ctx context.Context, name string) (*keyring.Key, error) {
	k, err := c.ring.Load(ctx, name)
	var de *keyring.DecodeError
	if errors.As(err, &de) {
		return nil, &DecodeError{Name: de.Name, Err: de.Err}
	}
	c.observe(err)
	if err != nil {
		return nil, fmt.Errorf("keycache: get %q: %w", name, err)
	}
	return k, nil
}

// Create encodes v and creates it in the store under name. It does not
// cache it. Store errors are wrapped, so errors.Is(err,
// keystore.ErrExists) works; v must be non-nil and have an HMAC key (see
// [crypto.KeyVersion.MarshalText]), or Create fails without writing.
func (c *Cache) Create(ctx context.Context, name string, v *crypto.KeyVersion) error {
	if v == nil {
		return fmt.Errorf("keycache: create %q: no key", name)
	}
	b, err := v.MarshalText()
	if err != nil {
		return fmt.Errorf("keycache: create %q: %w", name, err)
	}
	// b is not cleared afterwards: a store may keep the slice (the
	// in-memory store does), so it is not ours any more.
	err = c.store.Create(ctx, name, b)
	c.observe(err)
	if err != nil {
		return fmt.Errorf("keycache: create %q: %w", name, err)
	}
	return nil
}

// Rotate adds v as the newest version of the key name (see
// [keyring.Ring.Rotate]) and returns its number. The cached key is
// dropped whatever the outcome, so the next Get reads the new version.
func (c *Cache) Rotate(ctx context.Context, name string, v *crypto.KeyVersion) (int, error) {
	n, err := c.ring.Rotate(ctx, name, v)
	c.Invalidate(name)
	c.observe(err)
	if err != nil {
		return 0, fmt.Errorf("keycache: rotate %q: %w", name, err)
	}
	return n, nil
}

// ScheduleDeletion marks the key name for deletion (see
// [keyring.Ring.ScheduleDeletion]) and drops it from the cache.
func (c *Cache) ScheduleDeletion(ctx context.Context, name string, d keyring.Deletion) error {
	err := c.ring.ScheduleDeletion(ctx, name, d)
	c.Invalidate(name)
	c.observe(err)
	if err != nil {
		return fmt.Errorf("keycache: schedule deletion of %q: %w", name, err)
	}
	return nil
}

// Restore cancels the scheduled deletion of the key name (see
// [keyring.Ring.Restore]) and drops it from the cache.
func (c *Cache) Restore(ctx context.Context, name string) error {
	err := c.ring.Restore(ctx, name)
	c.Invalidate(name)
	c.observe(err)
	if err != nil {
		return fmt.Errorf("keycache: restore %q: %w", name, err)
	}
	return nil
}

// Sweep deletes the keys whose deletion window has ended at now (see
// [keyring.Ring.Sweep]), drops them from the cache and returns their
// names.
func (c *Cache) Sweep(ctx context.Context, now time.Time) ([]string, error) {
	removed, err := c.ring.Sweep(ctx, now)
	for _, name := range removed {
		c.Invalidate(name)
	}
	c.observe(err)
	if err != nil {
		return removed, fmt.Errorf("keycache: sweep: %w", err)
	}
	return removed, nil
}

// Delete deletes name with all its versions from the store (see
// [keyring.Ring.Delete]), then drops it from the cache. The entry is
// dropped too if the store reports that the key does not exist, but not
// on other errors. Store errors are wrapped, so errors.Is(err,
// keystore.ErrNotFound) works.
func (c *Cache) Delete(ctx context.Context, name string) error {
	err := c.ring.Delete(ctx, name)
	if err == nil || errors.Is(err, keystore.ErrNotFound) {
		c.mu.Lock()
		c.epoch++
		c.entries.Delete(name)
		c.mu.Unlock()
	}
	c.observe(err)
	if err != nil {
		return fmt.Errorf("keycache: delete %q: %w", name, err)
	}
	return nil
}

// Invalidate drops name from the cache, or every entry if name is "".
// The name of a version or deletion entry (see [keyring.ParseEntryName])
// drops the key it belongs to. A store read of name in flight when
// Invalidate is called returns its result to its callers but does not
// cache it, so a key changed elsewhere is read again by the next Get.
func (c *Cache) Invalidate(name string) {
	if key, _, _, ok := keyring.ParseEntryName(name); ok {
		name = key
	}
	c.mu.Lock()
	c.epoch++
	if name == "" {
		c.entries.Clear()
	} else {
		c.entries.Delete(name)
	}
	c.mu.Unlock()
}

// List lists the key names of the store (see [keyring.Ring.List]), without
// the entries of versions and deletions. Store errors are wrapped.
func (c *Cache) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	names, _, next, err := c.ListScheduled(ctx, prefix, n)
	return names, next, err
}

// ListScheduled is List that also returns the set of listed keys that
// are scheduled for deletion (see [keyring.Ring.ListScheduled]).
func (c *Cache) ListScheduled(ctx context.Context, prefix string, n int) ([]string, map[string]bool, string, error) {
	names, scheduled, next, err := c.ring.ListScheduled(ctx, prefix, n)
	c.observe(err)
	if err != nil {
		return nil, nil, "", fmt.Errorf("keycache: list %q: %w", prefix, err)
	}
	return names, scheduled, next, nil
}

// Status reports the store's state. While the cache has marked the store
// offline it returns a *keystore.UnreachableError ("keystore is offline")
// at once, without asking the store. Otherwise it returns the result of
// the store's Status unchanged; an unreachable error then marks the store
// offline until the next successful probe.
func (c *Cache) Status(ctx context.Context) (keystore.State, error) {
	if c.offline.Load() {
		return keystore.State{}, &keystore.UnreachableError{Err: errors.New("keystore is offline")}
	}
	st, err := c.store.Status(ctx)
	if err != nil {
		c.observe(err)
	}
	return st, err
}

// Offline reports whether the cache currently considers the store
// offline (see [Cache.Status]).
func (c *Cache) Offline() bool { return c.offline.Load() }

// Close stops the background work and waits for it to finish. It is
// idempotent and always returns nil. The cache remains usable as a plain
// read-through cache afterwards, but nothing expires any more.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.stop()
		c.wg.Wait()
	})
	return nil
}

// observe marks the store offline if err says it is unreachable.
// observe marks the store offline if err says it is unreachable. A store
// call that succeeded while the store is marked offline asks for a probe
// now, so that the end of an outage is reported at once.
func (c *Cache) observe(err error) {
	switch {
	case err == nil:
		if c.offline.Load() {
			select {
			case c.probeNow <- struct{}{}:
			default:
			}
		}
	case keystore.IsUnreachable(err):
		c.setOffline(err)
	}
}

func (c *Cache) setOffline(err error) {
	if c.offline.Swap(true) {
		return
	}
	c.log.Warn("keycache: key store is offline", slog.Any("err", err))
	select {
	case c.wentOffline <- struct{}{}:
	default:
	}

}

func (c *Cache) setOnline() {
	if c.offline.Swap(false) {
		c.log.Info("keycache: key store is online again")
	}
}

// every runs f every d until ctx ends.
func (c *Cache) every(ctx context.Context, d time.Duration, f func()) {
	c.wg.Go(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			if _, ok := await(ctx, nil, t.C); !ok {
				return
			}
			f()
		}
	})
}

// await waits for wake or tick: woken reports which came, ok is false
// once ctx has ended.
func await(ctx context.Context, wake <-chan struct{}, tick <-chan time.Time) (woken, ok bool) {
	select {
	case <-ctx.Done():
		return false, false
	case <-wake:
		return true, true
	case <-tick:
		return false, true
	}
}

// offlineKeep reports whether the Any and Unused expiries are suspended
// because the store is offline.
func (c *Cache) offlineKeep() bool {
	return c.conf.Offline > 0 && c.offline.Load()
}

func (c *Cache) expireAll() {
	if !c.offlineKeep() {
		c.clear()
	}
}

// clear drops all entries, counting them for the Observer.
func (c *Cache) clear() {
	if c.conf.Observer == nil {
		c.entries.Clear()
		return
	}
	c.evict(func(*entry) bool { return true })
}

func (c *Cache) expireUnused() {
	if !c.offlineKeep() {
		c.evict(func(e *entry) bool { return !e.used.Swap(false) })
	}
}

// evict drops the entries for which drop reports true, counting them for
// the Observer.
func (c *Cache) evict(drop func(*entry) bool) {
	n := 0
	c.entries.Range(func(name, e any) bool {
		if en := e.(*entry); drop(en) && c.entries.CompareAndDelete(name, en) {
			n++
		}
		return true
	})
	if n > 0 && c.conf.Observer != nil {
		c.conf.Observer.CacheEvicted(n)
	}
}

// offlineLoop drops all entries every Offline while the store is offline.
// Its ticker restarts whenever the store goes offline, so that cached keys
// are served for a full Offline after an outage is detected, and for no
// longer.
func (c *Cache) offlineLoop(ctx context.Context) {
	t := time.NewTicker(c.conf.Offline)
	defer t.Stop()
	for {
		woken, ok := await(ctx, c.wentOffline, t.C)
		switch {
		case !ok:
			return
		case woken:
			t.Reset(c.conf.Offline)
		case c.offline.Load():
			c.clear()
		}
	}
}

// offlineProbeInterval is how often the store is probed while it is
// marked offline (if ProbeInterval is not shorter), so that the server
// reports ready soon after the store is back.
const offlineProbeInterval = time.Second

// probeLoop probes the store every ProbeInterval, and every
// offlineProbeInterval while it is marked offline.
func (c *Cache) probeLoop(ctx context.Context) {
	t := time.NewTimer(c.conf.ProbeInterval)
	defer t.Stop()
	for {
		woken, ok := await(ctx, c.probeNow, t.C)
		if !ok {
			return
		}
		if woken {
			if !c.offline.Load() {
				continue // a stale request; the timer keeps running
			}
			t.Stop()
		}
		c.probe(ctx)
		d := c.conf.ProbeInterval
		if c.offline.Load() {
			d = min(d, offlineProbeInterval)
		}
		t.Reset(d)
	}
}

// probe checks the store's Status and updates the offline mark.
func (c *Cache) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(c.conf.ProbeInterval, maxProbeTimeout))
	_, err := c.store.Status(pctx)
	cancel()
	switch {
	case ctx.Err() != nil:
		// Closing: the result says nothing about the store.
	case err == nil:
		c.setOnline()
	case !errors.Is(err, context.Canceled):
		c.setOffline(err)
	}
}

// DecodeError reports a stored value that is not a valid key. Err is the
// decoding error; it never contains key material.
type DecodeError struct {
	Name string
	Err  error
}

// Error returns "keycache: invalid key '<name>': <err>".
func (e *DecodeError) Error() string {
	return "keycache: invalid key '" + e.Name + "': " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *DecodeError) Unwrap() error { return e.Err }
