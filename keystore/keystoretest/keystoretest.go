// Package keystoretest is the conformance suite for [keystore.Store]
// implementations.
//
// Every backend runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		keystoretest.Run(t, func(t *testing.T) keystore.Store {
//			s, err := fs.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// # What is checked
//
// Create-if-absent (including a race of concurrent Creates for one name),
// Get and Delete of missing names, the mapping of a backend's own errors to
// [keystore.ErrExists] and [keystore.ErrNotFound], List ordering, prefix
// filtering and paging, Status, names made of the whole KES name alphabet,
// and that values are copied in and out of the store.
//
// Stores that cannot tell whether Delete removed anything, or that can only
// hold text values, say so with [Options] and [RunWith].
//
// # Helpers
//
// The backends' own tests share the rest of the package: [LogBuffer] and
// [Logger] for log output, [CheckNoSecrets] for leak checks,
// [Eventually] and [WaitUntil] for polling, [CheckOutage] for a service
// that is down or throttling, [RaceCreate] and [Concurrently] for
// concurrent Creates, [Fixtures] for the original server's key files,
// and [CheckLive], [LiveNames] and [CheckCreateGet] for tests against a
// live service.
package keystoretest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/openkes/openkes/keystore"
)

// Options relaxes the suite for stores with documented limitations.
// The zero value is the strict contract.
type Options struct {
	// DeleteMissingOK accepts a nil error from Delete of a name that does
	// not exist, for stores that cannot tell (Vault, Azure, KeySecure).
	// An error that wraps keystore.ErrNotFound is accepted either way.
	DeleteMissingOK bool

	// TextOnly skips binary (non-UTF-8) values, for stores that keep values
	// as strings. The server only ever stores text (base64 or JSON).
	TextOnly bool
}

// Run runs the conformance suite with the strict contract. It is
// RunWith(t, open, Options{}).
func Run(t *testing.T, open func(t *testing.T) keystore.Store) {
	t.Helper()
	RunWith(t, open, Options{})
}

// RunWith runs the conformance suite, relaxed by opts, as parallel subtests
// of t.
//
// open must return a fresh, empty store each time it is called; it is
// called once or more per subtest, with the subtest's t, and should call
// t.Fatal if the store cannot be opened. The suite closes every store it
// opens (through t.Cleanup, or explicitly in the Close subtest), so open
// must not close it.
//
// Failures are reported through t; RunWith returns nothing.
func RunWith(t *testing.T, open func(t *testing.T) keystore.Store, opts Options) {
	t.Helper()
	s := suite{open: open, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"CreateGet", s.testCreateGet},
		{"CreateExisting", s.testCreateExisting},
		{"GetMissing", s.testGetMissing},
		{"DeleteMissing", s.testDeleteMissing},
		{"DeleteThenCreate", s.testDeleteThenCreate},
		{"List", s.testList},
		{"ListEmpty", s.testListEmpty},
		{"ListPaging", s.testListPaging},
		{"Status", s.testStatus},
		{"CreateRace", s.testCreateRace},
		{"CreateConcurrent", s.testCreateConcurrent},
		{"Names", s.testNames},
		{"Copies", s.testCopies},
		{"Close", s.testClose},
		{"Versions", s.testVersions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

type suite struct {
	open func(t *testing.T) keystore.Store
	opts Options
}

// store opens a fresh store that is closed when t finishes.
func (s *suite) store(t *testing.T) keystore.Store {
	t.Helper()
	st := s.open(t)
	if st == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return st
}

// value returns a typical stored value: about 200 bytes of base64 text
// that differ for every seed.
func value(seed int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 208)
	for i := range b {
		b[i] = alphabet[(i*7+seed*13+seed/64)%len(alphabet)]
	}
	// Make every seed unique even where the pattern above repeats.
	copy(b, fmt.Sprintf("%08d", seed))
	return b
}

func mustCreate(t *testing.T, st keystore.Store, name string, v []byte) {
	t.Helper()
	if err := st.Create(t.Context(), name, v); err != nil {
		t.Fatalf("Create(%q) = %v, want nil", name, err)
	}
}

func mustGet(t *testing.T, st keystore.Store, name string, want []byte) {
	t.Helper()
	got, err := st.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want nil", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.32q..., want %d bytes %.32q...", name, len(got), got, len(want), want)
	}
}

