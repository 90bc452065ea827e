package etcd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/testlisten"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/etcd/etcdtest"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/seal"
)

// testTimeout is the store timeout of most tests: longer than an etcd
// member waits for a proposal that got lost with a failed leader (6 s
// with the election timeout of etcdtest), so a test that kills a leader
// sees no errors.
const testTimeout = 10 * time.Second

var prefixes atomic.Int64

// uniquePrefix returns a prefix no other store of the test binary uses.
func uniquePrefix() string {
	return fmt.Sprintf("test-%d", prefixes.Add(1))
}

// testLogger returns a logger writing to t's output until t ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", bytes.TrimSuffix(p, []byte("\n")))
	}
	return len(p), nil
}

// newStore opens a store that is closed when t ends.
func newStore(t testing.TB, conf *Config) *Store {
	t.Helper()
	if conf.Timeout == 0 {
		conf.Timeout = testTimeout
	}
	s, err := New(t.Context(), conf, testLogger(t))
	if err != nil {
		t.Fatalf("New() = %v, want nil", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// conformance runs the keystoretest suite with stores configured as
// conf, each below a fresh prefix inside conf.Prefix.
func conformance(t *testing.T, conf Config) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		c := conf
		c.Prefix = conf.Prefix + uniquePrefix()
		if c.Timeout == 0 {
			c.Timeout = testTimeout
		}
		s, err := New(t.Context(), &c, testLogger(t))
		if err != nil {
			t.Fatalf("New() = %v, want nil", err)
		}
		return s
	})
}

func mustCreate(t testing.TB, s keystore.Store, name, value string) {
	t.Helper()
	if err := s.Create(t.Context(), name, []byte(value)); err != nil {
		t.Fatalf("Create(%q) = %v, want nil", name, err)
	}
}

func mustDelete(t testing.TB, s keystore.Store, name string) {
	t.Helper()
	if err := s.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete(%q) = %v, want nil", name, err)
	}
}

func mustGet(t testing.TB, s keystore.Store, name, want string) {
	t.Helper()
	got, err := s.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("Get(%q) = %v, want nil", name, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", name, got, want)
	}
}

// wantUnreachable checks that err wraps a *keystore.UnreachableError
// whose message contains all of wantIn.
func wantUnreachable(t testing.TB, op string, err error, wantIn ...string) {
	t.Helper()
	if !keystore.IsUnreachable(err) {
		t.Fatalf("%s = %v, want an error wrapping *keystore.UnreachableError", op, err)
	}
	for _, s := range wantIn {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s = %q, want it to contain %q", op, err, s)
		}
	}
}

// TestSingleMember runs the tests that need one member of etcd on one
// cluster.
func TestSingleMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	conf := Config{Endpoints: c.Endpoints()}
	t.Run("Conformance", func(t *testing.T) { conformance(t, conf) })
	t.Run("Layout", func(t *testing.T) { t.Parallel(); testLayout(t, c) })
	t.Run("EmptyPrefix", func(t *testing.T) { t.Parallel(); testEmptyPrefix(t, c) })
	t.Run("ListBatches", func(t *testing.T) { t.Parallel(); testListBatches(t, c) })
	t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, c) })
	t.Run("CreateRetry", func(t *testing.T) { t.Parallel(); testCreateRetry(t, c) })
	t.Run("Replace", func(t *testing.T) { t.Parallel(); testReplace(t, c) })
	t.Run("Sealed", func(t *testing.T) { t.Parallel(); testSealed(t, c) })
	t.Run("Watch", func(t *testing.T) { t.Parallel(); testWatch(t, c) })
	t.Run("WatchCompacted", func(t *testing.T) { t.Parallel(); testWatchCompacted(t, c) })
	t.Run("String", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, &Config{Endpoints: c.Endpoints()})
		if got, want := s.String(), "etcd: "+c.Endpoints()[0]; got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: uniquePrefix()})
		mustCreate(t, s, "k", "v")
		if err := s.Close(); err != nil {
			t.Fatalf("Close() = %v, want nil", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close() = %v, want nil", err)
		}
		_, err := s.Get(t.Context(), "k")
		if !errors.Is(err, errClosed) {
			t.Fatalf("Get() after Close = %v, want %v", err, errClosed)
		}
		if err := s.Watch(t.Context(), func(string) {}); err != nil {
			t.Fatalf("Watch() after Close = %v, want nil", err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: uniquePrefix()})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.Get(ctx, "k")
		if !errors.Is(err, context.Canceled) || keystore.IsUnreachable(err) {
			t.Fatalf("Get() with a canceled context = %v, want a plain error wrapping %v", err, context.Canceled)
		}
	})
}

