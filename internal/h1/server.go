package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts are the time limits of the request loop. A zero field takes
// the default named in its comment.
type Timeouts struct {
	// ReadHeader bounds reading a request header that does not arrive
	// with its first bytes, and the first request of a connection
	// (default 5 s).
	ReadHeader time.Duration
	// Idle bounds the wait for the next request (default 90 s).
	Idle time.Duration
	// Body bounds reading a request body from the end of its header
	// (default 15 s, the longest route timeout of the API).
	// [ResponseWriter.SetWriteTimeout] shortens it to the route's
	// deadline.
	Body time.Duration
	// Drain bounds reading the rest of a body the handler left unread,
	// to keep the connection (default 1 s). When it expires, the answer
	// is sent with "Connection: close".
	Drain time.Duration
}

// Default timeouts.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultBodyTimeout       = 15 * time.Second
	DefaultDrainTimeout      = time.Second
)

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, DefaultReadHeaderTimeout)
	def(&t.Idle, DefaultIdleTimeout)
	def(&t.Body, DefaultBodyTimeout)
	def(&t.Drain, DefaultDrainTimeout)
	return t
}

// Connection states, for graceful shutdown.
const (
	stateActive int32 = iota // reading a request, running a handler or writing
	stateIdle                // waiting for the next request
	stateClosed              // closed by shutdown
)

// Server serves HTTP/1.1 on connections handed to [Server.ServeConn].
// Set the fields before the first ServeConn; a Server must not be copied
// after first use.
type Server struct {
	// Handler answers the requests.
	Handler http.Handler
	// Timeouts are the time limits; zero fields take their defaults.
	Timeouts Timeouts
	// ErrorLog receives what net/http's server would log; nil discards.
	ErrorLog *log.Logger
	// BaseContext, if not nil, is the parent of every connection's
	// context (net/http's BaseContext).
	BaseContext context.Context
	// ConnContext, if not nil, derives the context of a connection's
	// requests from ctx (net/http's ConnContext).
	ConnContext func(ctx context.Context, c net.Conn) context.Context

	initOnce sync.Once
	t        Timeouts
	base     context.Context
	cancel   context.CancelFunc
	shutting atomic.Bool   // no new requests; idle connections are closed
	forced   chan struct{} // closed by Close
	force    sync.Once

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.t = s.Timeouts.withDefaults()
		base := s.BaseContext
		if base == nil {
			base = context.Background()
		}
		s.base, s.cancel = context.WithCancel(base)
		s.forced = make(chan struct{})
		s.conns = map[*conn]struct{}{}
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	}
}

// ServeConn runs the request loop on nc until the connection ends, and
// closes nc. A *tls.Conn must have completed its handshake; its state is
// the requests' TLS field. The first request must start within
// Timeouts.ReadHeader. After Shutdown or Close, ServeConn closes nc at
// once.
func (s *Server) ServeConn(nc net.Conn) {
	s.init()
	c := &conn{srv: s, nc: nc}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	// The connection may still have the deadlines of a handshake.
	nc.SetWriteDeadline(time.Time{})
	c.state.Store(stateActive)
	c.serve()
}

// Shutdown stops new requests, closes idle connections and waits until
// the active ones are done (nil) or ctx ends (ctx.Err()). It does not
// stop handlers; see Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.shutting.Store(true)
	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			poll = min(2*poll, 500*time.Millisecond)
			timer.Reset(poll)
		}
	}
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	var idle []*conn
	s.mu.Lock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			idle = append(idle, c)
		}
	}
	n := len(s.conns)
	s.mu.Unlock()
	for _, c := range idle {
		c.nc.Close() // a *tls.Conn sends close_notify, as net/http does
	}
	return n == 0
}

// Close closes every connection at once and cancels the contexts of
// their requests. It does not wait; see Wait.
func (s *Server) Close() {
	s.init()
	s.shutting.Store(true)
	s.force.Do(func() { close(s.forced) })
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
}

// Wait waits at most d for the ServeConn calls to return: a handler that
// ignores its context must not block a caller forever.
func (s *Server) Wait(d time.Duration) {
	s.init()
	WaitAtMost(&s.wg, d)
}

// WaitAtMost waits until the counter of wg is zero, or d has passed.
func WaitAtMost(wg *sync.WaitGroup, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = WaitContext(ctx, wg)
}

// WaitContext waits until the counter of wg is zero (nil) or ctx ends
// (ctx.Err()).
func WaitContext(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AcceptLoop accepts connections on ln and passes each to handle, which
// must not block, until Accept fails; then it returns the error.
// Temporary errors (e.g. too many open files) are retried with a growing
// delay, as net/http does, while stop (if not nil) reports false; logf,
// if not nil, is told of each retry.
func AcceptLoop(ln net.Listener, stop func() bool, logf func(format string, args ...any), handle func(net.Conn)) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && (stop == nil || !stop()) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if logf != nil {
					logf("http: Accept error: %v; retrying in %v", err, delay)
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		handle(nc)
	}
}

// Serve accepts connections on ln and serves each with the request loop
// of a Server with handler h and timeouts t, until accepting fails; then
// it closes the connections and returns the error. A listener of
// *tls.Conn (tls.NewListener) gets its handshakes done within
// t.ReadHeader first. Temporary accept errors are retried, as net/http
// does. Serve is the small entry point for tests and tools; the KES
// server accepts and handshakes itself and calls [Server.ServeConn].
func Serve(ln net.Listener, h http.Handler, t Timeouts) error {
	s := &Server{Handler: h, Timeouts: t}
	s.init()
	defer func() {
		s.Close()
		s.Wait(time.Second)
	}()
	return AcceptLoop(ln, nil, nil, func(nc net.Conn) {
		go func() {
			if tc, ok := nc.(*tls.Conn); ok {
				tc.SetDeadline(time.Now().Add(s.t.ReadHeader))
				if err := tc.Handshake(); err != nil {
					tc.Close()
					return
				}
			}
			s.ServeConn(nc)
		}()
	})
}