func wantNotFound(t *testing.T, st keystore.Store, name string) {
	t.Helper()
	got, err := st.Get(t.Context(), name)
	if !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(%q) = %d bytes, %v; want error wrapping %v", name, len(got), err, keystore.ErrNotFound)
	}
}

func (s *suite) testCreateGet(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	tests := []struct {
		name   string
		value  []byte
		binary bool
	}{
		{name: "base64", value: value(1)},
		{name: "json", value: []byte(`{"bytes":"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=","algorithm":"AES256-GCM_SHA256","created_at":"2024-01-01T00:00:00Z"}`)},
		{name: "one-byte", value: []byte("x")},
		{name: "large", value: bytes.Repeat(value(2), 80)}, // 16 KiB
		{name: "binary", value: binary, binary: true},
		{name: "nul", value: []byte{0, 0, 0, 0}, binary: true},
	}
	st := s.store(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.binary && s.opts.TextOnly {
				t.Skip("store holds text values only")
			}
			key := "key-" + tt.name
			mustCreate(t, st, key, bytes.Clone(tt.value))
			mustGet(t, st, key, tt.value)
		})
	}
}

func (s *suite) testCreateExisting(t *testing.T) {
	st := s.store(t)
	mustCreate(t, st, "my-key", value(1))
	err := st.Create(t.Context(), "my-key", value(2))
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("second Create(%q) = %v, want error wrapping %v", "my-key", err, keystore.ErrExists)
	}
	mustGet(t, st, "my-key", value(1))
}

func (s *suite) testGetMissing(t *testing.T) {
	st := s.store(t)
	wantNotFound(t, st, "my-key")
	// A name that only shares a prefix with an existing one is missing too.
	mustCreate(t, st, "my-key-1", value(1))
	wantNotFound(t, st, "my-key")
	wantNotFound(t, st, "my-key-10")
}

func (s *suite) checkDeleteMissing(t *testing.T, st keystore.Store, name string) {
	t.Helper()
	err := st.Delete(t.Context(), name)
	if errors.Is(err, keystore.ErrNotFound) || (err == nil && s.opts.DeleteMissingOK) {
		return
	}
	if s.opts.DeleteMissingOK {
		t.Fatalf("Delete(%q) of a missing key = %v, want nil or error wrapping %v", name, err, keystore.ErrNotFound)
	}
	t.Fatalf("Delete(%q) of a missing key = %v, want error wrapping %v", name, err, keystore.ErrNotFound)
}

func (s *suite) testDeleteMissing(t *testing.T) {
	st := s.store(t)
	s.checkDeleteMissing(t, st, "my-key")
}

func (s *suite) testDeleteThenCreate(t *testing.T) {
	st := s.store(t)
	mustCreate(t, st, "my-key", value(1))
	mustCreate(t, st, "other", value(2))

	if err := st.Delete(t.Context(), "my-key"); err != nil {
		t.Fatalf("Delete(%q) = %v, want nil", "my-key", err)
	}
	wantNotFound(t, st, "my-key")
	mustGet(t, st, "other", value(2)) // Delete removes one entry only.
	s.checkDeleteMissing(t, st, "my-key")

	names, _, err := st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"other"}, names, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("List() after Delete mismatch (-want +got):\n%s", diff)
	}

	mustCreate(t, st, "my-key", value(3))
	mustGet(t, st, "my-key", value(3))
}

// listNames are stored for the List tests. They are chosen so that byte
// order differs from case-insensitive and from "natural" order.
var listNames = []string{"other", "my_app", "my-key2", "MY-KEY", "my-key", "a", "my-key10", "z", "0"}