// testLayout checks the etcd keys a store writes, and that stores whose
// prefixes share a beginning see only their own keys.
func testLayout(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	s2 := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p + "2/"})
	mustCreate(t, s, "my-key", "v1")
	mustCreate(t, s2, "my-key", "v2")

	cli := c.Client(t)
	resp, err := cli.Get(t.Context(), p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key)+"="+string(kv.Value))
	}
	want := []string{p + "/my-key=v1", p + "2/my-key=v2"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("etcd keys = %q, want %q", keys, want)
	}

	names, next, err := s.List(t.Context(), "", 0)
	if err != nil || len(names) != 1 || names[0] != "my-key" || next != "" {
		t.Fatalf("List() = %q, %q, %v; want [my-key]", names, next, err)
	}
	mustDelete(t, s, "my-key")
	mustGet(t, s2, "my-key", "v2")
}

// testEmptyPrefix uses the root of the key space.
func testEmptyPrefix(t *testing.T, c *etcdtest.Cluster) {
	s := newStore(t, &Config{Endpoints: c.Endpoints()})
	name := uniquePrefix() + "-root-key"
	mustCreate(t, s, name, "v")
	mustGet(t, s, name, "v")
	names, _, err := s.List(t.Context(), name, 0)
	if err != nil || len(names) != 1 || names[0] != name {
		t.Fatalf("List(%q) = %q, %v; want [%s]", name, names, err, name)
	}
	all, _, err := s.List(t.Context(), "", 0)
	if err != nil || len(all) == 0 {
		t.Fatalf("List(\"\") = %q, %v; want every key of the cluster", all, err)
	}
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status() = %v, want nil", err)
	}
	mustDelete(t, s, name)
}

// testListBatches lists more names than one etcd request returns.
func testListBatches(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	cli := c.Client(t)
	const n = 2*listBatch + 17
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("key-%05d", i)
	}
	// Write them in few transactions; the store's Create would take long.
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for _, name := range want[i:min(i+100, n)] {
			ops = append(ops, clientv3.OpPut(p+"/"+name, "v"))
		}
		if _, err := cli.Txn(t.Context()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	names, next, err := s.List(t.Context(), "", -1)
	if err != nil {
		t.Fatalf("List() = %v, want nil", err)
	}
	if fmt.Sprint(names) != fmt.Sprint(want) || next != "" {
		t.Fatalf("List() returned %d names (%q ... ), next %q; want %d names", len(names), names[:min(3, len(names))], next, n)
	}
	names, next, err = s.List(t.Context(), "key-01", 0)
	if err != nil || len(names) != 1000 || names[0] != "key-01000" || next != "" {
		t.Fatalf("List(key-01) = %d names, %q, %v; want 1000 names", len(names), next, err)
	}
	names, next, err = s.List(t.Context(), "key-", 1500)
	if err != nil || len(names) != 1500 || next != "key-01500" {
		t.Fatalf("List(key-, 1500) = %d names, %q, %v; want 1500 names and next key-01500", len(names), next, err)
	}
}

// testCreateRetry checks how an attempt of Create that follows a failed
// one, which etcd may have applied, reads an existing key.
func testCreateRetry(t *testing.T, c *etcdtest.Cluster) {
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: uniquePrefix()})
	cli := c.Client(t)
	tests := []struct {
		name       string
		retry      bool
		value      string
		wantExists bool
	}{
		{name: "first-attempt", value: "v1", wantExists: true},
		{name: "retry-same-value", retry: true, value: "v1", wantExists: false},
		{name: "retry-other-value", retry: true, value: "v2", wantExists: true},
	}
	mustCreate(t, s, "k", "v1")
	for _, tt := range tests {
		exists, err := s.tryCreate(t.Context(), cli, "k", []byte(tt.value), tt.retry)
		if err != nil || exists != tt.wantExists {
			t.Errorf("%s: tryCreate() = %v, %v; want %v, nil", tt.name, exists, err, tt.wantExists)
		}
	}
	mustGet(t, s, "k", "v1")
	exists, err := s.tryCreate(t.Context(), cli, "new", []byte("v"), true)
	if err != nil || exists {
		t.Errorf("tryCreate() of a new key on a retry = %v, %v; want false, nil", exists, err)
	}
	mustGet(t, s, "new", "v")
}

