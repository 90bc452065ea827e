package etcd

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openkes/openkes/keystore/etcd/etcdtest"
)

// recorder collects the names a Watch reports.
type recorder struct {
	mu      sync.Mutex
	names   []string
	ignored []string      // not recorded
	notify  chan struct{} // receives after every append
}

// ignore makes the recorder drop reports of name.
func (r *recorder) ignore(name string) {
	r.mu.Lock()
	r.ignored = append(r.ignored, name)
	r.mu.Unlock()
}

func (r *recorder) changed(name string) {
	r.mu.Lock()
	if !slices.Contains(r.ignored, name) {
		r.names = append(r.names, name)
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// startWatch runs s.Watch until t ends and checks that it returns nil
// then.
func startWatch(t testing.TB, s *Store) *recorder {
	t.Helper()
	r := &recorder{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, r.changed) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch() did not return 10s after its context was canceled")
		}
	})
	return r
}

// expect waits up to d for the next names reported to be want, exactly.
func (r *recorder) expect(t testing.TB, d time.Duration, want ...string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		r.mu.Lock()
		n := len(r.names)
		got := slices.Clone(r.names[:min(n, len(want))])
		r.mu.Unlock()
		if !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("Watch reported %q, want %q", got, want)
		}
		if n >= len(want) {
			r.mu.Lock()
			r.names = r.names[len(want):]
			r.mu.Unlock()
			return
		}
		select {
		case <-r.notify:
		case <-timer.C:
			t.Fatalf("Watch reported %q within %v, want %q", got, d, want)
		}
	}
}

// sync waits until the watch runs: it creates keys through s until the
// watch reports one, and forgets what was reported until then.
func (r *recorder) sync(t testing.TB, s *Store) {
	t.Helper()
	for i := range 100 {
		name := fmt.Sprintf("sync-%d", i)
		mustCreate(t, s, name, "v")
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			r.mu.Lock()
			seen := slices.Contains(r.names, name)
			r.mu.Unlock()
			if seen {
				r.drain()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Fatal("the watch reported none of the changes made in 20s")
}

// drain forgets the names reported so far.
func (r *recorder) drain() {
	r.mu.Lock()
	r.names = nil
	r.mu.Unlock()
}

// testWatch checks that changes made through one store are reported to
// another store's Watch within a second, and only those below its prefix.
func testWatch(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	a := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	b := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	w := startWatch(t, b)
	w.sync(t, a)

	steps := []struct {
		name string
		op   func()
	}{
		{"create", func() { mustCreate(t, a, "k", "v1") }},
		{"delete", func() { mustDelete(t, a, "k") }},
		{"re-create", func() { mustCreate(t, a, "k", "v2") }},
	}
	for _, step := range steps {
		start := time.Now()
		step.op()
		w.expect(t, time.Second-time.Since(start), "k")
		t.Logf("%s reported after %v", step.name, time.Since(start))
	}

	// Keys outside the prefix are not reported; keys below it are, by
	// whomever they are written.
	cli := c.Client(t)
	for _, key := range []string{p, p + "2/k", p + "x", "other/" + p + "/k"} {
		if _, err := cli.Put(t.Context(), key, "v"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(t.Context(), p+"/direct", "v"); err != nil {
		t.Fatal(err)
	}
	w.expect(t, time.Second, "direct")

	// Several changes in one transaction are all reported.
	if _, err := cli.Txn(t.Context()).Then(clientv3.OpDelete(p+"/k"), clientv3.OpDelete(p+"/direct")).Commit(); err != nil {
		t.Fatal(err)
	}
	w.expect(t, time.Second, "k", "direct")
}

// testWatchCompacted lets a watch resume at a revision that was
// compacted meanwhile.
func testWatchCompacted(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	cli := c.Client(t)

	rev, err := s.revision(t.Context())
	if err != nil {
		t.Fatalf("revision() = %v, want nil", err)
	}
	mustCreate(t, s, "a", "v")
	mustCreate(t, s, "b", "v")
	mustDelete(t, s, "a")
	now, err := s.revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), now); err != nil {
		t.Fatalf("Compact(%d) = %v, want nil", now, err)
	}

	// A watch that reported everything up to rev, as one that lost its
	// connection just before the changes above would have.
	r := &recorder{notify: make(chan struct{}, 1)}
	w := &watch{s: s, changed: r.changed, wait: minWatchWait, rev: rev}
	if err := w.run(t.Context()); err != nil {
		t.Fatalf("watch.run() from compacted revision %d = %v, want nil", rev+1, err)
	}
	r.expect(t, 0, "")
	if w.rev != now {
		t.Fatalf("after a compaction at %d the watch goes on from %d, want %d", now, w.rev+1, now+1)
	}

	// Watch goes on after the compaction.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	mustCreate(t, s, "c", "v")
	r.expect(t, 10*time.Second, "c")
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("watch.run() after cancel = %v, want %v", err, context.Canceled)
	}
}

// testWatchCompactedAfterOutage lets the only member a watch can reach
// fail while the others change keys and compact the history, as happens
// with etcd's automatic compaction during a long outage.
func testWatchCompactedAfterOutage(t *testing.T, c *etcdtest.Cluster) {
	p := uniquePrefix()
	s := newStore(t, &Config{Endpoints: c.Endpoints(), Prefix: p})
	// Not the leader: the Creates below would wait for a new one.
	m := c.Member((leader(t, c, c.Client(t)) + 1) % c.Len())
	pinned := newStore(t, &Config{Endpoints: []string{m.Endpoint()}, Prefix: p})
	w := startWatch(t, pinned)
	w.sync(t, s)

	m.Kill()
	for i := range 3 {
		mustCreate(t, s, fmt.Sprint("k", i), "v")
	}
	rev, err := s.revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(t).Compact(t.Context(), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("Compact(%d) = %v, want nil", rev, err)
	}
	m.Restart()
	// The watch cannot know which keys changed: it reports "".
	w.expect(t, 15*time.Second, "")
	start := time.Now()
	mustDelete(t, s, "k0")
	w.expect(t, time.Second-time.Since(start), "k0")
}

func TestSleep(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan struct{})
	close(closed)
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		stop chan struct{}
		want bool
	}{
		{"elapsed", context.Background(), time.Nanosecond, nil, true},
		{"canceled", canceled, time.Hour, nil, false},
		{"stopped", context.Background(), time.Hour, closed, false},
	}
	for _, tt := range tests {
		if got := sleep(tt.ctx, tt.d, tt.stop); got != tt.want {
			t.Errorf("%s: sleep = %v, want %v", tt.name, got, tt.want)
		}
	}
}
