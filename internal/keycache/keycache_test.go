package keycache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore"
)

// fakeStore is an in-memory keystore.Store that counts calls, can block
// Gets per name and can be switched to "unreachable".
type fakeStore struct {
	mu      sync.Mutex
	values  map[string][]byte
	gates   map[string]chan struct{} // Get(name) blocks until closed
	started chan string              // receives the name of every Get, if non-nil

	gets, statuses atomic.Int64
	// getsDown makes Get, Create, Delete and List fail as unreachable;
	// statusDown makes Status fail as unreachable.
	getsDown, statusDown atomic.Bool
	panicOnce            atomic.Bool
}

var _ keystore.Store = (*fakeStore)(nil)

var errRefused = errors.New("connection refused")

func newFakeStore() *fakeStore {
	return &fakeStore{values: map[string][]byte{}, gates: map[string]chan struct{}{}}
}

func (s *fakeStore) down(down bool) {
	s.getsDown.Store(down)
	s.statusDown.Store(down)
}

func (s *fakeStore) put(name string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[name] = value
}

func (s *fakeStore) gate(name string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.gates[name] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

func (s *fakeStore) Create(_ context.Context, name string, value []byte) error {
	if s.getsDown.Load() {
		return &keystore.UnreachableError{Err: errRefused}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; ok {
		return fmt.Errorf("fake: create %q: %w", name, keystore.ErrExists)
	}
	s.values[name] = value
	return nil
}

func (s *fakeStore) Get(ctx context.Context, name string) ([]byte, error) {
	if _, _, _, ok := keyring.ParseEntryName(name); ok {
		// A key's version and deletion entries, read with every key
		// (keyring.Ring.Load): not counted, never blocked.
		return s.getEntry(name)
	}
	s.gets.Add(1)
	if s.started != nil {
		s.started <- name
	}
	if s.panicOnce.Swap(false) {
		panic("fake store panics")
	}
	if s.getsDown.Load() {
		return nil, &keystore.UnreachableError{Err: errRefused}
	}
	// Read first, then block: the read happens before anything done
	// while the Get is blocked.
	s.mu.Lock()
	v, ok := s.values[name]
	gate := s.gates[name]
	s.mu.Unlock()
	if gate != nil && ctx.Value(ungated{}) == nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("fake: get %q: %w", name, ctx.Err())
		}
	}
	if !ok {
		return nil, fmt.Errorf("fake: get %q: %w", name, keystore.ErrNotFound)
	}
	return v, nil
}

