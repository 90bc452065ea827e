package server

import (
	"container/list"
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

	"github.com/openkes/openkes/internal/h1"
)

// Connection handling of Serve.
//
// Serve accepts TCP connections itself and completes the TLS handshake in
// a goroutine per connection. Then:
//
//   - connections that negotiated "h2" go to a net/http Server, through a
//     listener that hands over the finished *tls.Conn, so that net/http
//     speaks HTTP/2 on them exactly as with http.Server.ServeTLS;
//   - HTTP/1.1 connections (ALPN "http/1.1" or none) are served by the
//     request loop of internal/h1, or by the same net/http Server when the
//     current configuration sets Config.HTTP1Stdlib.
//
// The timeouts: 5 s for the handshake and for a request header, 90 s idle
// between requests, 15 s (or 3/4 of the route's timeout) for a request
// body, and the per-route write deadlines of the router.
//
// # Connection limits
//
// Every connection counts from its accept until it is closed, whichever
// protocol serves it (see Limits). A connection is "unauthenticated"
// while in the TLS handshake, and afterwards if its certificate's
// identity is neither the admin nor in a policy of the configuration of
// the moment. At most Limits.UnauthenticatedConnections of them are kept:
// a new connection past that budget (or past Limits.Connections) closes
// the oldest unauthenticated one. So clients that stall handshakes,
// headers or bodies with unknown certificates only ever compete among
// themselves, and a known identity always gets a connection while the
// total of known ones is below Limits.Connections. A new connection is
// refused (closed at once) only when the cap is full of known ones.

const (
	handshakeTimeout  = 5 * time.Second
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 90 * time.Second
	// bodyTimeout bounds reading a request body on connections that
	// net/http serves (HTTP/2, Config.HTTP1Stdlib): the longest route
	// timeout. The own loop also ends it at the route's deadline.
	bodyTimeout = h1.DefaultBodyTimeout
	// drainTimeout bounds reading what a handler left of a body.
	drainTimeout = h1.DefaultDrainTimeout
	// answerWriteTimeout bounds writing answers that have no route
	// timeout: redirects and 404s.
	answerWriteTimeout = 10 * time.Second

	// h2StreamTimeout is the WriteTimeout of Serve's HTTP/2 server, and
	// 3/4 of it its ReadTimeout: net/http arms them for every stream as
	// it opens, in the connection's own goroutine. Setting a deadline
	// through http.ResponseController instead costs a round trip to that
	// goroutine per call on HTTP/2, so the handlers only set the deadlines
	// that differ. It is the default route timeout (15 s; a body gets 3/4
	// of it, see bodyDeadline).
	h2StreamTimeout = 15 * time.Second
)

// trackedConn is one accepted connection.
type trackedConn struct {
	raw    net.Conn
	unauth *list.Element // in connServer.unauth while unauthenticated, else nil
	gone   bool          // closed (by eviction or shutdown) or untracked
}

// connServer accepts and dispatches the connections of one Serve call.
type connServer struct {
	s       *Server
	hs      *http.Server  // HTTP/1.1 with Config.HTTP1Stdlib
	hl      *connListener // feeds hs
	h2      *http.Server  // HTTP/2
	h2l     *connListener // feeds h2
	h1      *h1.Server    // the own HTTP/1.1 loop
	tlsConf *tls.Config
	errLog  *log.Logger

	shutting atomic.Bool // no new connections

	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	unauth  list.List                 // *trackedConn, oldest first
	handed  map[net.Conn]*trackedConn // connections served by hs
	evicted atomic.Int64              // unauthenticated connections closed for newer ones
	refused atomic.Int64              // connections refused at the cap
	wg      sync.WaitGroup            // the connection goroutines
}