func (s *suite) testList(t *testing.T) {
	st := s.store(t)
	for i, name := range listNames {
		mustCreate(t, st, name, value(i))
	}
	tests := []struct {
		name      string
		prefix    string
		n         int
		wantNames []string
		wantNext  string
	}{
		{name: "all", prefix: "", n: 0, wantNames: []string{"0", "MY-KEY", "a", "my-key", "my-key10", "my-key2", "my_app", "other", "z"}},
		{name: "all-negative-n", prefix: "", n: -1, wantNames: []string{"0", "MY-KEY", "a", "my-key", "my-key10", "my-key2", "my_app", "other", "z"}},
		{name: "prefix", prefix: "my", n: 0, wantNames: []string{"my-key", "my-key10", "my-key2", "my_app"}},
		{name: "prefix-is-case-sensitive", prefix: "MY", n: 0, wantNames: []string{"MY-KEY"}},
		{name: "prefix-is-a-name", prefix: "my-key", n: -1, wantNames: []string{"my-key", "my-key10", "my-key2"}},
		{name: "prefix-longer-than-names", prefix: "my-key22", n: 0, wantNames: nil},
		{name: "prefix-no-match", prefix: "nothing", n: 0, wantNames: nil},
		{name: "prefix-before-all", prefix: "-", n: 0, wantNames: nil},
		{name: "prefix-after-all", prefix: "zz", n: 0, wantNames: nil},
		{name: "page-1", prefix: "my", n: 1, wantNames: []string{"my-key"}, wantNext: "my-key10"},
		{name: "page-2", prefix: "my", n: 2, wantNames: []string{"my-key", "my-key10"}, wantNext: "my-key2"},
		{name: "page-exact", prefix: "my", n: 4, wantNames: []string{"my-key", "my-key10", "my-key2", "my_app"}},
		{name: "page-larger", prefix: "my", n: 100, wantNames: []string{"my-key", "my-key10", "my-key2", "my_app"}},
		{name: "page-all", prefix: "", n: 3, wantNames: []string{"0", "MY-KEY", "a"}, wantNext: "my-key"},
		{name: "page-no-match", prefix: "nothing", n: 1, wantNames: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			names, next, err := st.List(t.Context(), tt.prefix, tt.n)
			if err != nil {
				t.Fatalf("List(%q, %d) = %v, want nil", tt.prefix, tt.n, err)
			}
			if diff := cmp.Diff(tt.wantNames, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(%q, %d) names mismatch (-want +got):\n%s", tt.prefix, tt.n, diff)
			}
			if next != tt.wantNext {
				t.Errorf("List(%q, %d) next = %q, want %q", tt.prefix, tt.n, next, tt.wantNext)
			}
		})
	}
}

func (s *suite) testListEmpty(t *testing.T) {
	st := s.store(t)
	for _, n := range []int{-1, 0, 1} {
		names, next, err := st.List(t.Context(), "", n)
		if err != nil {
			t.Fatalf("List(%q, %d) on an empty store = %v, want nil", "", n, err)
		}
		if len(names) != 0 || next != "" {
			t.Fatalf("List(%q, %d) on an empty store = %q, %q; want no names", "", n, names, next)
		}
	}
}

// testListPaging stores more names than a single small page holds and
// checks that every page is the next run of the sorted names.
func (s *suite) testListPaging(t *testing.T) {
	st := s.store(t)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("key-%02d", i)
		want = append(want, name)
		mustCreate(t, st, name, value(i))
	}
	mustCreate(t, st, "other", value(99))

	for _, n := range []int{1, 2, 7, 25} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			names, next, err := st.List(t.Context(), "key-", n)
			if err != nil {
				t.Fatalf("List(%q, %d) = %v, want nil", "key-", n, err)
			}
			wantNext := ""
			if n < len(want) {
				wantNext = want[n]
			}
			if diff := cmp.Diff(want[:min(n, len(want))], names); diff != "" {
				t.Errorf("List(%q, %d) names mismatch (-want +got):\n%s", "key-", n, diff)
			}
			if next != wantNext {
				t.Errorf("List(%q, %d) next = %q, want %q", "key-", n, next, wantNext)
			}
		})
	}
}