// getEntry reads a version or deletion entry.
func (s *fakeStore) getEntry(name string) ([]byte, error) {
	if s.getsDown.Load() {
		return nil, &keystore.UnreachableError{Err: errRefused}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	if !ok {
		return nil, fmt.Errorf("fake: get %q: %w", name, keystore.ErrNotFound)
	}
	return v, nil
}

// ungated is a context key: a Get with it set is not blocked by a gate
// (Delete reads the key first to find its versions).
type ungated struct{}

func (s *fakeStore) Delete(_ context.Context, name string) error {
	if s.getsDown.Load() {
		return &keystore.UnreachableError{Err: errRefused}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; !ok {
		return fmt.Errorf("fake: delete %q: %w", name, keystore.ErrNotFound)
	}
	delete(s.values, name)
	return nil
}

func (s *fakeStore) List(_ context.Context, prefix string, n int) ([]string, string, error) {
	if s.getsDown.Load() {
		return nil, "", &keystore.UnreachableError{Err: errRefused}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.values))
	for name := range s.values {
		names = append(names, name)
	}
	names, next := keystore.Page(names, prefix, n)
	return names, next, nil
}

func (s *fakeStore) Status(context.Context) (keystore.State, error) {
	s.statuses.Add(1)
	if s.statusDown.Load() {
		return keystore.State{}, &keystore.UnreachableError{Err: errRefused}
	}
	return keystore.State{Latency: time.Millisecond}, nil
}

func (s *fakeStore) Close() error { return nil }

// newKey returns a fresh key version and its stored form.
func newKey(t testing.TB) (crypto.KeyVersion, []byte) {
	t.Helper()
	v, err := crypto.GenerateKeyVersion(crypto.AES256, time.Now().UTC().Truncate(time.Second), "test-identity", nil)
	if err != nil {
		t.Fatalf("GenerateKeyVersion: %v", err)
	}
	b, err := v.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	return v, b
}

// storeWith returns a fake store holding one fresh key under each of
// names, and that key.
func storeWith(t testing.TB, names ...string) (*fakeStore, crypto.KeyVersion) {
	t.Helper()
	want, b := newKey(t)
	store := newFakeStore()
	for _, name := range names {
		store.put(name, b)
	}
	return store, want
}

// warmCache returns a cache with conf over storeWith(names) that has read
// every one of names, and its store.
func warmCache(t testing.TB, conf Config, names ...string) (*Cache, *fakeStore) {
	t.Helper()
	store, _ := storeWith(t, names...)
	c := newCache(t, store, conf)
	for _, name := range names {
		mustGet(t, c, name)
	}
	return c, store
}

// gatedCache returns a quiet cache over storeWith(names): the store Gets
// of names[0] block until release is called (at the end of the test at
// the latest), and store.started receives the name of every store Get.
func gatedCache(t *testing.T, names ...string) (c *Cache, store *fakeStore, want crypto.KeyVersion, release func()) {
	t.Helper()
	store, want = storeWith(t, names...)
	release = store.gate(names[0])
	t.Cleanup(release)
	store.started = make(chan string, 10)
	return newCache(t, store, quiet), store, want, release
}

// quiet disables all expiries and probes for the lifetime of a test.
var quiet = Config{ProbeInterval: time.Hour}

func newCache(t testing.TB, store keystore.Store, conf Config) *Cache {
	t.Helper()
	c := New(store, conf, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *Cache) cached(name string) bool {
	_, ok := c.entries.Load(name)
	return ok
}

// eventually waits up to 5s for cond to hold.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// getAsync starts c.Get(ctx, name) in a goroutine and returns where its
// error arrives: a "wrong key" error if it returns a key other than want.
func getAsync(ctx context.Context, c *Cache, name string, want crypto.KeyVersion) <-chan error {
	errc := make(chan error, 1)
	go func() {
		k, err := c.Get(ctx, name)
		if err == nil && !equalKey(k.Versions[0].Key, want) {
			err = errors.New("wrong key")
		}
		errc <- err
	}()
	return errc
}

// releaseGet calls release and fails t unless the Get started by
// getAsync that delivers to errc then succeeds; what names that Get.
func releaseGet(t *testing.T, release func(), errc <-chan error, what string) {
	t.Helper()
	release()
	if err := <-errc; err != nil {
		t.Fatalf("%s = %v, want the key", what, err)
	}
}

func equalKey(a, b crypto.KeyVersion) bool {
	return a.Key.Equal(b.Key) && a.HasHMAC == b.HasHMAC && a.HMACKey.Equal(b.HMACKey) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.CreatedBy == b.CreatedBy
}

// mustGet returns the first version of the key name.
func mustGet(t testing.TB, c *Cache, name string) crypto.KeyVersion {
	t.Helper()
	return mustGetKey(t, c, name).Versions[0].Key
}

func mustGetKey(t testing.TB, c *Cache, name string) *keyring.Key {
	t.Helper()
	k, err := c.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return k
}

func TestGetHit(t *testing.T) {
	t.Parallel()
	store, want := storeWith(t, "k")
	c := newCache(t, store, quiet)

	first := mustGet(t, c, "k")
	if !equalKey(first, want) {
		t.Errorf("Get(%q) on a miss = %v, want the stored key", "k", first)
	}
	first.CreatedBy = "modified"
	first.CreatedAt = time.Time{}
	for range 3 {
		got := mustGet(t, c, "k")
		if !equalKey(got, want) {
			t.Errorf("Get(%q) on a hit = %v, want the stored key (unaffected by changes to earlier results)", "k", got)
		}
	}
	if got := store.gets.Load(); got != 1 {
		t.Errorf("store Get calls = %d, want 1", got)
	}
}

func TestGetErrors(t *testing.T) {
	t.Parallel()
	_, b := newKey(t)
	tests := []struct {
		name  string
		value []byte // nil: not in the store
		down  bool
		check func(error) bool
	}{
		{"not found", nil, false, func(err error) bool { return errors.Is(err, keystore.ErrNotFound) }},
		{"unreachable", b, true, keystore.IsUnreachable},
		{"decode error", []byte("not a key"), false, func(err error) bool {
			var d *DecodeError
			return errors.As(err, &d) && d.Name == "k" && errors.Is(err, crypto.ErrInvalidKeyVersion)
		}},
		{"empty value", []byte{}, false, func(err error) bool {
			var d *DecodeError
			return errors.As(err, &d)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newFakeStore()
			if tt.value != nil {
				store.put("k", tt.value)
			}
			store.getsDown.Store(tt.down)
			c := newCache(t, store, quiet)
			for i := range 2 {
				_, err := c.Get(t.Context(), "k")
				if err == nil || !tt.check(err) {
					t.Fatalf("Get(%q) = %v, want a %s error", "k", err, tt.name)
				}
				if got, want := store.gets.Load(), int64(i+1); got != want {
					t.Fatalf("store Get calls = %d, want %d (errors must not be cached)", got, want)
				}
			}
			if c.cached("k") {
				t.Errorf("entry cached after error")
			}
		})
	}
}

func TestGetNotFoundThenCreated(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	c := newCache(t, store, quiet)
	if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", "k", err)
	}
	want, b := newKey(t)
	store.put("k", b) // created by another replica
	if got := mustGet(t, c, "k"); !equalKey(got, want) {
		t.Errorf("Get(%q) = %v, want the key created later", "k", got)
	}
}

func TestGetSingleFlight(t *testing.T) {
	t.Parallel()
	store, want := storeWith(t, "k")
	release := store.gate("k")
	c := newCache(t, store, quiet)

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, err := c.Get(t.Context(), "k")
			if err == nil && !equalKey(v.Versions[0].Key, want) {
				err = errors.New("wrong key")
			}
			errs <- err
		})
	}
	// Give the goroutines time to pile up behind the blocked read. The
	// assertion holds however they are scheduled: late ones hit the cache.
	time.Sleep(50 * time.Millisecond)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Get(%q) error: %v", "k", err)
		}
	}
	if got := store.gets.Load(); got != 1 {
		t.Errorf("store Get calls = %d, want 1", got)
	}
}