func testReplace(t *testing.T, c *etcdtest.Cluster) {
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: uniquePrefix()})
	if err := s.Replace(t.Context(), "missing", []byte("v")); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Replace() of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Replace() of a missing key created it: Get = %v", err)
	}
	mustCreate(t, s, "k", "old")
	if err := s.Replace(t.Context(), "k", []byte("new")); err != nil {
		t.Fatalf("Replace() = %v", err)
	}
	mustGet(t, s, "k", "new")
}

// testSealed stores real serialised keys through a sealed store and
// checks that etcd holds no key material in the clear, and that the
// values read back are the ones written.
func testSealed(t *testing.T, c *etcdtest.Cluster) {
	dir := t.TempDir()
	kekFile := filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, bytes.Repeat([]byte{0x17}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	p := uniquePrefix()
	conf := &Config{Endpoints: c.Endpoints(), Prefix: p, Seal: &seal.Config{KEKFile: kekFile}}
	if err := conf.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := conf.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, ok := st.(keystore.Watcher); !ok {
		t.Fatal("the sealed etcd store does not implement keystore.Watcher")
	}
	var secrets [][]byte
	for i := range 10 {
		stream := bytes.Repeat([]byte{byte(i + 1), 0xC3, byte(7 * i), 0x3C}, 16)
		v, err := crypto.GenerateKeyVersion(crypto.AES256, time.Now().UTC(), "creator", bytes.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		text, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("key-%d", i)
		if err := st.Create(t.Context(), name, text); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Get(t.Context(), name); err != nil || !bytes.Equal(got, text) {
			t.Fatalf("Get(%s) through the seal: %v (equal: %t)", name, err, bytes.Equal(got, text))
		}
		secrets = append(secrets, stream[:32], stream[32:], text)
	}
	resp, err := c.Client(t).Get(t.Context(), p, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 10 {
		t.Fatalf("%d values under the prefix, want 10", len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if !seal.IsSealed(kv.Value) {
			t.Fatalf("%s is not sealed", kv.Key)
		}
		for _, sec := range secrets {
			for _, form := range [][]byte{sec, []byte(hex.EncodeToString(sec)), []byte(base64.StdEncoding.EncodeToString(sec))} {
				if bytes.Contains(kv.Value, form[:24]) {
					t.Fatalf("%s holds key material in the clear", kv.Key)
				}
			}
		}
	}

	// A plain value planted in etcd next to the sealed ones is refused,
	// naming the key; the migration context reads it.
	const name = "planted"
	planted := string(bytes.TrimSuffix(resp.Kvs[0].Key, []byte("key-0"))) + name
	if _, err := c.Client(t).Put(t.Context(), string(planted), `{"bytes":"cGxhbnRlZA=="}`); err != nil {
		t.Fatal(err)
	}
	var u *seal.UnsealedError
	if got, err := st.Get(t.Context(), name); !errors.As(err, &u) || u.Name != name {
		t.Fatalf("Get(%s) of a planted plain value = %q, %v; want an *seal.UnsealedError", name, got, err)
	}
	if got, err := st.Get(seal.AllowUnsealed(t.Context()), name); err != nil || string(got) != `{"bytes":"cGxhbnRlZA=="}` {
		t.Fatalf("Get(%s) with AllowUnsealed = %q, %v; want the planted value", name, got, err)
	}
}

func testLimits(t *testing.T, c *etcdtest.Cluster) {
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: uniquePrefix()})
	big := bytes.Repeat([]byte("A"), MaxValueSize)
	if err := s.Create(t.Context(), "max", big); err != nil {
		t.Fatalf("Create() of %d bytes = %v, want nil", len(big), err)
	}
	if got, err := s.Get(t.Context(), "max"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Get() of %d bytes = %d bytes, %v", len(big), len(got), err)
	}
	err := s.Create(t.Context(), "too-big", append(big, 'A'))
	if err == nil || !strings.Contains(err.Error(), "value exceeds") {
		t.Fatalf("Create() of %d bytes = %v, want an error", len(big)+1, err)
	}
	for _, op := range []func() error{
		func() error { return s.Create(t.Context(), "", []byte("v")) },
		func() error { _, err := s.Get(t.Context(), ""); return err },
		func() error { return s.Delete(t.Context(), "") },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "invalid key name") {
			t.Fatalf("operation on the empty name = %v, want an invalid key name error", err)
		}
	}
}

// TestThreeMembers runs the conformance suite and the tests of member
// failures on one cluster of three members.
func TestThreeMembers(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	t.Run("Conformance", func(t *testing.T) {
		conformance(t, Config{Endpoints: c.Endpoints()})
	})
	t.Run("RacingServers", func(t *testing.T) { testRacingServers(t, c) })
	// The following take members down, one test at a time.
	t.Run("WatchCompactedAfterOutage", func(t *testing.T) { testWatchCompactedAfterOutage(t, c) })
	if err := c.WaitHealthy(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Run("MemberFailures", func(t *testing.T) { testMemberFailures(t, c) })
}

// testRacingServers lets stores reaching the cluster through different
// members, like several KES servers, create the same keys at once.
func testRacingServers(t *testing.T, c *etcdtest.Cluster) {
	const perMember = 3
	p := uniquePrefix()
	var stores []*Store
	for i := range c.Len() {
		for range perMember {
			stores = append(stores, newStore(t, &Config{Endpoints: []string{c.Member(i).Endpoint()}, Prefix: p}))
		}
	}
	for round := range 10 {
		name := fmt.Sprintf("key-%d", round)
		winner := keystoretest.RaceCreate(t, fmt.Sprintf("Create(%q) through several stores", name), len(stores), func(i int) error {
			return stores[i].Create(t.Context(), name, []byte(fmt.Sprintf("value-%d", i)))
		})
		if winner < 0 {
			t.Fatalf("no Create(%q) succeeded", name)
		}
		for _, s := range stores {
			mustGet(t, s, name, fmt.Sprintf("value-%d", winner))
		}
	}
}

// leader returns the index of the member that leads the cluster.
func leader(t *testing.T, c *etcdtest.Cluster, cli *clientv3.Client) int {
	t.Helper()
	for i := range c.Len() {
		if !c.Member(i).Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		resp, err := cli.Status(ctx, c.Member(i).Endpoint())
		cancel()
		if err == nil && resp.Leader == resp.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member is the leader")
	return -1
}

// testMemberFailures takes one member down (the leader), then a second,
// and brings both back, checking what stores see meanwhile.
func testMemberFailures(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	all := Config{Endpoints: c.Endpoints(), Prefix: p}
	s := newStore(t, &all)
	quick := all
	quick.Timeout = time.Second
	sq := newStore(t, &quick) // the same keys, failing quickly

	watcher := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	w := startWatch(t, watcher)
	w.sync(t, s)
	mustCreate(t, s, "before", "v")
	w.expect(t, time.Second, "before")

	// One member down: nothing fails. Requests in flight to the dead
	// leader are retried by the store.
	first := leader(t, c, c.Client(t))
	c.Member(first).Kill()
	t.Logf("killed member %d, the leader", first)
	start := time.Now()
	mustCreate(t, s, "one-down", "v")
	t.Logf("the first Create after the kill took %v", time.Since(start))
	mustGet(t, s, "before", "v")
	mustGet(t, sq, "one-down", "v")
	mustDelete(t, s, "before")
	if names, _, err := s.List(t.Context(), "", 0); err != nil || !slices.Contains(names, "one-down") || slices.Contains(names, "before") {
		t.Fatalf("List() with one member down = %q, %v; want one-down and no before", names, err)
	}
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status() with one member down = %v, want nil", err)
	}
	w.expect(t, 10*time.Second, "one-down", "before")

	// Two members down: no quorum. (The Create below may still be
	// applied once the members are back, so the watch may report it.)
	w.ignore("no-quorum")
	second := (first + 1) % c.Len()
	c.Member(second).Kill()
	t.Logf("killed member %d", second)
	ops := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"Create", func(ctx context.Context) error { return sq.Create(ctx, "no-quorum", []byte("v")) }},
		{"Get", func(ctx context.Context) error { _, err := sq.Get(ctx, "one-down"); return err }},
		{"Delete", func(ctx context.Context) error { return sq.Delete(ctx, "one-down") }},
		{"List", func(ctx context.Context) error { _, _, err := sq.List(ctx, "", 0); return err }},
		{"Status", func(ctx context.Context) error { _, err := sq.Status(ctx); return err }},
	}
	for _, op := range ops {
		start = time.Now()
		err := op.fn(t.Context())
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s without quorum took %v, want about the timeout of 1s", op.name, d)
		}
		wantUnreachable(t, op.name+" without quorum", err, "quorum")
	}

	// Both back: the same stores work again.
	c.Member(first).Restart()
	c.Member(second).Restart()
	t.Log("restarted both members")
	start = time.Now()
	mustCreate(t, s, "recovered", "v")
	t.Logf("the first Create after the restart took %v", time.Since(start))
	start = time.Now()
	mustDelete(t, s, "one-down")
	w.expect(t, time.Second-time.Since(start), "recovered", "one-down")
	t.Logf("a delete after the recovery was reported after %v", time.Since(start))
	// The quick store is back too (after at most a few tries: its
	// timeout is short compared with a leader election).
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err = sq.Status(t.Context()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("Status() after recovery = %v, want nil", err)
	}
	mustGet(t, sq, "recovered", "v")
}

