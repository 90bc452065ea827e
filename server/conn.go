package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Connection handling of Serve (spec 1.1).
//
// Serve accepts TCP connections itself and completes the TLS handshake in
// a goroutine per connection. Then:
//
//   - connections that negotiated "h2" go to a net/http Server, through a
//     listener that hands over the finished *tls.Conn, so that net/http
//     speaks HTTP/2 on them exactly as with http.Server.ServeTLS;
//   - HTTP/1.1 connections (ALPN "http/1.1" or none) are served by the
//     loop of http1.go, or by the same net/http Server when the current
//     configuration sets Config.HTTP1Stdlib.
//
// The timeouts are those of spec 1.1: 5 s for the handshake and for a
// request header, 90 s idle between requests, and the per-route write
// deadlines of the router.

const (
	handshakeTimeout  = 5 * time.Second
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 90 * time.Second
)

// Connection states, for graceful shutdown.
const (
	stateNew    int32 = iota // TLS handshake
	stateActive              // reading a request, running a handler or writing
	stateIdle                // waiting for the next request
	stateClosed              // closed by shutdown
)

// connServer accepts and dispatches the connections of one Serve call.
type connServer struct {
	s       *Server
	hs      *http.Server  // HTTP/2, and HTTP/1.1 with Config.HTTP1Stdlib
	hl      *connListener // feeds hs
	tlsConf *tls.Config
	errLog  *log.Logger

	// base is the parent of every connection context. It carries the
	// stop channel of the log streams and is cancelled by a forced
	// shutdown.
	base   context.Context
	cancel context.CancelFunc

	idleTimeout       time.Duration
	readHeaderTimeout time.Duration

	shutting atomic.Bool   // no new requests; idle connections are closed
	forced   chan struct{} // closed by closeAll

	mu    sync.Mutex
	conns map[*h1Conn]struct{} // connections in the handshake or on the HTTP/1.1 loop
	wg    sync.WaitGroup       // their goroutines
	force sync.Once
}

func newConnServer(s *Server, hs *http.Server, addr net.Addr, stop chan struct{}) *connServer {
	cs := &connServer{
		s:                 s,
		hs:                hs,
		hl:                newConnListener(addr),
		tlsConf:           hs.TLSConfig,
		errLog:            hs.ErrorLog,
		idleTimeout:       idleTimeout,
		readHeaderTimeout: readHeaderTimeout,
		forced:            make(chan struct{}),
		conns:             map[*h1Conn]struct{}{},
	}
	if s.idleTimeout > 0 {
		cs.idleTimeout = s.idleTimeout
	}
	if s.readHeaderTimeout > 0 {
		cs.readHeaderTimeout = s.readHeaderTimeout
	}
	base := context.WithValue(context.Background(), stopKey{}, stop)
	base = context.WithValue(base, http.ServerContextKey, hs)
	cs.base, cs.cancel = context.WithCancel(base)
	return cs
}

func (cs *connServer) logf(format string, args ...any) {
	if cs.errLog != nil {
		cs.errLog.Printf(format, args...)
	}
}

// accept accepts connections on ln until it fails. Temporary errors
// (e.g. too many open files) are retried with a growing delay, as
// net/http does.
func (cs *connServer) accept(ln net.Listener) error {
	var delay time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !cs.shutting.Load() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				cs.logf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &h1Conn{cs: cs, raw: raw}
		if !cs.track(c) {
			raw.Close()
			continue
		}
		go c.serve()
	}
}

// track registers a new connection; it fails once shutdown started.
func (cs *connServer) track(c *h1Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.shutting.Load() {
		return false
	}
	cs.conns[c] = struct{}{}
	cs.wg.Add(1)
	return true
}

func (cs *connServer) untrack(c *h1Conn) {
	cs.mu.Lock()
	delete(cs.conns, c)
	cs.mu.Unlock()
	cs.wg.Done()
}

// shutdown stops new requests, closes idle connections and waits until
// the active ones are done or ctx ends.
func (cs *connServer) shutdown(ctx context.Context) error {
	cs.shutting.Store(true)
	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if cs.closeIdle() {
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
func (cs *connServer) closeIdle() bool {
	var idle []*h1Conn
	cs.mu.Lock()
	for c := range cs.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			idle = append(idle, c)
		}
	}
	n := len(cs.conns)
	cs.mu.Unlock()
	for _, c := range idle {
		c.tc.Close() // sends close_notify, as net/http does
	}
	return n == 0
}

// closeAll closes every connection at once and cancels their contexts.
func (cs *connServer) closeAll() {
	cs.shutting.Store(true)
	cs.force.Do(func() { close(cs.forced) })
	cs.cancel()
	cs.mu.Lock()
	for c := range cs.conns {
		c.raw.Close()
	}
	cs.mu.Unlock()
}

// wait waits for the connection goroutines, at most d: a handler that
// ignores its context must not block Serve forever.
func (cs *connServer) wait(d time.Duration) {
	done := make(chan struct{})
	go func() {
		cs.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// serve runs the TLS handshake and then serves the connection or hands it
// to net/http.
func (c *h1Conn) serve() {
	cs := c.cs
	defer cs.untrack(c)
	c.tc = tls.Server(c.raw, cs.tlsConf)
	dl := time.Now().Add(handshakeTimeout)
	c.raw.SetDeadline(dl)
	if err := c.tc.Handshake(); err != nil {
		// Like net/http: a client that speaks plain HTTP gets a hint.
		reason := err.Error()
		var re tls.RecordHeaderError
		plainHTTP := false
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			reason = "client sent an HTTP request to an HTTPS server"
			plainHTTP = true
		}
		cs.s.metrics.x.tlsFailure(err, plainHTTP)
		cs.logf("http: TLS handshake error from %s: %v", c.raw.RemoteAddr(), reason)
		c.raw.Close()
		return
	}
	if cs.shutting.Load() {
		c.tc.Close()
		return
	}
	c.tlsState = c.tc.ConnectionState()
	if c.tlsState.NegotiatedProtocol == "h2" || cs.s.state.Load().conf.HTTP1Stdlib {
		// net/http resets the deadlines itself.
		if !cs.hl.hand(c.tc) {
			c.tc.Close()
		}
		return
	}
	c.readDL, c.writeDL = dl, dl
	c.state.Store(stateActive)
	c.serveHTTP1()
}

// looksLikeHTTP reports whether the first bytes of a TLS record header are
// those of an HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// connListener is the listener of the net/http Server: it returns the
// connections that Serve hands over.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// hand passes c to the net/http Server; it fails once that is closed.
func (l *connListener) hand(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}
