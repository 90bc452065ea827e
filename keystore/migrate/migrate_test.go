package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/mem"
)

// newStore returns an in-memory store holding keys.
func newStore(t *testing.T, keys map[string]string) *mem.Store {
	t.Helper()
	s := mem.New()
	t.Cleanup(func() { s.Close() })
	for _, name := range slices.Sorted(maps.Keys(keys)) {
		if err := s.Create(t.Context(), name, []byte(keys[name])); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// contents returns every key of s and its value.
func contents(t *testing.T, s keystore.Store) map[string]string {
	t.Helper()
	names, _, err := s.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]string, len(names))
	for _, name := range names {
		v, err := s.Get(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = string(v)
	}
	return keys
}

// recorder records the writes to a store, as "create a", "delete a" or
// "replace a".
type recorder struct {
	keystore.Store
	mu     sync.Mutex
	writes []string
}

func (r *recorder) record(op, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, op+" "+name)
}

func (r *recorder) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.writes))
}

func (r *recorder) Create(ctx context.Context, name string, value []byte) error {
	r.record("create", name)
	return r.Store.Create(ctx, name, value)
}

func (r *recorder) Delete(ctx context.Context, name string) error {
	r.record("delete", name)
	return r.Store.Delete(ctx, name)
}

// replacer is a recorder that replaces values in one step, as the fs and
// etcd stores do. With unsupported set, Replace wraps
// errors.ErrUnsupported, as a sealed store over a store that cannot
// replace does.
type replacer struct {
	*recorder
	unsupported bool
}

func (r *replacer) Replace(ctx context.Context, name string, value []byte) error {
	if r.unsupported {
		return fmt.Errorf("test: replace %q: %w", name, errors.ErrUnsupported)
	}
	r.record("replace", name)
	r.mu.Lock() // no reader sees the key missing
	defer r.mu.Unlock()
	if err := r.Store.Delete(ctx, name); err != nil {
		return err
	}
	return r.Store.Create(ctx, name, value)
}

// resealing reports the keys in need as needing a reseal, as a sealed
// store does for values stored unsealed or under an old KEK.
type resealing struct {
	*replacer
	need map[string]bool
}

func (r *resealing) NeedsReseal(_ context.Context, name string) (bool, error) {
	return r.need[name], nil
}

