package keycache

import (
	"context"
	"sync"
	"testing"
)

// chanWatcher is a keystore.Watcher fed by a test.
type chanWatcher struct {
	events  chan string
	stopped chan struct{}
	once    sync.Once
}

func newChanWatcher() *chanWatcher {
	return &chanWatcher{events: make(chan string), stopped: make(chan struct{})}
}

func (w *chanWatcher) Watch(ctx context.Context, changed func(string)) error {
	defer w.once.Do(func() { close(w.stopped) })
	for {
		select {
		case <-ctx.Done():
			return nil
		case name := <-w.events:
			changed(name)
		}
	}
}

// send delivers name and waits until changed has returned for it (the
// next send or the close of events can only be received after that).
func (w *chanWatcher) send(name string) {
	w.events <- name
	w.events <- "\x00sync" // a name no key can have: acts as a barrier
}

func TestWatcherInvalidates(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	for _, name := range []string{"a", "b", "c"} {
		_, v := newKey(t)
		store.put(name, v)
	}
	w := newChanWatcher()
	conf := quiet
	conf.Watcher = w
	c := newCache(t, store, conf)
	for _, name := range []string{"a", "b", "c"} {
		mustGet(t, c, name)
	}

	w.send("b")
	if c.cached("b") {
		t.Error("b still cached after the watcher reported it changed")
	}
	if !c.cached("a") || !c.cached("c") {
		t.Error("a change of b dropped other keys")
	}
	w.send("")
	if c.cached("a") || c.cached("c") {
		t.Error("keys still cached after the watcher reported that anything may have changed")
	}
	// The store is asked again, once per key.
	before := store.gets.Load()
	mustGet(t, c, "a")
	mustGet(t, c, "a")
	if got := store.gets.Load() - before; got != 1 {
		t.Errorf("store reads after invalidation = %d, want 1", got)
	}

	c.Close()
	select {
	case <-w.stopped:
	default:
		t.Error("Close returned before Watch did")
	}
}
