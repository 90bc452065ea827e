package keycache

import (
	"errors"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore"
)

func newVersion(t *testing.T) crypto.KeyVersion {
	t.Helper()
	v, err := crypto.GenerateKeyVersion(crypto.AES256, time.Now().UTC(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestGetVersion: a version the cached key lacks makes GetVersion read
// the key again, at most once per key per reloadInterval.
func TestGetVersion(t *testing.T) {
	t.Parallel()
	store, _ := storeWith(t, "k", "j")
	c := newCache(t, store, quiet)
	other := keyring.New(store) // another server's view of the store

	if k := mustGetKey(t, c, "k"); k.Rotated() {
		t.Fatal("new key is rotated")
	}
	v2 := newVersion(t)
	if n, err := other.Rotate(t.Context(), "k", &v2); err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	if k := mustGetKey(t, c, "k"); k.Rotated() {
		t.Fatal("Get read the store again on a hit")
	}

	steps := []struct {
		name      string
		key       string
		version   int
		wantReads int64 // store reads of the key entry
		wantHas   bool
	}{
		{"cached version", "k", 1, 0, true},
		{"new version", "k", 2, 1, true},
		{"new version again", "k", 2, 0, true},
		{"missing version within a second of the reload", "k", 3, 0, false},
		{"another missing version within a second", "k", 9, 0, false},
		{"another key", "j", 5, 2, false}, // first Get and one reload
	}
	for _, s := range steps {
		before := store.gets.Load()
		k, err := c.GetVersion(t.Context(), s.key, s.version)
		if err != nil {
			t.Fatalf("%s: GetVersion: %v", s.name, err)
		}
		if _, ok := k.Version(s.version); ok != s.wantHas {
			t.Errorf("%s: has version %d = %v, want %v", s.name, s.version, ok, s.wantHas)
		}
		if got := store.gets.Load() - before; got != s.wantReads {
			t.Errorf("%s: store reads = %d, want %d", s.name, got, s.wantReads)
		}
	}

	// After the interval, the next miss reads again.
	c.mu.Lock()
	c.reloads["k"] = time.Now().Add(-reloadInterval)
	c.mu.Unlock()
	before := store.gets.Load()
	if _, err := c.GetVersion(t.Context(), "k", 3); err != nil {
		t.Fatal(err)
	}
	if got := store.gets.Load() - before; got != 1 {
		t.Errorf("store reads after the interval = %d, want 1", got)
	}
	before = store.gets.Load()
	if _, err := c.GetVersion(t.Context(), "k", 3); err != nil {
		t.Fatal(err)
	}
	if got := store.gets.Load() - before; got != 0 {
		t.Errorf("store reads for a missing version right after a reload = %d, want 0", got)
	}

	if _, err := c.GetVersion(t.Context(), "nope", 2); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("GetVersion of a missing key = %v, want ErrNotFound", err)
	}
}

// TestLifecycleChanges: Rotate, ScheduleDeletion, Restore, Delete and
// Sweep go to the store and drop the cached key, so the next Get sees
// the change; a watcher event for a version or deletion entry drops the
// key it belongs to.
func TestLifecycleChanges(t *testing.T) {
	t.Parallel()
	store, _ := storeWith(t, "k")
	c := newCache(t, store, quiet)
	ctx := t.Context()
	now := time.Now().UTC()

	mustGetKey(t, c, "k")
	v2 := newVersion(t)
	if n, err := c.Rotate(ctx, "k", &v2); err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v", n, err)
	}
	if k := mustGetKey(t, c, "k"); k.Latest().N != 2 || !k.Latest().Key.Key.Equal(v2.Key) {
		t.Errorf("Get after Rotate: newest version %d", k.Latest().N)
	}
	if err := c.ScheduleDeletion(ctx, "k", keyring.Deletion{ScheduledAt: now, DeleteAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if k := mustGetKey(t, c, "k"); k.Deletion == nil {
		t.Error("Get after ScheduleDeletion: not scheduled")
	}
	if _, err := c.Rotate(ctx, "k", &v2); !errors.Is(err, keyring.ErrScheduled) {
		t.Errorf("Rotate of a scheduled key = %v, want ErrScheduled", err)
	}
	if err := c.Restore(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if k := mustGetKey(t, c, "k"); k.Deletion != nil {
		t.Error("Get after Restore: still scheduled")
	}
	if err := c.Restore(ctx, "k"); !errors.Is(err, keyring.ErrNotScheduled) {
		t.Errorf("second Restore = %v, want ErrNotScheduled", err)
	}

	// Changed through another server, reported by a watcher.
	other := keyring.New(store)
	if err := other.ScheduleDeletion(ctx, "k", keyring.Deletion{ScheduledAt: now, DeleteAt: now}); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(keyring.DeletionName("k"))
	if k := mustGetKey(t, c, "k"); k.Deletion == nil {
		t.Error("Get after the watcher reported the deletion entry: not scheduled")
	}
	names, scheduled, _, err := c.ListScheduled(ctx, "", 0)
	if err != nil || len(names) != 1 || names[0] != "k" || !scheduled["k"] {
		t.Errorf("ListScheduled = %q, %v, %v", names, scheduled, err)
	}
	removed, err := c.Sweep(ctx, now.Add(time.Second))
	if err != nil || len(removed) != 1 || removed[0] != "k" {
		t.Fatalf("Sweep = %q, %v", removed, err)
	}
	if c.cached("k") {
		t.Error("swept key still cached")
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get after Sweep = %v, want ErrNotFound", err)
	}
	if all, _, _ := store.List(ctx, "", 0); len(all) != 0 {
		t.Errorf("store after Sweep = %q, want empty", all)
	}
}
