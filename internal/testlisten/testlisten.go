// Package testlisten opens the loopback listeners of the fake services
// that tests run, and opens them again on the same address to bring a
// stopped fake back, as after an outage.
package testlisten

import (
	"net"
	"testing"
	"time"
)

// New returns a listener on a free port of 127.0.0.1. It fails t if
// there is none.
func New(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Again listens on addr, the address of a listener that was closed.
// The port may linger for a moment after Close, so it tries for about a
// second. It fails t, with a message starting with name, if addr cannot
// be taken.
func Again(t testing.TB, name, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: listening on %s again: %v", name, addr, err)
	return nil
}