// TestStartDown connects to clusters that are down and checks that the
// stores start working when the clusters come up.
func TestStartDown(t *testing.T) {
	t.Parallel()
	t.Run("NothingListens", func(t *testing.T) {
		t.Parallel()
		l := testlisten.New(t)
		ep := "http://" + l.Addr().String()
		l.Close()
		start := time.Now()
		s := newStore(t, &Config{Endpoints: []string{ep}, Timeout: 500 * time.Millisecond})
		if d := time.Since(start); d > time.Second {
			t.Errorf("New() took %v, want no waiting", d)
		}
		_, err := s.Get(t.Context(), "k")
		wantUnreachable(t, "Get()", err, "cannot connect", ep)
		err = s.Create(t.Context(), "k", []byte("v"))
		wantUnreachable(t, "Create()", err, "cannot connect")
		_, err = s.Status(t.Context())
		wantUnreachable(t, "Status()", err, "cannot connect")

		// Once gRPC has failed to connect, requests fail at once
		// instead of waiting for the timeout (or a caller's deadline).
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err = s.Get(ctx, "k")
		wantUnreachable(t, "Get() with a short deadline", err, "cannot connect")
		for range 5 {
			start := time.Now()
			err := s.Create(t.Context(), "k", []byte("v"))
			wantUnreachable(t, "Create()", err, "cannot connect")
			if d := time.Since(start); d >= 500*time.Millisecond {
				t.Errorf("Create() with no member up took %v, the whole timeout; want it to fail fast", d)
			}
		}
	})
	t.Run("ClusterComesUp", func(t *testing.T) {
		t.Parallel()
		c := etcdtest.Start(t, 3)
		c.Stop()
		p := uniquePrefix()
		start := time.Now()
		s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p, Timeout: 500 * time.Millisecond})
		if d := time.Since(start); d > time.Second {
			t.Errorf("New() took %v, want no waiting", d)
		}
		_, err := s.Get(t.Context(), "k")
		wantUnreachable(t, "Get()", err, "cannot connect")
		if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
			t.Fatalf("Status() = %v, want an unreachable error", err)
		}
		w := startWatch(t, newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p}))

		for i := range c.Len() {
			c.Member(i).Restart()
		}
		if err := c.WaitHealthy(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The store reconnects by itself (gRPC retries at least every
		// second); requests fail at once until it has.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err = s.Status(t.Context()); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("Status() after the cluster came up = %v, want nil", err)
		}
		// The watch starts (it reports that anything may have changed)
		// and follows the changes.
		w.expect(t, 10*time.Second, "")
		mustCreate(t, s, "k", "v")
		mustGet(t, s, "k", "v")
		w.expect(t, time.Second, "k")
		start = time.Now()
		mustDelete(t, s, "k")
		w.expect(t, time.Second-time.Since(start), "k")
		t.Logf("a delete after the start was reported after %v", time.Since(start))
	})
}