func (s *suite) testStatus(t *testing.T) {
	st := s.store(t)
	state, err := st.Status(t.Context())
	if err != nil {
		t.Fatalf("Status() = %v, want nil", err)
	}
	if state.Latency < 0 {
		t.Fatalf("Status() latency = %v, want >= 0", state.Latency)
	}
}

const workers = 16

// testCreateRace lets many goroutines create the same name at once: exactly
// one may win, and the stored value must be the winner's.
func (s *suite) testCreateRace(t *testing.T) {
	st := s.store(t)
	winner := RaceCreate(t, `Create("my-key")`, workers, func(i int) error {
		return st.Create(t.Context(), "my-key", value(i))
	})
	if winner < 0 {
		t.Fatalf("no concurrent Create(%q) succeeded", "my-key")
	}
	mustGet(t, st, "my-key", value(winner))
}

func (s *suite) testCreateConcurrent(t *testing.T) {
	st := s.store(t)
	want := make([]string, workers)
	for i := range want {
		want[i] = fmt.Sprintf("key-%02d", i)
	}
	errs := Concurrently(workers, func(i int) error { return st.Create(t.Context(), want[i], value(i)) })
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create(%q) = %v, want nil", want[i], err)
		}
	}
	if t.Failed() {
		return
	}
	for i, name := range want {
		mustGet(t, st, name, value(i))
	}
	names, next, err := st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	if diff := cmp.Diff(want, names); diff != "" || next != "" {
		t.Fatalf("List() = _, %q; names mismatch (-want +got):\n%s", next, diff)
	}
}

// testNames checks names the server accepts (docs/api.md#names-and-patterns), including one that
// uses the whole alphabet and has the maximum length of 80 bytes.
func (s *suite) testNames(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	full := alphabet + strings.Repeat("x", 80-len(alphabet))
	tests := []struct {
		name string
		key  string
	}{
		{name: "full-alphabet-80", key: full},
		{name: "single-digit", key: "0"},
		{name: "single-letter", key: "A"},
		{name: "underscore-first", key: "_0"},
		{name: "dash-inside", key: "0-Z"},
		{name: "only-underscore-and-dash", key: "_-___---_"},
		{name: "mixed", key: "my_key-0"},
		{name: "hex-identity", key: strings.Repeat("0123456789abcdef", 4)},
		{name: "max-length", key: strings.Repeat("a", 80)},
	}
	st := s.store(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCreate(t, st, tt.key, value(i))
			mustGet(t, st, tt.key, value(i))

			names, _, err := st.List(t.Context(), tt.key, 0)
			if err != nil {
				t.Fatalf("List(%q) = %v, want nil", tt.key, err)
			}
			if !containsName(names, tt.key) {
				t.Fatalf("List(%q) = %q, want it to contain %q", tt.key, names, tt.key)
			}

			if err := st.Delete(t.Context(), tt.key); err != nil {
				t.Fatalf("Delete(%q) = %v, want nil", tt.key, err)
			}
			wantNotFound(t, st, tt.key)
		})
	}
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// testCopies checks that the store neither keeps the caller's slice nor
// hands out its own.
func (s *suite) testCopies(t *testing.T) {
	st := s.store(t)
	v := value(1)
	mustCreate(t, st, "my-key", v)
	clear(v)
	mustGet(t, st, "my-key", value(1))

	got, err := st.Get(t.Context(), "my-key")
	if err != nil {
		t.Fatalf("Get(%q) = %v, want nil", "my-key", err)
	}
	clear(got)
	mustGet(t, st, "my-key", value(1))

	names, _, err := st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	for i := range names {
		names[i] = "changed"
	}
	names, _, err = st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"my-key"}, names); diff != "" {
		t.Fatalf("List() after changing a returned slice mismatch (-want +got):\n%s", diff)
	}
}

func (s *suite) testClose(t *testing.T) {
	st := s.open(t)
	if st == nil {
		t.Fatal("open returned a nil store")
	}
	mustCreate(t, st, "my-key", value(1))
	if err := st.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
}
