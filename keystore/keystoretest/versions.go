package keystoretest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore"
)

// testVersions runs the key lifecycle of internal/keyring (versions,
// scheduled deletion, restore) on the store: everything it needs from a
// store is atomic Create, Get, Delete and List, which this case checks
// in the way the server uses them.
func (s *suite) testVersions(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st keystore.Store)
	}{
		{"Rotate", testRotate},
		{"RotateConcurrent", testRotateConcurrent},
		{"ListHidesEntries", testListHidesEntries},
		{"DeleteAll", testDeleteVersions},
		{"LeftoverVersions", testLeftoverVersions},
		{"ScheduleRestore", testScheduleRestore},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, s.store(t)) })
	}
}

// newVersion returns a fresh key version created by "test".
func newVersion(t *testing.T) crypto.KeyVersion {
	t.Helper()
	v, err := crypto.GenerateKeyVersion(crypto.AES256, time.Now().UTC().Truncate(time.Second), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustRingCreate(t *testing.T, r *keyring.Ring, name string) crypto.KeyVersion {
	t.Helper()
	v := newVersion(t)
	if err := r.Create(t.Context(), name, &v); err != nil {
		t.Fatalf("Create(%q) = %v", name, err)
	}
	return v
}

func mustRotate(t *testing.T, r *keyring.Ring, name string) (int, crypto.KeyVersion) {
	t.Helper()
	v := newVersion(t)
	n, err := r.Rotate(t.Context(), name, &v)
	if err != nil {
		t.Fatalf("Rotate(%q) = %v", name, err)
	}
	return n, v
}

func mustLoad(t *testing.T, r *keyring.Ring, name string) *keyring.Key {
	t.Helper()
	k, err := r.Load(t.Context(), name)
	if err != nil {
		t.Fatalf("Load(%q) = %v", name, err)
	}
	return k
}

func versionNumbers(k *keyring.Key) []int {
	var ns []int
	for _, v := range k.Versions {
		ns = append(ns, v.N)
	}
	return ns
}

func testRotate(t *testing.T, st keystore.Store) {
	r := keyring.New(st)
	v1 := mustRingCreate(t, r, "my-key")
	stored, err := st.Get(t.Context(), "my-key")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]crypto.KeyVersion{1: v1}
	for i := 2; i <= 4; i++ {
		n, v := mustRotate(t, r, "my-key")
		if n != i {
			t.Fatalf("Rotate #%d = version %d, want %d", i-1, n, i)
		}
		want[n] = v
	}
	k := mustLoad(t, r, "my-key")
	if got := versionNumbers(k); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Fatalf("versions = %v, want [1 2 3 4]", got)
	}
	if k.Latest().N != 4 || !k.Rotated() || k.Deletion != nil {
		t.Fatalf("Latest = %d, Rotated = %v, Deletion = %v; want 4, true, nil", k.Latest().N, k.Rotated(), k.Deletion)
	}
	for n, v := range want {
		got, ok := k.Version(n)
		if !ok || !got.Key.Key.Equal(v.Key) || !got.Key.HMACKey.Equal(v.HMACKey) || got.Key.CreatedBy != "test" {
			t.Errorf("version %d: not the key that was stored", n)
		}
		lv, err := r.LoadVersion(t.Context(), "my-key", n)
		if err != nil || !lv.Key.Equal(v.Key) {
			t.Errorf("LoadVersion(%d) = %v, want the stored key", n, err)
		}
	}
	if _, err := r.LoadVersion(t.Context(), "my-key", 5); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("LoadVersion(5) = %v, want ErrNotFound", err)
	}
	// Version 1 is still the original, unchanged entry.
	mustGet(t, st, "my-key", stored)

	if _, err := r.Rotate(t.Context(), "missing", &v1); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Rotate(missing) = %v, want ErrNotFound", err)
	}
}