func newConnServer(s *Server, hs, h2 *http.Server, handler http.Handler, addr net.Addr, stop chan struct{}) *connServer {
	cs := &connServer{
		s:       s,
		hs:      hs,
		hl:      newConnListener(addr),
		h2:      h2,
		h2l:     newConnListener(addr),
		tlsConf: hs.TLSConfig,
		errLog:  hs.ErrorLog,
		conns:   map[*trackedConn]struct{}{},
		handed:  map[net.Conn]*trackedConn{},
	}
	base := context.WithValue(context.Background(), stopKey{}, stop)
	base = context.WithValue(base, http.ServerContextKey, hs)
	cs.h1 = &h1.Server{
		Handler:     handler,
		Timeouts:    h1.Timeouts{ReadHeader: s.readHeaderTimeout, Idle: s.idleTimeout},
		ErrorLog:    hs.ErrorLog,
		BaseContext: base,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, new(connInfo))
		},
	}
	connState := func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			cs.mu.Lock()
			tc := cs.handed[c]
			delete(cs.handed, c)
			cs.mu.Unlock()
			if tc != nil {
				cs.untrack(tc)
			}
		}
	}
	hs.ConnState, h2.ConnState = connState, connState
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
	return h1.AcceptLoop(ln, cs.shutting.Load, cs.logf, func(raw net.Conn) {
		c := cs.admit(raw)
		if c == nil {
			raw.Close()
			return
		}
		go cs.serve(c)
	})
}

// admit registers a new connection within the limits; it returns nil if
// the connection must be refused.
func (cs *connServer) admit(raw net.Conn) *trackedConn {
	lim := cs.s.state.Load().conf.Limits.withDefaults()
	var evict []*trackedConn
	defer func() {
		for _, c := range evict {
			c.raw.Close()
		}
	}()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.shutting.Load() {
		return nil
	}
	for cs.unauth.Len() >= lim.UnauthenticatedConnections || len(cs.conns) >= lim.Connections {
		oldest := cs.unauth.Front()
		if oldest == nil {
			cs.refused.Add(1)
			return nil
		}
		c := oldest.Value.(*trackedConn)
		cs.forget(c)
		evict = append(evict, c)
		cs.evicted.Add(1)
	}
	c := &trackedConn{raw: raw}
	c.unauth = cs.unauth.PushBack(c)
	cs.conns[c] = struct{}{}
	cs.wg.Add(1)
	return c
}

// forget removes c from the counts; cs.mu is held.
func (cs *connServer) forget(c *trackedConn) {
	if c.gone {
		return
	}
	c.gone = true
	if c.unauth != nil {
		cs.unauth.Remove(c.unauth)
		c.unauth = nil
	}
	delete(cs.conns, c)
}

// untrack removes c from the counts once it is closed.
func (cs *connServer) untrack(c *trackedConn) {
	cs.mu.Lock()
	cs.forget(c)
	cs.mu.Unlock()
}

// authenticated moves c out of the unauthenticated budget. It reports
// false if c was evicted meanwhile.
func (cs *connServer) authenticated(c *trackedConn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c.gone {
		return false
	}
	if c.unauth != nil {
		cs.unauth.Remove(c.unauth)
		c.unauth = nil
	}
	return true
}

// counts returns the number of connections and of unauthenticated ones.
func (cs *connServer) counts() (total, unauth int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.conns), cs.unauth.Len()
}

// knownIdentity reports whether the client of a TLS connection is the
// admin or has a policy in the current configuration.
func (cs *connServer) knownIdentity(state *tls.ConnectionState) bool {
	id, err := identify(state)
	if err != nil {
		return false
	}
	st := cs.s.state.Load()
	if st.admin != "" && id == st.admin {
		return true
	}
	_, ok := st.idents[id]
	return ok
}

// shutdown stops new connections and requests, closes idle connections
// and waits until the others are done or ctx ends.
func (cs *connServer) shutdown(ctx context.Context) error {
	cs.shutting.Store(true)
	if err := cs.h1.Shutdown(ctx); err != nil {
		return err
	}
	// Connections still in the handshake close when it ends.
	return h1.WaitContext(ctx, &cs.wg)
}

// closeAll closes every connection at once and cancels their contexts.
func (cs *connServer) closeAll() {
	cs.shutting.Store(true)
	cs.h1.Close()
	cs.mu.Lock()
	for c := range cs.conns {
		c.raw.Close()
	}
	cs.mu.Unlock()
}

// wait waits for the connection goroutines, at most d: a handler that
// ignores its context must not block Serve forever.
func (cs *connServer) wait(d time.Duration) { h1.WaitAtMost(&cs.wg, d) }

