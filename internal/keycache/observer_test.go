package keycache

import (
	"errors"
	"sync/atomic"
	"testing"
)

// countingObserver counts the events of an Observer.
type countingObserver struct {
	hits, offlineHits, misses, evicted atomic.Int64
}

func (o *countingObserver) CacheHit(offline bool) {
	o.hits.Add(1)
	if offline {
		o.offlineHits.Add(1)
	}
}
func (o *countingObserver) CacheMiss()         { o.misses.Add(1) }
func (o *countingObserver) CacheEvicted(n int) { o.evicted.Add(int64(n)) }

func TestObserver(t *testing.T) {
	t.Parallel()
	store, _ := storeWith(t, "a", "b")
	o := new(countingObserver)
	conf := quiet
	conf.Observer = o
	c := newCache(t, store, conf)

	mustGet(t, c, "a") // miss
	mustGet(t, c, "a") // hit
	mustGet(t, c, "b") // miss
	if _, err := c.Get(t.Context(), "nope"); err == nil {
		t.Fatal("Get(nope) succeeded")
	}
	if h, m := o.hits.Load(), o.misses.Load(); h != 1 || m != 3 {
		t.Errorf("hits, misses = %d, %d, want 1, 3", h, m)
	}

	// Served while the store is offline.
	c.setOffline(errors.New("test: offline"))
	mustGet(t, c, "a")
	if h, oh := o.hits.Load(), o.offlineHits.Load(); h != 2 || oh != 1 {
		t.Errorf("hits, offline hits = %d, %d, want 2, 1", h, oh)
	}
	c.setOnline()

	// Unused expiry: "b" was read in this round, "a" too; the first
	// round clears the marks, the second evicts both.
	c.expireUnused()
	if n := o.evicted.Load(); n != 0 {
		t.Errorf("evicted after one round = %d, want 0", n)
	}
	c.expireUnused()
	if n := o.evicted.Load(); n != 2 {
		t.Errorf("evicted after two rounds = %d, want 2", n)
	}
	mustGet(t, c, "a")
	c.expireAll()
	if n := o.evicted.Load(); n != 3 {
		t.Errorf("evicted after expireAll = %d, want 3", n)
	}
}

// BenchmarkGetHitObserved is BenchmarkGetHit with an Observer that
// counts with atomics, as the server's Prometheus counters do.
func BenchmarkGetHitObserved(b *testing.B) {
	conf := quiet
	conf.Observer = new(countingObserver)
	benchmarkGetHit(b, conf, "k")
}
