package testlisten

import (
	"net"
	"strings"
	"testing"
)

func TestNewAgain(t *testing.T) {
	ln := New(t)
	addr := ln.Addr().String()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("New listens on %s, want a port of 127.0.0.1", addr)
	}
	ln.Close()
	ln = Again(t, "test", addr)
	defer ln.Close()
	if got := ln.Addr().String(); got != addr {
		t.Errorf("Again listens on %s, want %s", got, addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing the listener of Again: %v", err)
	}
	c.Close()
}

// fatal records Fatalf instead of ending the test.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}

func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = format
}

func TestAgainTaken(t *testing.T) {
	ln := New(t)
	defer ln.Close()
	f := &fatal{TB: t}
	if got := Again(f, "test", ln.Addr().String()); got != nil {
		got.Close()
		t.Fatal("Again took an address that is in use")
	}
	if !strings.HasPrefix(f.msg, "%s: listening on %s again") {
		t.Errorf("Again failed with %q", f.msg)
	}
}