// serve runs the TLS handshake and then serves the connection or hands it
// to net/http.
func (cs *connServer) serve(c *trackedConn) {
	defer cs.wg.Done()
	handed := false
	defer func() {
		if !handed {
			cs.untrack(c)
		}
	}()
	tc := tls.Server(c.raw, cs.tlsConf)
	c.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
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
		tc.Close()
		return
	}
	state := tc.ConnectionState()
	if cs.knownIdentity(&state) && !cs.authenticated(c) {
		tc.Close() // evicted during the handshake
		return
	}
	var hl *connListener // the net/http Server's, if it serves c
	if state.NegotiatedProtocol == "h2" {
		hl = cs.h2l
	} else if cs.s.state.Load().conf.HTTP1Stdlib {
		hl = cs.hl
	}
	if hl != nil {
		// net/http resets the deadlines itself, and reports the end of
		// the connection to hs.ConnState.
		cs.mu.Lock()
		if c.gone {
			cs.mu.Unlock()
			tc.Close()
			return
		}
		cs.handed[tc] = c
		cs.mu.Unlock()
		handed = true
		if !hl.hand(tc) {
			cs.mu.Lock()
			delete(cs.handed, tc)
			cs.mu.Unlock()
			handed = false
			tc.Close()
		}
		return
	}
	cs.s.http1Conns.Add(1)
	cs.h1.ServeConn(tc)
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

// bodyDeadline bounds reading request bodies on the connections that
// net/http serves, as the own loop does: net/http reads them without
// deadline.
// The deadline is 3/4 of the route's timeout if that is shorter than
// bodyTimeout. On HTTP/2 the stream's own read deadline (see h2StreamTimeout)
// is kept when it is the one wanted, and nothing is drained after the
// handler: net/http resets a stream whose body is left unread.
type bodyDeadline struct {
	s *Server
	h http.Handler
}

func (b bodyDeadline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		growStack()
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		b.h.ServeHTTP(w, r)
		return
	}
	d := bodyTimeout
	if st := b.s.state.Load(); st != nil {
		if rt, _ := st.lookup(r.URL.Path); rt != nil && rt.Timeout > 0 {
			// As in the own loop: 3/4 of the route's time, so that the
			// answer still goes out before its write deadline.
			d = min(d, rt.Timeout-rt.Timeout/4)
		}
	}
	if r.ProtoMajor == 2 {
		if st := streamTimeout(r); st == 0 || d != st-st/4 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		b.h.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	dl := time.Now().Add(d)
	_ = rc.SetReadDeadline(dl)
	b.h.ServeHTTP(w, r)
	// net/http reads up to 256 KiB of a body the handler left unread
	// before it answers: for drainTimeout at most, and never past the
	// body's deadline.
	if drain := time.Now().Add(drainTimeout); drain.Before(dl) {
		dl = drain
	}
	_ = rc.SetReadDeadline(dl)
}

// handlerStack is the frame of growStack: it makes the stack 8 KiB,
// which the crypto handlers fit in (JSON decoding is the deepest part).
const handlerStack = 5 << 10

// growStack grows the stack of a fresh goroutine (net/http starts one per
// HTTP/2 stream, with a small stack) to what the handler needs in one
// step while it is still shallow, instead of in doublings deep in the
// handler, each of which copies and adjusts every frame below. Stack
// growth (runtime.newstack) was about a sixth of the server's CPU time on
// HTTP/2, see docs/performance.md.
//
//go:noinline
func growStack() {
	var frame [handlerStack]byte
	keepFrame(frame[:])
}

// keepFrame keeps growStack's frame from being optimised away; it does not
// retain the slice, so the frame stays on the stack. (A shared variable
// written by every stream would be a data race.)
//
//go:noinline
func keepFrame([]byte) {}

// streamTimeout returns the write deadline that r's stream started with
// (its read deadline is 3/4 of it) if r came on a connection of Serve's
// HTTP/2 server, else 0.
func streamTimeout(r *http.Request) time.Duration {
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		return ci.streamTimeout
	}
	return 0
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
