package server

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is a context with a deadline whose timer is only started
// when somebody waits for it (Done) or asks whether it expired (Err).
//
// Most requests are served from the key cache and never look at their
// context; for them a context.WithTimeout would start and stop a runtime
// timer and allocate three objects for nothing. Requests that reach the
// key store get exactly the semantics of context.WithDeadline.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

// withLazyDeadline returns a context that is done at deadline, when parent
// is done, or when the returned cancel function is called.
func withLazyDeadline(parent context.Context, deadline time.Time) (*lazyDeadline, func()) {
	c := &lazyDeadline{parent: parent, deadline: deadline}
	return c, c.stop
}

func (c *lazyDeadline) init() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline) })
}

// canceled is the state of a lazyDeadline stopped before it was started.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// stop releases the timer, if one was started, and cancels the context.
func (c *lazyDeadline) stop() {
	c.once.Do(func() { c.ctx, c.cancel = canceled, func() {} })
	c.cancel()
}

func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *lazyDeadline) Done() <-chan struct{} {
	c.init()
	return c.ctx.Done()
}

func (c *lazyDeadline) Err() error {
	c.init()
	return c.ctx.Err()
}

func (c *lazyDeadline) Value(key any) any { return c.parent.Value(key) }

func (c *lazyDeadline) String() string { return "server.lazyDeadline" }