func TestGetDifferentNamesDoNotBlock(t *testing.T) {
	t.Parallel()
	c, store, want, release := gatedCache(t, "slow", "fast")

	slow := getAsync(t.Context(), c, "slow", want)
	if name := <-store.started; name != "slow" {
		t.Fatalf("first store Get for %q, want %q", name, "slow")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.Get(ctx, "fast"); err != nil {
		t.Fatalf("Get(%q) while %q is in flight: %v", "fast", "slow", err)
	}
	releaseGet(t, release, slow, `Get("slow")`)
}

func TestGetLeaderCanceled(t *testing.T) {
	t.Parallel()
	c, store, want, release := gatedCache(t, "k")

	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leader := getAsync(leaderCtx, c, "k", want)
	<-store.started
	waiter := getAsync(t.Context(), c, "k", want)
	time.Sleep(20 * time.Millisecond) // let the waiter wait
	cancelLeader()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Get(%q) = %v, want context.Canceled", "k", err)
	}
	<-store.started // the waiter reads the key itself
	releaseGet(t, release, waiter, `waiting Get("k") after the first Get was canceled`)
}

func TestGetWaiterCanceled(t *testing.T) {
	t.Parallel()
	c, store, _, _ := gatedCache(t, "k")

	go c.Get(t.Context(), "k")
	<-store.started
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get(%q) with expired context = %v, want DeadlineExceeded", "k", err)
	}
}

func TestGetStorePanics(t *testing.T) {
	t.Parallel()
	store, want := storeWith(t, "k")
	store.panicOnce.Store(true)
	c := newCache(t, store, quiet)

	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Errorf("Get(%q) did not pass on the store's panic", "k")
			}
		}()
		c.Get(t.Context(), "k")
	}()
	if got := mustGet(t, c, "k"); !equalKey(got, want) {
		t.Errorf("Get(%q) after a panic = %v, want the key", "k", got)
	}
}