// testRotateConcurrent rotates one key from several goroutines through
// two Rings, as two servers sharing the store would: no version is lost
// and no number is handed out twice.
func testRotateConcurrent(t *testing.T, st keystore.Store) {
	a, b := keyring.New(st), keyring.New(st)
	mustRingCreate(t, a, "shared")
	const perRing = 4
	var (
		mu       sync.Mutex
		versions []int
		wg       sync.WaitGroup
	)
	for _, r := range []*keyring.Ring{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perRing / 2 {
				v := newVersion(t)
				n, err := r.Rotate(t.Context(), "shared", &v)
				if errors.Is(err, keyring.ErrConflict) {
					continue // a clear conflict is allowed; a lost version is not
				}
				if err != nil {
					t.Errorf("Rotate = %v", err)
					return
				}
				mu.Lock()
				versions = append(versions, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(versions)
	if len(slices.Compact(slices.Clone(versions))) != len(versions) {
		t.Fatalf("rotations returned duplicate versions: %v", versions)
	}
	k := mustLoad(t, b, "shared")
	got := versionNumbers(k)[1:]
	if !slices.Equal(got, versions) {
		t.Fatalf("stored versions %v, want the ones Rotate returned %v", got, versions)
	}
}

func testListHidesEntries(t *testing.T, st keystore.Store) {
	r := keyring.New(st)
	for _, name := range []string{"a", "a-v2", "b", "c"} {
		mustRingCreate(t, r, name)
	}
	mustRotate(t, r, "a")
	mustRotate(t, r, "a")
	mustRotate(t, r, "a-v2")
	if err := r.ScheduleDeletion(t.Context(), "b", keyring.Deletion{ScheduledAt: time.Now(), DeleteAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	names, next, err := r.List(t.Context(), "", 0)
	if err != nil || next != "" || !slices.Equal(names, []string{"a", "a-v2", "b", "c"}) {
		t.Fatalf("List = %q, %q, %v; want [a a-v2 b c]", names, next, err)
	}
	names, next, err = r.List(t.Context(), "a", 0)
	if err != nil || !slices.Equal(names, []string{"a", "a-v2"}) {
		t.Fatalf("List(a) = %q, %q, %v; want [a a-v2]", names, next, err)
	}
	names, next, err = r.List(t.Context(), "", 2)
	if err != nil || next != "b" || !slices.Equal(names, []string{"a", "a-v2"}) {
		t.Fatalf("List(n=2) = %q, %q, %v; want [a a-v2], next b", names, next, err)
	}
	names, next, err = r.List(t.Context(), "", 4)
	if err != nil || next != "" || len(names) != 4 {
		t.Fatalf("List(n=4) = %q, %q, %v; want 4 names, no next", names, next, err)
	}
	sched, err := r.Scheduled(t.Context())
	if _, ok := sched["b"]; err != nil || len(sched) != 1 || !ok {
		t.Fatalf("Scheduled = %v, %v; want b", sched, err)
	}
}

func testDeleteVersions(t *testing.T, st keystore.Store) {
	r := keyring.New(st)
	mustRingCreate(t, r, "gone")
	mustRotate(t, r, "gone")
	mustRotate(t, r, "gone")
	if err := r.ScheduleDeletion(t.Context(), "gone", keyring.Deletion{ScheduledAt: time.Now(), DeleteAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(t.Context(), "gone"); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	all, _, err := st.List(t.Context(), "", 0)
	if err != nil || len(all) != 0 {
		t.Fatalf("store entries after Delete = %q, %v; want none", all, err)
	}
	if _, err := r.Load(t.Context(), "gone"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Load after Delete = %v, want ErrNotFound", err)
	}
	if err := r.Delete(t.Context(), "gone"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	mustRingCreate(t, r, "gone")
	if got := versionNumbers(mustLoad(t, r, "gone")); !slices.Equal(got, []int{1}) {
		t.Fatalf("recreated key has versions %v, want [1]", got)
	}
}

// testLeftoverVersions: a delete interrupted after the key's own entry
// leaves version entries behind; a new key of the same name must not
// take them for its own.
func testLeftoverVersions(t *testing.T, st keystore.Store) {
	r := keyring.New(st)
	mustRingCreate(t, r, "k")
	mustRotate(t, r, "k")
	mustRotate(t, r, "k")
	if err := st.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	v1 := mustRingCreate(t, r, "k")
	k := mustLoad(t, r, "k")
	if got := versionNumbers(k); !slices.Equal(got, []int{1}) || !k.Latest().Key.Key.Equal(v1.Key) {
		t.Fatalf("new key has versions %v, want only its own version 1", got)
	}
	if _, err := r.LoadVersion(t.Context(), "k", 2); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("LoadVersion(2) of a leftover = %v, want ErrNotFound", err)
	}
	n, v := mustRotate(t, r, "k")
	if n != 4 {
		t.Fatalf("Rotate past leftovers 2 and 3 = version %d, want 4", n)
	}
	k = mustLoad(t, r, "k")
	if got := versionNumbers(k); !slices.Equal(got, []int{1, 4}) || !k.Latest().Key.Key.Equal(v.Key) {
		t.Fatalf("versions = %v, want [1 4]", got)
	}
}

func testScheduleRestore(t *testing.T, st keystore.Store) {
	r := keyring.New(st)
	mustRingCreate(t, r, "k")
	now := time.Now().UTC().Truncate(time.Second)
	d := keyring.Deletion{ScheduledAt: now, DeleteAt: now.Add(time.Hour), ScheduledBy: "admin"}
	if err := r.ScheduleDeletion(t.Context(), "missing", d); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("ScheduleDeletion(missing) = %v, want ErrNotFound", err)
	}
	if err := r.ScheduleDeletion(t.Context(), "k", d); err != nil {
		t.Fatal(err)
	}
	if err := r.ScheduleDeletion(t.Context(), "k", d); !errors.Is(err, keyring.ErrScheduled) {
		t.Errorf("second ScheduleDeletion = %v, want ErrScheduled", err)
	}
	k := mustLoad(t, r, "k")
	if k.Deletion == nil || !k.Deletion.DeleteAt.Equal(d.DeleteAt) || k.Deletion.ScheduledBy != "admin" {
		t.Fatalf("Deletion = %+v, want %+v", k.Deletion, d)
	}
	if v := newVersion(t); true {
		if _, err := r.Rotate(t.Context(), "k", &v); !errors.Is(err, keyring.ErrScheduled) {
			t.Errorf("Rotate of a scheduled key = %v, want ErrScheduled", err)
		}
	}
	if removed, err := r.Sweep(t.Context(), now); err != nil || len(removed) != 0 {
		t.Fatalf("Sweep before the window ends = %v, %v; want nothing", removed, err)
	}
	if err := r.Restore(t.Context(), "k"); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if err := r.Restore(t.Context(), "k"); !errors.Is(err, keyring.ErrNotScheduled) {
		t.Errorf("second Restore = %v, want ErrNotScheduled", err)
	}
	if k := mustLoad(t, r, "k"); k.Deletion != nil {
		t.Fatalf("restored key still scheduled: %+v", k.Deletion)
	}
	mustRotate(t, r, "k")

	// Scheduled again (the entry is created anew after the restore
	// deleted it), then swept after its window.
	if err := r.ScheduleDeletion(t.Context(), "k", d); err != nil {
		t.Fatalf("ScheduleDeletion after Restore = %v", err)
	}
	removed, err := r.Sweep(t.Context(), d.DeleteAt)
	if err != nil || !slices.Equal(removed, []string{"k"}) {
		t.Fatalf("Sweep = %v, %v; want [k]", removed, err)
	}
	if _, err := r.Load(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Load after Sweep = %v, want ErrNotFound", err)
	}
	all, _, err := st.List(t.Context(), "", 0)
	if err != nil || len(all) != 0 {
		t.Fatalf("store entries after Sweep = %q, %v; want none", all, err)
	}
}