func TestModes(t *testing.T) {
	t.Parallel()
	source := map[string]string{"differs": "new", "same": "same", "fresh": "fresh"}
	target := map[string]string{"differs": "old", "same": "same", "only-in-target": "kept"}
	tests := []struct {
		name       string
		mode       Mode
		store      func(*recorder) keystore.Store // the target around the recorder
		want       map[string]string
		wantWrites []string
		wantCount  map[Outcome]int
		wantDiffer []string
	}{
		{
			name:       "merge keeps the target's values",
			mode:       Merge,
			want:       map[string]string{"differs": "old", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create fresh", "create same"},
			wantCount:  map[Outcome]int{Copied: 1, Identical: 1, Kept: 1},
			wantDiffer: []string{"differs"},
		},
		{
			name:       "force replaces in place",
			mode:       Force,
			store:      func(r *recorder) keystore.Store { return &replacer{recorder: r} },
			want:       map[string]string{"differs": "new", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create fresh", "create same", "replace differs"},
			wantCount:  map[Outcome]int{Copied: 1, Identical: 1, Replaced: 1},
		},
		{
			name:       "force deletes and creates without a replacer",
			mode:       Force,
			want:       map[string]string{"differs": "new", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create differs", "create fresh", "create same", "delete differs"},
			wantCount:  map[Outcome]int{Copied: 1, Identical: 1, Replaced: 1},
		},
		{
			name:       "force deletes and creates when replacing is unsupported",
			mode:       Force,
			store:      func(r *recorder) keystore.Store { return &replacer{recorder: r, unsupported: true} },
			want:       map[string]string{"differs": "new", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create differs", "create fresh", "create same", "delete differs"},
			wantCount:  map[Outcome]int{Copied: 1, Identical: 1, Replaced: 1},
		},
		{
			name: "force reseals identical values",
			mode: Force,
			store: func(r *recorder) keystore.Store {
				return &resealing{replacer: &replacer{recorder: r}, need: map[string]bool{"same": true}}
			},
			want:       map[string]string{"differs": "new", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create fresh", "create same", "replace differs", "replace same"},
			wantCount:  map[Outcome]int{Copied: 1, Replaced: 2},
		},
		{
			name: "merge does not reseal",
			mode: Merge,
			store: func(r *recorder) keystore.Store {
				return &resealing{replacer: &replacer{recorder: r}, need: map[string]bool{"same": true}}
			},
			want:       map[string]string{"differs": "old", "same": "same", "fresh": "fresh", "only-in-target": "kept"},
			wantWrites: []string{"create differs", "create fresh", "create same"},
			wantCount:  map[Outcome]int{Copied: 1, Identical: 1, Kept: 1},
			wantDiffer: []string{"differs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := newStore(t, source)
			rec := &recorder{Store: newStore(t, target)}
			var dst keystore.Store = rec
			if tt.store != nil {
				dst = tt.store(rec)
			}
			m := &Migration{Source: src, Target: dst, Mode: tt.mode}
			stats, err := m.Run(t.Context())
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			var want Stats
			want.Total = len(source)
			for o, n := range tt.wantCount {
				want.Count[o] = n
			}
			want.Differ = tt.wantDiffer
			if diff := cmp.Diff(want, stats); diff != "" {
				t.Errorf("Run() stats mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, contents(t, rec.Store)); diff != "" {
				t.Errorf("target mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWrites, rec.ops()); diff != "" {
				t.Errorf("writes to the target mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(source, contents(t, src)); diff != "" {
				t.Errorf("source changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFailMode checks that without Merge or Force an existing key stops
// the migration and stays as it is.
func TestFailMode(t *testing.T) {
	t.Parallel()
	src := newStore(t, map[string]string{"a": "1", "b": "source"})
	dst := newStore(t, map[string]string{"b": "target"})
	m := &Migration{Source: src, Target: dst, Workers: 1}
	stats, err := m.Run(t.Context())
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Name != "b" || !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Run() error = %v, want a *ConflictError for b wrapping keystore.ErrExists", err)
	}
	if want := "key 'b' already exists in the target"; err.Error() != want {
		t.Errorf("Run() error = %q, want %q", err, want)
	}
	if stats.Migrated() != 1 || stats.Total != 2 {
		t.Errorf("Run() stats = %+v, want 1 of 2 migrated", stats)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "target"}, contents(t, dst)); diff != "" {
		t.Errorf("target mismatch (-want +got):\n%s", diff)
	}
}

// TestResume interrupts a migration and resumes it with Merge: every key
// is copied exactly once, and the counts of the interrupted run are
// exact.
func TestResume(t *testing.T) {
	t.Parallel()
	keys := map[string]string{}
	for i := range 200 {
		keys[fmt.Sprintf("key-%03d", i)] = fmt.Sprintf("value %d", i)
	}
	src := newStore(t, keys)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &recorder{Store: newStore(t, nil)}
	dst := &cancelingStore{recorder: rec, after: 50, cancel: cancel}
	stats, err := (&Migration{Source: src, Target: dst}).Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run() error = %v, want context.Canceled", err)
	}
	copied := contents(t, rec.Store)
	if stats.Migrated() != len(copied) || stats.Migrated() < 50 || stats.Migrated() == len(keys) {
		t.Errorf("interrupted Run() migrated %d, the target holds %d; want the same, at least 50 and fewer than %d", stats.Migrated(), len(copied), len(keys))
	}

	rec.writes = nil
	stats, err = (&Migration{Source: src, Target: rec, Mode: Merge}).Run(t.Context())
	if err != nil {
		t.Fatalf("resumed Run() error = %v", err)
	}
	if stats.Count[Identical] != len(copied) || stats.Migrated() != len(keys)-len(copied) {
		t.Errorf("resumed Run() stats = %+v, want %d identical and %d copied", stats, len(copied), len(keys)-len(copied))
	}
	if diff := cmp.Diff(keys, contents(t, rec.Store)); diff != "" {
		t.Errorf("target after resuming mismatch (-want +got):\n%s", diff)
	}
}

// cancelingStore cancels a context once a number of keys were created
// in it, as an interrupt would.
type cancelingStore struct {
	*recorder
	after  int
	cancel context.CancelFunc
}

func (s *cancelingStore) Create(ctx context.Context, name string, value []byte) error {
	err := s.recorder.Create(ctx, name, value)
	if len(s.ops()) == s.after {
		s.cancel()
	}
	return err
}

// interruptingStore cancels a context in Delete, as an interrupt
// arriving in the middle of a replacement would.
type interruptingStore struct {
	keystore.Store
	cancel context.CancelFunc
}

func (s *interruptingStore) Delete(ctx context.Context, name string) error {
	s.cancel()
	return s.Store.Delete(ctx, name)
}

// TestForceInterrupted checks that an interrupt never leaves a replaced
// key deleted.
func TestForceInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dst := newStore(t, map[string]string{"k": "old"})
	m := &Migration{Source: newStore(t, map[string]string{"k": "new"}), Target: &interruptingStore{dst, cancel}, Mode: Force}
	stats, err := m.Run(ctx)
	if err != nil || stats.Count[Replaced] != 1 {
		t.Errorf("Run() = %+v, %v; want 1 replaced", stats, err)
	}
	if diff := cmp.Diff(map[string]string{"k": "new"}, contents(t, dst)); diff != "" {
		t.Errorf("target mismatch (-want +got):\n%s", diff)
	}
}

func TestPattern(t *testing.T) {
	t.Parallel()
	// "m-v2-", "m-deleted-" and "minio-a-v2-" hold a later version or the
	// scheduled deletion of a key (internal/keyring): they go with it.
	names := []string{"minio-a", "minio-b", "minio_c", "other-1", "other-22", "m", "m-v2-", "m-deleted-", "minio-a-v2-"}
	tests := []struct {
		pattern string
		want    []string
	}{
		{pattern: "", want: names},
		{pattern: "*", want: names},
		{pattern: "minio-*", want: []string{"minio-a", "minio-b", "minio-a-v2-"}},
		{pattern: "minio-a", want: []string{"minio-a", "minio-a-v2-"}},
		{pattern: "other-?", want: []string{"other-1"}},
		{pattern: "minio?[bc]", want: []string{"minio-b", "minio_c"}},
		{pattern: "other-[^2]*", want: []string{"other-1"}},
		{pattern: "m", want: []string{"m", "m-v2-", "m-deleted-"}},
		{pattern: "nothing*", want: nil},
	}
	keys := map[string]string{}
	for _, name := range names {
		keys[name] = "value of " + name
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			t.Parallel()
			dst := newStore(t, nil)
			stats, err := (&Migration{Source: newStore(t, keys), Target: dst, Pattern: tt.pattern}).Run(t.Context())
			if err != nil || stats.Total != len(tt.want) || stats.Migrated() != len(tt.want) {
				t.Fatalf("Run() = %+v, %v; want %d of %d migrated", stats, err, len(tt.want), len(tt.want))
			}
			want := map[string]string{}
			for _, name := range tt.want {
				want[name] = keys[name]
			}
			if diff := cmp.Diff(want, contents(t, dst)); diff != "" {
				t.Errorf("target mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		_, err := (&Migration{Source: newStore(t, keys), Target: newStore(t, nil), Pattern: "key-["}).Run(t.Context())
		if want := "invalid pattern 'key-[': syntax error in pattern"; err == nil || err.Error() != want {
			t.Errorf("Run() error = %v, want %q", err, want)
		}
		if err := CheckPattern("key-["); err == nil {
			t.Errorf("CheckPattern(%q) = nil, want an error", "key-[")
		}
	})
}

// TestProgress checks the calls of the progress callback: one when the
// keys are listed, one per key, one per tick.
func TestProgress(t *testing.T) {
	t.Parallel()
	src := newStore(t, map[string]string{"a": "1", "b": "2", "c": "3"})
	tick := make(chan time.Time)
	var got []string
	gate := make(chan struct{})
	m := &Migration{
		Source:  src,
		Target:  &gatedStore{Store: newStore(t, nil), gate: gate},
		Workers: 1,
		Tick:    tick,
		Progress: func(s Stats) {
			got = append(got, fmt.Sprintf("%d/%d", s.Processed(), s.Total))
			if len(got) == 1 {
				// Listed: tick while the first key is held up.
				go func() {
					tick <- time.Time{}
					close(gate)
				}()
			}
		},
	}
	if _, err := m.Run(t.Context()); err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if diff := cmp.Diff([]string{"0/3", "0/3", "1/3", "2/3", "3/3"}, got); diff != "" {
		t.Errorf("progress mismatch (-want +got):\n%s", diff)
	}
}

// gatedStore holds up every Create until gate is closed.
type gatedStore struct {
	keystore.Store
	gate chan struct{}
}

func (s *gatedStore) Create(ctx context.Context, name string, value []byte) error {
	<-s.gate
	return s.Store.Create(ctx, name, value)
}

// sealedStore says whether it is sealed.
type sealedStore struct {
	keystore.Store
	sealed bool
}

func (s *sealedStore) Sealed() bool { return s.sealed }

func TestSealed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		src, dst func(keystore.Store) keystore.Store
		mode     Mode
		wantErr  error
	}{
		{name: "sealed to plain", src: withSealed(true), dst: plain, wantErr: ErrUnsealing},
		{name: "sealed to plain with merge", src: withSealed(true), dst: plain, mode: Merge, wantErr: ErrUnsealing},
		{name: "sealed to unsealed", src: withSealed(true), dst: withSealed(false), wantErr: ErrUnsealing},
		{name: "sealed to plain with force", src: withSealed(true), dst: plain, mode: Force},
		{name: "sealed to sealed", src: withSealed(true), dst: withSealed(true)},
		{name: "unsealed to plain", src: withSealed(false), dst: plain},
		{name: "plain to sealed", src: plain, dst: withSealed(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner := newStore(t, nil)
			m := &Migration{Source: tt.src(newStore(t, map[string]string{"k": "v"})), Target: tt.dst(inner), Mode: tt.mode}
			_, err := m.Run(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run() error = %v, want %v", err, tt.wantErr)
			}
			want := map[string]string{"k": "v"}
			if tt.wantErr != nil {
				want = map[string]string{} // refused before copying
			}
			if diff := cmp.Diff(want, contents(t, inner)); diff != "" {
				t.Errorf("target mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func withSealed(is bool) func(keystore.Store) keystore.Store {
	return func(s keystore.Store) keystore.Store { return &sealedStore{s, is} }
}

func plain(s keystore.Store) keystore.Store { return s }

type readMark struct{}

// markCheckingStore fails every Get whose context is not marked.
type markCheckingStore struct{ keystore.Store }

func (s markCheckingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if ctx.Value(readMark{}) == nil {
		return nil, fmt.Errorf("test: get %q without the mark", name)
	}
	return s.Store.Get(ctx, name)
}

// TestReadContext checks that the reads of source and target see the
// context of ReadContext.
func TestReadContext(t *testing.T) {
	t.Parallel()
	src := markCheckingStore{newStore(t, map[string]string{"a": "1", "b": "2"})}
	dst := markCheckingStore{newStore(t, map[string]string{"a": "old"})}
	m := &Migration{Source: src, Target: dst, Mode: Merge}
	if _, err := m.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "without the mark") {
		t.Fatalf("Run() without ReadContext error = %v, want the reads refused", err)
	}
	m.ReadContext = func(ctx context.Context) context.Context { return context.WithValue(ctx, readMark{}, true) }
	stats, err := m.Run(t.Context())
	if err != nil || stats.Count[Kept] != 1 || stats.Count[Copied] != 1 {
		t.Errorf("Run() = %+v, %v; want 1 kept and 1 copied", stats, err)
	}
}

// TestDiffer checks that the names of kept keys are recorded up to
// MaxDiffering.
func TestDiffer(t *testing.T) {
	t.Parallel()
	source, target := map[string]string{}, map[string]string{}
	for i := range MaxDiffering + 5 {
		name := fmt.Sprintf("k%02d", i)
		source[name], target[name] = "new", "old"
	}
	stats, err := (&Migration{Source: newStore(t, source), Target: newStore(t, target), Mode: Merge, Workers: 1}).Run(t.Context())
	if err != nil || stats.Count[Kept] != MaxDiffering+5 {
		t.Fatalf("Run() = %+v, %v; want %d kept", stats, err, MaxDiffering+5)
	}
	want := slices.Sorted(maps.Keys(source))[:MaxDiffering]
	if diff := cmp.Diff(want, stats.Differ); diff != "" {
		t.Errorf("Differ mismatch (-want +got):\n%s", diff)
	}
}

// vanishingStore pretends that one key was deleted after it was listed.
type vanishingStore struct {
	keystore.Store
	name string
}

func (s *vanishingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if name == s.name {
		return nil, fmt.Errorf("test: get %q: %w", name, keystore.ErrNotFound)
	}
	return s.Store.Get(ctx, name)
}

// pagingStore breaks the List contract: it returns a continuation even
// when asked for all names.
type pagingStore struct{ keystore.Store }

func (s pagingStore) List(ctx context.Context, prefix string, _ int) ([]string, string, error) {
	return s.Store.List(ctx, prefix, 1)
}

// failingStore fails Create for one key name.
type failingStore struct {
	keystore.Store
	name string
}

func (s *failingStore) Create(ctx context.Context, name string, value []byte) error {
	if name == s.name {
		return errors.New("disk on fire")
	}
	return s.Store.Create(ctx, name, value)
}

// TestMisbehavingStores runs migrations with stores that change under
// the migration or fail.
func TestMisbehavingStores(t *testing.T) {
	t.Parallel()
	keys := map[string]string{"a": "value of a", "b": "value of b", "c": "value of c"}
	t.Run("vanished key", func(t *testing.T) {
		t.Parallel()
		dst := newStore(t, nil)
		stats, err := (&Migration{Source: &vanishingStore{newStore(t, keys), "b"}, Target: dst}).Run(t.Context())
		if err != nil || stats.Count[Vanished] != 1 || stats.Migrated() != 2 {
			t.Fatalf("Run() = %+v, %v; want 2 migrated and 1 vanished", stats, err)
		}
		if diff := cmp.Diff(map[string]string{"a": "value of a", "c": "value of c"}, contents(t, dst)); diff != "" {
			t.Errorf("target mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("partial listing", func(t *testing.T) {
		t.Parallel()
		_, err := (&Migration{Source: pagingStore{newStore(t, keys)}, Target: newStore(t, nil)}).Run(t.Context())
		if want := "listing the source: the key store returned only part of its keys (up to 'b')"; err == nil || err.Error() != want {
			t.Errorf("Run() error = %v, want %q", err, want)
		}
	})
	t.Run("target error", func(t *testing.T) {
		t.Parallel()
		_, err := (&Migration{Source: newStore(t, keys), Target: &failingStore{newStore(t, nil), "b"}}).Run(t.Context())
		if want := "creating key 'b' in the target: disk on fire"; err == nil || err.Error() != want {
			t.Errorf("Run() error = %v, want %q", err, want)
		}
	})
}