func TestGetDoesNotAllocateOnHit(t *testing.T) {
	get := func(ctx context.Context, c *Cache) error {
		_, err := c.Get(ctx, "k")
		return err
	}
	for _, tt := range []struct {
		name     string
		observer Observer
		get      func(context.Context, *Cache) error
	}{
		{"Get", nil, get},
		{"Get with an Observer", new(countingObserver), get},
		{"GetVersion", nil, func(ctx context.Context, c *Cache) error {
			_, err := c.GetVersion(ctx, "k", 1)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := quiet
			conf.Observer = tt.observer
			c, _ := warmCache(t, conf, "k")
			ctx := t.Context()
			allocs := testing.AllocsPerRun(1000, func() {
				if err := tt.get(ctx, c); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s on a hit allocates %v times, want 0", tt.name, allocs)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	want, _ := newKey(t)
	store := newFakeStore()
	c := newCache(t, store, quiet)

	if err := c.Create(t.Context(), "k", &want); err != nil {
		t.Fatalf("Create(%q) error: %v", "k", err)
	}
	if c.cached("k") {
		t.Errorf("Create(%q) populated the cache", "k")
	}
	if err := c.Create(t.Context(), "k", &want); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("second Create(%q) = %v, want ErrExists", "k", err)
	}
	if err := c.Create(t.Context(), "nil", nil); err == nil {
		t.Errorf("Create(%q, nil) = nil, want error", "nil")
	}
	if got := mustGet(t, c, "k"); !equalKey(got, want) {
		t.Errorf("Get(%q) after Create = %v, want the created key", "k", got)
	}
	if got := store.gets.Load(); got != 1 {
		t.Errorf("store Get calls = %d, want 1", got)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		inStore   bool // still in the store when Delete is called
		down      bool
		wantErr   error
		wantEvict bool
	}{
		{"deleted", true, false, nil, true},
		{"already deleted in store", false, false, keystore.ErrNotFound, true},
		{"store unreachable", true, true, errRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, store := warmCache(t, quiet, "k")
			if !tt.inStore {
				store.mu.Lock()
				delete(store.values, "k")
				store.mu.Unlock()
			}
			store.getsDown.Store(tt.down)
			err := c.Delete(t.Context(), "k")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Delete(%q) = %v, want %v", "k", err, tt.wantErr)
			}
			if got := !c.cached("k"); got != tt.wantEvict {
				t.Errorf("entry evicted = %v, want %v", got, tt.wantEvict)
			}
			if tt.wantEvict {
				if _, err := c.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
					t.Errorf("Get(%q) after Delete = %v, want ErrNotFound", "k", err)
				}
			}
		})
	}
}

// TestChangeDuringGet checks that a store read overtaken by a Delete, or
// by a change reported by the store's Watcher, does not put the old key
// back into the cache.
func TestChangeDuringGet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, c *Cache)
	}{
		{"delete", func(t *testing.T, c *Cache) {
			if err := c.Delete(context.WithValue(t.Context(), ungated{}, true), "k"); err != nil {
				t.Fatalf("Delete(%q) error: %v", "k", err)
			}
		}},
		{"invalidate", func(t *testing.T, c *Cache) { c.Invalidate("k") }},
		{"invalidate all", func(t *testing.T, c *Cache) { c.Invalidate("") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, store, want, release := gatedCache(t, "k")

			got := getAsync(t.Context(), c, "k", want)
			<-store.started // the read has happened; it now blocks
			tt.change(t, c)
			releaseGet(t, release, got, `Get("k") that read before the change`)
			if c.cached("k") {
				t.Errorf("key %q was cached by a read that started before it changed", "k")
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	for _, name := range []string{"b", "a", "c", "x"} {
		store.put(name, []byte("v"))
	}
	c := newCache(t, store, quiet)
	names, next, err := c.List(t.Context(), "", 2)
	if err != nil {
		t.Fatalf("List error: %v", err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" || next != "c" {
		t.Errorf("List(%q, 2) = %q, %q, want [a b], c; diff (-want +got):\n%s", "", names, next, diff)
	}
	store.getsDown.Store(true)
	if _, _, err := c.List(t.Context(), "", 0); !keystore.IsUnreachable(err) {
		t.Errorf("List with store down = %v, want unreachable error", err)
	}
}

func TestExpireAny(t *testing.T) {
	t.Parallel()
	c, store := warmCache(t, Config{Any: 20 * time.Millisecond, ProbeInterval: time.Hour}, "k")
	// Reading the key does not keep it cached.
	eventually(t, "the entry expires", func() bool {
		mustGet(t, c, "k")
		return store.gets.Load() > 1
	})
}

// TestExpireUnusedRounds checks the round logic of the Unused expiry
// directly, without timing.
func TestExpireUnusedRounds(t *testing.T) {
	t.Parallel()
	c, _ := warmCache(t, quiet, "used", "unused")

	c.expireUnused() // both were used since insertion: both survive
	if !c.cached("used") || !c.cached("unused") {
		t.Fatalf("fresh entries dropped by the first round: used=%v unused=%v", c.cached("used"), c.cached("unused"))
	}
	mustGet(t, c, "used")
	c.expireUnused()
	if !c.cached("used") {
		t.Errorf("entry read since the last round was dropped")
	}
	if c.cached("unused") {
		t.Errorf("entry not read for a whole round was kept")
	}
	c.expireUnused()
	if c.cached("used") {
		t.Errorf("entry not read for a whole round was kept")
	}
}

func TestExpireUnused(t *testing.T) {
	t.Parallel()
	c, store := warmCache(t, Config{Unused: 60 * time.Millisecond, ProbeInterval: time.Hour}, "used", "unused")
	eventually(t, "the unused entry expires", func() bool {
		mustGet(t, c, "used")
		return !c.cached("unused")
	})
	// Read every 2ms, far more often than every Unused/2.
	if got := store.gets.Load(); got != 2 {
		t.Errorf("store Get calls = %d, want 2 (the entry in use must stay cached)", got)
	}
}

func TestOffline(t *testing.T) {
	t.Parallel()
	const offline = 500 * time.Millisecond
	store, want := storeWith(t, "k")
	c := newCache(t, store, Config{
		Any:           10 * time.Millisecond,
		Unused:        10 * time.Millisecond,
		Offline:       offline,
		ProbeInterval: 5 * time.Millisecond,
	})

	if _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("Status with the store up: %v", err)
	}

	// The store's Status fails, its Get still works (e.g. a degraded
	// cluster): the probe marks it offline.
	store.statusDown.Store(true)
	eventually(t, "the probe marks the store offline", c.Offline)
	detected := time.Now()
	_, err := c.Status(t.Context())
	if !keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "keystore is offline") {
		t.Fatalf("Status while offline = %v, want the cache's own unreachable error", err)
	}

	// Cache a key, then lose the store completely.
	mustGet(t, c, "k")
	store.getsDown.Store(true)
	gets := store.gets.Load()
	for time.Since(detected) < offline/2 { // many Any and Unused periods
		v, err := c.Get(t.Context(), "k")
		if err != nil {
			t.Fatalf("Get(%q) %v after the outage was detected: %v, want the cached key", "k", time.Since(detected), err)
		}
		if !equalKey(v.Versions[0].Key, want) {
			t.Fatalf("Get(%q) = %v, want the cached key", "k", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := store.gets.Load(); got != gets {
		t.Errorf("store Get calls while serving from the cache = %d, want %d", got, gets)
	}

	// Offline serving is bounded.
	eventually(t, "the Offline expiry drops the entry", func() bool { return !c.cached("k") })
	if elapsed := time.Since(detected); elapsed < offline/2 {
		t.Errorf("entry dropped %v after the outage was detected, want about %v", elapsed, offline)
	}
	if _, err := c.Get(t.Context(), "k"); !keystore.IsUnreachable(err) {
		t.Errorf("Get(%q) after the Offline expiry = %v, want unreachable error", "k", err)
	}

	// Recovery.
	store.down(false)
	eventually(t, "the probe clears the offline mark", func() bool { return !c.Offline() })
	if _, err := c.Status(t.Context()); err != nil {
		t.Errorf("Status after recovery: %v", err)
	}
	if got := mustGet(t, c, "k"); !equalKey(got, want) {
		t.Errorf("Get(%q) after recovery = %v, want the key", "k", got)
	}
}

// TestOfflineDetectedByGet checks that a Get failing as unreachable marks
// the store offline at once, and that Status then does not ask the store.
func TestOfflineDetectedByGet(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.down(true)
	c := newCache(t, store, quiet)
	if _, err := c.Get(t.Context(), "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get(%q) = %v, want unreachable error", "k", err)
	}
	if !c.Offline() {
		t.Fatalf("Offline() = false after an unreachable Get, want true")
	}
	for range 3 {
		_, err := c.Status(t.Context())
		var u *keystore.UnreachableError
		if !errors.As(err, &u) {
			t.Fatalf("Status while offline = %v, want *keystore.UnreachableError", err)
		}
	}
	if got := store.statuses.Load(); got != 0 {
		t.Errorf("store Status calls while offline = %d, want 0", got)
	}
}

// TestOfflineWithoutOfflineExpiry checks that with Offline <= 0 the Any
// expiry goes on during an outage, as upstream does.
func TestOfflineWithoutOfflineExpiry(t *testing.T) {
	t.Parallel()
	c, store := warmCache(t, Config{Any: 10 * time.Millisecond, ProbeInterval: time.Hour}, "k")
	store.getsDown.Store(true)
	eventually(t, "the entry expires despite the outage", func() bool { return !c.cached("k") })
}

func TestProbeIgnoresCancellation(t *testing.T) {
	t.Parallel()
	store := &statusStore{fakeStore: newFakeStore(), err: fmt.Errorf("fake: %w", context.Canceled)}
	c := newCache(t, store, Config{ProbeInterval: 2 * time.Millisecond})
	eventually(t, "a few probes ran", func() bool { return store.statuses.Load() > 3 })
	if c.Offline() {
		t.Errorf("Offline() = true after canceled probes, want false")
	}
	store.setErr(errors.New("fake: internal error"))
	eventually(t, "a failing probe marks the store offline", c.Offline)
}

// statusStore is a fakeStore whose Status returns a configurable error.
type statusStore struct {
	*fakeStore
	mu  sync.Mutex
	err error
}

func (s *statusStore) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *statusStore) Status(context.Context) (keystore.State, error) {
	s.statuses.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return keystore.State{}, s.err
}

// blockingStatusStore is a fakeStore whose Status blocks until its
// context ends.
type blockingStatusStore struct {
	*fakeStore
	entered chan struct{}
}

func (s *blockingStatusStore) Status(ctx context.Context) (keystore.State, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return keystore.State{}, ctx.Err()
}

// TestClose is not parallel: it counts goroutines.
func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	store := &blockingStatusStore{fakeStore: newFakeStore(), entered: make(chan struct{}, 1)}
	c := New(store, Config{
		Any:           time.Millisecond,
		Unused:        time.Millisecond,
		Offline:       time.Millisecond,
		ProbeInterval: time.Millisecond,
	}, nil)
	<-store.entered // a probe is blocked in the store

	done := make(chan struct{})
	go func() {
		c.Close()
		c.Close() // idempotent
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a probe was blocked")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines after Close = %d, want %d", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkGetHit(b *testing.B) {
	benchmarkGetHit(b, quiet, "minio-default-key", "app-1", "app-2", "app-3")
}

// benchmarkGetHit reads names in turn from parallel goroutines, from a
// cache with conf that holds them all.
func benchmarkGetHit(b *testing.B, conf Config, names ...string) {
	c, _ := warmCache(b, conf, names...)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Get(ctx, names[i%len(names)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGetMiss(b *testing.B) {
	store, _ := storeWith(b, "k")
	c := newCache(b, store, quiet)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "k"); err != nil {
			b.Fatal(err)
		}
		c.entries.Clear()
	}
}

// TestOfflineRecovery checks that the probes that found the store down
// also notice that it is back, without anything else happening.
func TestOfflineRecovery(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.down(true)
	c := newCache(t, store, Config{ProbeInterval: 50 * time.Millisecond})
	eventually(t, "a probe marks the store offline", c.Offline)
	store.down(false)
	eventually(t, "the store is online again", func() bool { return !c.Offline() })
}

// TestOfflineEndsWithFirstSuccess checks that a store call that succeeds
// while the store is marked offline makes the cache probe at once, so the
// end of an outage is reported without waiting for the probe interval.
func TestOfflineEndsWithFirstSuccess(t *testing.T) {
	t.Parallel()
	store, _ := storeWith(t, "k")
	store.down(true)
	c := newCache(t, store, quiet) // probes once an hour
	if _, err := c.Get(t.Context(), "k"); !keystore.IsUnreachable(err) {
		t.Fatalf("Get = %v, want unreachable", err)
	}
	if !c.Offline() {
		t.Fatal("not offline after an unreachable Get")
	}
	store.down(false)
	mustGet(t, c, "k")
	eventually(t, "the cache reports the store online", func() bool { return !c.Offline() })
}
