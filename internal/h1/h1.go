package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxHeaderBytes bounds request line plus header, as
	// http.DefaultMaxHeaderBytes does for net/http (which allows 4 KiB of
	// slack on top).
	maxHeaderBytes = http.DefaultMaxHeaderBytes + 4096

	// maxPostHandlerRead is how much of a request body that the handler
	// left unread is read to keep the connection, as in net/http.
	maxPostHandlerRead = 256 << 10

	// bufferBeforeChunking is the size of net/http's response buffer: a
	// response without Content-Length that is longer is chunked.
	bufferBeforeChunking = 2048

	// maxBuffered is how much of a response with Content-Length is
	// buffered before it is written in pieces.
	maxBuffered = 64 << 10

	// errorWriteTimeout bounds writing the answer to an unreadable
	// request.
	errorWriteTimeout = 10 * time.Second

	// rstAvoidanceDelay is how long a connection is kept after a
	// close_notify when the client may still be sending (net/http).
	rstAvoidanceDelay = 500 * time.Millisecond
)

// aLongTimeAgo is a deadline in the past that interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one connection on the request loop.
type conn struct {
	srv   *Server
	nc    net.Conn
	state atomic.Int32

	ctx      context.Context // cancelled when the connection ends
	cancel   context.CancelFunc
	tlsState *tls.ConnectionState // nil for a connection without TLS
	remote   string

	cr  connReader
	br  *bufio.Reader
	out []byte // response bytes not written yet
	w   ResponseWriter

	body  reqBody      // wraps the request body
	limit maxBytesBody // the router's body limit

	// readDL and writeDL are the deadlines set on the connection; hdrDL
	// and idleDL report whether readDL is a read-header or an idle
	// deadline.
	readDL, writeDL time.Time
	hdrDL, idleDL   bool

	lastPOST bool
	werr     error         // first write error; the connection is done
	scan     headerScanner // the header of the current request

	// Background read while a handler streams.
	bgRunning bool
	bgAbort   atomic.Bool
	bgDone    chan struct{}
	bgErr     error
}

// serve runs the HTTP/1.1 request loop until the connection ends.
func (c *conn) serve() {
	srv := c.srv
	c.remote = c.nc.RemoteAddr().String()
	ctx := context.WithValue(srv.base, http.LocalAddrContextKey, c.nc.LocalAddr())
	if srv.ConnContext != nil {
		ctx = srv.ConnContext(ctx, c.nc)
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.cr.c = c
	c.cr.remain = math.MaxInt64
	c.br = bufio.NewReaderSize(&c.cr, 4096)
	c.w.c = c
	c.w.header = make(http.Header)
	c.w.sinkW.w = &c.w
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			srv.logf("http: panic serving %v: %v\n%s", c.remote, v, buf)
		}
		c.stopBackgroundRead()
		c.cancel()
		c.nc.Close()
	}()
	for first := true; ; first = false {
		if !c.waitRequest(first) {
			return
		}
		if !c.serveRequest() {
			return
		}
	}
}

func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	c.readDL = t
	c.idleDL = false
}

// shortenReadDeadline sets the read deadline t unless one at most as late
// is set already.
func (c *conn) shortenReadDeadline(t time.Time) {
	if c.readDL.IsZero() || t.Before(c.readDL) {
		c.setReadDeadline(t)
		c.hdrDL = false
	}
}

// deadlineSlack is the fraction of a timeout by which a deadline already
// set on the connection may be early and still be kept instead of the
// exact one: setting a deadline costs about 0.2 µs, and on a busy
// keep-alive connection the deadline of the previous request is almost
// the same.
const deadlineSlack = 64

// keepDeadline reports whether the deadline cur, already set, can stand
// in for want, the deadline of a timeout d: it is not later, and at most
// d/deadlineSlack earlier.
func keepDeadline(cur, want time.Time, d time.Duration) bool {
	return !cur.IsZero() && !cur.After(want) && want.Sub(cur) <= d/deadlineSlack
}

// waitRequest waits for the first byte of the next request.
func (c *conn) waitRequest(first bool) bool {
	if c.br.Buffered() > 0 { // pipelined
		c.hdrDL = false
		return !c.srv.shutting.Load()
	}
	if first {
		c.setReadDeadline(time.Now().Add(c.srv.t.ReadHeader))
		c.hdrDL = true
		_, err := c.br.Peek(1)
		return err == nil
	}
	c.state.Store(stateIdle)
	if c.srv.shutting.Load() {
		return false
	}
	if dl := time.Now().Add(c.srv.t.Idle); !c.idleDL || !keepDeadline(c.readDL, dl, c.srv.t.Idle) {
		c.setReadDeadline(dl)
		c.idleDL = true
	}
	c.hdrDL = false
	_, err := c.br.Peek(1)
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // closed by shutdown
	}
	return err == nil
}

// serveRequest reads one request and answers it. It reports whether the
// connection can serve another one.
func (c *conn) serveRequest() bool {
	c.cr.remain = maxHeaderBytes
	if c.lastPOST {
		// RFC 7230 section 3.5: tolerate the CRLF some old clients send
		// after a POST body.
		b, _ := c.br.Peek(min(4, c.br.Buffered()))
		n := 0
		for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
			n++
		}
		c.br.Discard(n)
	}

	// Look at the header bytes received so far: whether the header is
	// complete decides about the read-header deadline, and the Host
	// fields are checked as net/http checks them (http.ReadRequest
	// removes them from the header).
	buffered, _ := c.br.Peek(c.br.Buffered())
	c.scan = headerScanner{}
	c.scan.feed(buffered)
	if !c.scan.h.complete {
		if !c.hdrDL {
			c.setReadDeadline(time.Now().Add(c.srv.t.ReadHeader))
			c.hdrDL = true
		}
		// The rest is scanned as it is read, without a copy: a header
		// that comes in pieces costs no more memory than in net/http.
		c.cr.scan = true
	}
	req, err := http.ReadRequest(c.br)
	c.cr.scan = false
	hdr := c.scan.h
	hitLimit := c.cr.remain <= 0
	c.cr.remain = math.MaxInt64
	if err != nil {
		c.replyReadError(err, hitLimit)
		return false
	}
	if req.ProtoMajor != 1 && !(req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		c.replyStatusError(http.StatusHTTPVersionNotSupported, "unsupported protocol version")
		return false
	}
	c.lastPOST = req.Method == "POST"
	h2Upgrade := req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if req.ProtoAtLeast(1, 1) && hdr.hosts == 0 && !h2Upgrade && req.Method != "CONNECT" {
		c.replyStatusError(http.StatusBadRequest, "missing required Host header")
		return false
	}
	if hdr.hosts == 1 && !hdr.validHost {
		c.replyStatusError(http.StatusBadRequest, "malformed Host header")
		return false
	}
	if hdr.badName {
		// textproto accepts field names with spaces; net/http's server
		// does not. (Invalid values never get past textproto.)
		c.replyStatusError(http.StatusBadRequest, "invalid header name")
		return false
	}
	if c.srv.shutting.Load() {
		return false // as net/http: no new requests while shutting down
	}
	// A body that has yet to arrive must arrive within Timeouts.Body
	// (net/http: without deadline, which let stalled bodies pin
	// connections); the route's deadline shortens it.
	if req.ContentLength != 0 && (req.ContentLength < 0 || int64(c.br.Buffered()) < req.ContentLength) {
		c.setReadDeadline(time.Now().Add(c.srv.t.Body))
		c.hdrDL = false
	}

	*req = *req.WithContext(c.ctx)
	req.RemoteAddr = c.remote
	req.TLS = c.tlsState
	w := &c.w
	w.reset(req)
	if h2Upgrade {
		w.closeAfterReply = true
	}
	if req.Body != http.NoBody {
		c.body = reqBody{c: c, src: req.Body, remain: req.ContentLength, chunked: req.ContentLength < 0, closing: req.Close}
		req.Body = &c.body
		w.hasBody = true
	}
	if expect, ok := req.Header["Expect"]; ok {
		if hasToken(expect[0], "100-continue") {
			if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
				c.body.expect = true
				w.canContinue.Store(true)
			}
		} else if expect[0] != "" {
			w.header.Set("Connection", "close")
			w.WriteHeader(http.StatusExpectationFailed)
			w.finish()
			return false
		}
	}

	if !c.callHandler(w, req) {
		return false // panicked: nothing is sent
	}
	w.finish()
	c.stopBackgroundRead()
	if !w.reuse() {
		if w.tooLarge || c.body.earlyClose {
			c.closeWriteAndWait()
		}
		return false
	}
	return !c.srv.shutting.Load()
}

// callHandler runs the server's handler; it reports false if it panicked.
func (c *conn) callHandler(w *ResponseWriter, r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logf("http: panic serving %v: %v\n%s", c.remote, v, buf)
			}
			ok = false
		}
	}()
	if r.RequestURI == "*" && r.Method == "OPTIONS" {
		// net/http answers "OPTIONS *" itself.
		w.header.Set("Content-Length", "0")
		if r.ContentLength != 0 {
			io.Copy(io.Discard, w.LimitBody(r.Body, 4<<10))
		}
		return true
	}
	c.srv.Handler.ServeHTTP(w, r)
	return true
}

// replyReadError answers a request that http.ReadRequest rejected, as
// net/http does, and ends the connection.
func (c *conn) replyReadError(err error, hitLimit bool) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	switch {
	case hitLimit:
		const msg = "431 Request Header Fields Too Large"
		c.writeRaw("HTTP/1.1 " + msg + errorHeaders + msg)
		c.closeWriteAndWait()
	case reflect.TypeOf(err).String() == "*http.unsupportedTEError":
		c.writeRaw("HTTP/1.1 501 Not Implemented" + errorHeaders + "Unsupported transfer encoding")
	case isCommonNetReadError(err):
		// The client is gone or idle: no answer.
	default:
		const msg = "400 Bad Request"
		c.writeRaw("HTTP/1.1 " + msg + errorHeaders + msg)
	}
}

// replyStatusError answers a request that net/http's server rejects after
// parsing it.
func (c *conn) replyStatusError(code int, text string) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	status := strconv.Itoa(code) + " " + http.StatusText(code) + ": " + text
	c.writeRaw("HTTP/1.1 " + status + errorHeaders + status)
}

func (c *conn) writeRaw(s string) {
	c.writeDL = time.Now().Add(errorWriteTimeout)
	c.nc.SetWriteDeadline(c.writeDL)
	io.WriteString(c.nc, s)
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "read" {
		return true
	}
	return false
}

// closeWriteAndWait sends close_notify and gives the client a moment to
// read the answer before the connection is closed: closing a socket with
// unread input makes the kernel send a reset, which can destroy the answer
// on the way.
func (c *conn) closeWriteAndWait() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	t := time.NewTimer(rstAvoidanceDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.srv.forced:
	}
}

// flushOut writes c.out with the write deadline the handler asked for.
func (c *conn) flushOut() error {
	if c.werr != nil || len(c.out) == 0 {
		c.out = c.out[:0]
		return c.werr
	}
	if dl := c.w.writeDL; !dl.Equal(c.writeDL) && !keepDeadline(c.writeDL, dl, c.w.writeTimeout) {
		c.nc.SetWriteDeadline(dl)
		c.writeDL = dl
	}
	_, err := c.nc.Write(c.out)
	if cap(c.out) > maxBuffered {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	if err != nil {
		c.werr = err
	}
	return err
}

// writeContinue sends "100 Continue" when the handler starts to read the
// body of a request that expects it, unless the response has begun.
func (c *conn) writeContinue() {
	if c.w.canContinue.CompareAndSwap(true, false) {
		c.out = append(c.out, "HTTP/1.1 100 Continue\r\n\r\n"...)
		c.flushOut()
	}
}

// startBackgroundRead reads from the connection while a handler streams
// its response, so that a client that goes away ends the handler's
// context. A byte that arrives (a pipelined request) is kept for the next
// request.
func (c *conn) startBackgroundRead() {
	if c.bgRunning || c.w.hasBody && !c.body.sawEOF {
		return // the handler may still read the body
	}
	c.bgRunning = true
	if !c.readDL.IsZero() {
		c.setReadDeadline(time.Time{})
		c.hdrDL = false
	}
	c.bgDone = make(chan struct{})
	c.bgErr = nil
	go func() {
		defer close(c.bgDone)
		n, err := c.nc.Read(c.cr.stash[:])
		if n == 1 {
			c.cr.hasStash = true
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && c.bgAbort.Load() {
				return
			}
			c.bgErr = err
			c.cancel()
		}
	}()
}

// stopBackgroundRead ends the background read, if any.
func (c *conn) stopBackgroundRead() {
	if !c.bgRunning {
		return
	}
	c.bgAbort.Store(true)
	c.setReadDeadline(aLongTimeAgo)
	<-c.bgDone
	c.bgAbort.Store(false)
	c.bgRunning = false
	if c.bgErr != nil {
		c.w.closeAfterReply = true
	}
}

// connReader is the reader below the connection's bufio.Reader: it
// enforces the header size limit, returns the byte of a background read
// first and, while a header comes in pieces, scans what it reads.
type connReader struct {
	c        *conn
	remain   int64 // bytes that may still be read
	scan     bool  // feed what is read to c.scan
	hasStash bool
	stash    [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	var n int
	var err error
	if r.hasStash {
		p[0] = r.stash[0]
		r.hasStash = false
		n = 1
	} else {
		n, err = r.c.nc.Read(p)
	}
	r.remain -= int64(n)
	if r.scan {
		r.c.scan.feed(p[:n])
	}
	return n, err
}

// reqBody wraps the body of http.ReadRequest. It tracks what net/http's
// server knows about a body (bytes left, EOF seen, closed early), sends
// "100 Continue" on the first read if the client expects it, and makes
// Close bounded: http.ReadRequest's body reads everything on Close.
type reqBody struct {
	c       *conn
	src     io.ReadCloser
	remain  int64 // declared bytes not read yet
	chunked bool  // no declared length
	closing bool  // the request asks to close the connection
	expect  bool  // Expect: 100-continue

	sawEOF     bool // the end of the body was read
	handlerEOF bool // ... by the handler (net/http's expectContinueReader knows only this)
	closed     bool
	earlyClose bool // closed with more than maxPostHandlerRead left
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expect && b.c.w.canContinue.Load() {
		b.c.writeContinue()
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.handlerEOF = true
	}
	return n, err
}

// read reads from the body without sending 100 Continue (to discard it).
func (b *reqBody) read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	b.remain -= int64(n)
	if err == io.EOF {
		b.sawEOF = true
	}
	return n, err
}

// discard reads and drops up to n bytes of the body, for at most
// Timeouts.Drain: a client that does not send the body it announced must
// not keep the answer (and the connection) waiting.
func (b *reqBody) discard(n int64) (int64, error) {
	b.c.shortenReadDeadline(time.Now().Add(b.c.srv.t.Drain))
	return io.CopyN(io.Discard, bodyReader{b}, n)
}

type bodyReader struct{ b *reqBody }

func (r bodyReader) Read(p []byte) (int, error) { return r.b.read(p) }

// Close reads up to maxPostHandlerRead bytes to find the end of the body,
// so that the connection can be reused; a longer body closes it.
func (b *reqBody) Close() error {
	if b.closed {
		return nil
	}
	var err error
	switch {
	case b.sawEOF:
	case !b.chunked && b.closing:
	case !b.chunked && b.remain > maxPostHandlerRead:
		b.earlyClose = true
	default:
		var n int64
		n, err = b.discard(maxPostHandlerRead)
		if err == io.EOF {
			err = nil
		}
		if n == maxPostHandlerRead {
			b.earlyClose = true
		}
	}
	b.closed = true
	return err
}

// maxBytesBody is http.MaxBytesReader for the HTTP/1.1 loop: hitting the
// limit must reach the ResponseWriter, which MaxBytesReader can only tell
// net/http's own writer.
type maxBytesBody struct {
	w     *ResponseWriter
	r     io.ReadCloser
	n     int64 // bytes left
	limit int64
	err   error
}

func (l *maxBytesBody) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Read one byte more than allowed to tell "exactly at the limit"
	// from "over it".
	if int64(len(p))-1 > l.n {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	if int64(n) <= l.n {
		l.n -= int64(n)
		l.err = err
		return n, err
	}
	n = int(l.n)
	l.n = 0
	l.err = &http.MaxBytesError{Limit: l.limit}
	l.w.requestTooLarge()
	return n, l.err
}

func (l *maxBytesBody) Close() error { return l.r.Close() }

// headerScan is what serveRequest learns from the raw header bytes.
type headerScan struct {
	complete  bool // the scanned bytes hold the whole header
	hosts     int  // number of Host fields
	validHost bool // the first Host value is well-formed
	badName   bool // a field name contains a space
}

// headerScanner is scanHeader for a header that arrives in pieces: feed
// it the bytes in order; it stops at the end of the header and keeps no
// bytes. FuzzHeaderScanner checks that it agrees with scanHeader.
type headerScanner struct {
	h        headerScan
	started  bool // past the request line
	pos      int  // index in the current line
	cont     bool // the current line is a continuation line
	colon    bool // the current line had its first ':'
	space    bool // ... and a space before it
	first4   [4]byte
	inHost   bool // the last field line was a Host field
	hostVal  bool // validating the value of the first Host field
	hostCont bool // ... on one of its continuation lines
	valState uint8
	badVal   bool
	onlyCR   bool // the current line holds only "\r" so far
}

// feed scans b, the next bytes of the request.
func (s *headerScanner) feed(b []byte) {
	for _, c := range b {
		if s.h.complete {
			return
		}
		if !s.started {
			if c == '\n' {
				s.started = true
			}
			continue
		}
		if c == '\n' {
			s.endLine()
			continue
		}
		s.byte(c)
	}
}

func (s *headerScanner) byte(c byte) {
	pos := s.pos
	s.pos++
	if pos == 0 {
		s.onlyCR = c == '\r'
		s.cont = c == ' ' || c == '\t'
		s.colon, s.space, s.hostVal = false, false, false
		if s.cont {
			// A continuation line of the first Host field: textproto
			// joins it to the value with a space, so the value stays
			// valid only while it is still empty (the join space is
			// then trimmed as leading whitespace).
			if s.inHost && s.h.hosts == 1 {
				if s.valState != 0 {
					s.badVal = true
				}
				s.hostVal, s.hostCont = true, true
			}
			return
		}
	} else {
		s.onlyCR = false
	}
	if s.cont && !s.hostCont {
		return
	}
	if s.hostVal {
		// The value must be OWS* hostbytes* OWS*; the final '\r' is OWS.
		switch {
		case isOWS(c):
			if s.valState == 1 {
				s.valState = 2
			}
		case validHostByte(c) && s.valState < 2:
			s.valState = 1
		default:
			s.badVal = true
		}
		return
	}
	if !s.colon {
		if c == ':' {
			s.colon = true
			if pos > 0 && s.space {
				s.h.badName = true
			}
		} else if c == ' ' {
			s.space = true
		}
	}
	if pos < 4 {
		s.first4[pos] = asciiLower(c)
	}
	if pos == 4 {
		s.inHost = c == ':' && string(s.first4[:]) == "host"
		if s.inHost {
			s.h.hosts++
			if s.h.hosts == 1 {
				s.hostVal, s.valState, s.badVal = true, 0, false
			}
		}
	}
}

func (s *headerScanner) endLine() {
	switch {
	case s.pos == 0 || s.pos == 1 && s.onlyCR:
		s.h.complete = true
	case s.cont && s.hostCont:
		s.h.validHost = !s.badVal
	case s.cont:
	case s.pos <= 4:
		// Too short for "Host:": not a Host field.
		s.inHost = false
	case s.hostVal:
		s.h.validHost = !s.badVal
	}
	s.pos, s.hostVal, s.hostCont = 0, false, false
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// trimOWS trims the whitespace that textproto trims from header values.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// validHostHeader reports whether h only holds bytes that can appear in a
// host with optional port (RFC 3986 reg-name, IP literal, port), the
// lenient check of net/http's server.
func validHostHeader(h []byte) bool {
	for _, c := range h {
		if !validHostByte(c) {
			return false
		}
	}
	return true
}

func validHostByte(c byte) bool { return hostBytes[c] }

// hostBytes and tokenBytes are the bytes of a Host header and of an
// RFC 9110 token.
var (
	hostBytes  = asciiSet("!$%&'()*+,-.:;=[]_~")
	tokenBytes = asciiSet("!#$%&'*+-.^_`|~")
)

// asciiSet returns the set of the ASCII letters and digits and the bytes
// of extra.
func asciiSet(extra string) *[256]bool {
	set := new([256]bool)
	for c := range set {
		set[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := 0; i < len(extra); i++ {
		set[extra[i]] = true
	}
	return set
}

// hasToken reports whether the comma- or space-separated list v contains
// token, ignoring ASCII case.
func hasToken(v, token string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && isTokenBoundary(v[i]) {
			i++
		}
		v = v[i:]
		j := 0
		for j < len(v) && !isTokenBoundary(v[j]) {
			j++
		}
		if asciiEqualFold(v[:j], token) {
			return true
		}
		v = v[j:]
	}
	return false
}

func isTokenBoundary(c byte) bool { return c == ' ' || c == ',' || c == '\t' }

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if asciiLower(a[i]) != asciiLower(b[i]) {
			return false
		}
	}
	return true
}

// ResponseWriter is the http.ResponseWriter of the HTTP/1.1 loop, reused for
// every request of a connection. It implements http.Flusher and, for
// http.ResponseController, FlushError, SetWriteDeadline and
// SetReadDeadline.
type ResponseWriter struct {
	c      *conn
	req    *http.Request
	header http.Header // the handler's header map, cleared per request

	// The header as it was at WriteHeader, sorted by key, with the
	// fields net/http would drop marked.
	fields []headerField
	vals   []string

	status        int
	wroteHeader   bool  // WriteHeader was called (logically written)
	headerSent    bool  // the header is formatted into c.out
	handlerDone   bool  // the handler returned
	contentLength int64 // -1: unknown
	written       int64
	body          []byte        // the response body while it is buffered
	bw            *bufio.Writer // the 2 KiB buffer of a chunked response
	sinkW         sinkWriter
	chunking      bool
	hasBody       bool // the request has a body (c.body)

	closeAfterReply  bool
	tooLarge         bool // the request body exceeded the limit of the route
	canContinue      atomic.Bool
	wants10KeepAlive bool
	wantsClose       bool
	isHEAD           bool

	// writeDL is the write deadline asked for by the handler, applied
	// when writing; if it is that of a timeout (writeTimeout > 0), a
	// deadline up to writeTimeout/deadlineSlack earlier may be kept.
	writeDL      time.Time
	writeTimeout time.Duration
}

type headerField struct {
	key        string
	start, end int // the values are vals[start:end]
	deleted    bool
}

// reset prepares w for req.
func (w *ResponseWriter) reset(req *http.Request) {
	clear(w.header)
	w.req = req
	w.fields = w.fields[:0]
	clear(w.vals)
	w.vals = w.vals[:0]
	w.status = 0
	w.wroteHeader, w.headerSent, w.handlerDone = false, false, false
	w.contentLength = -1
	w.written = 0
	if cap(w.body) > maxBuffered {
		w.body = nil
	}
	w.body = w.body[:0]
	w.bw = nil
	w.chunking = false
	w.hasBody = false
	w.closeAfterReply, w.tooLarge = false, false
	w.canContinue.Store(false)
	w.isHEAD = req.Method == "HEAD"
	w.wants10KeepAlive = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(firstValue(req.Header, "Connection"), "keep-alive")
	w.wantsClose = req.Close || hasToken(firstValue(req.Header, "Connection"), "close")
	w.writeDL, w.writeTimeout = time.Time{}, 0
	w.c.body = reqBody{}
}

func firstValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (w *ResponseWriter) Header() http.Header { return w.header }

func (w *ResponseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.srv.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 101 || code > 199 {
		w.canContinue.Store(false)
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once, without the
		// body headers.
		w.snapshot()
		w.del("Content-Length")
		w.del("Transfer-Encoding")
		c := w.c
		c.out = appendStatusLine(c.out, w.req.ProtoAtLeast(1, 1), code)
		c.out = w.appendFields(c.out)
		c.out = append(c.out, '\r', '\n')
		c.flushOut()
		return
	}
	w.wroteHeader = true
	w.status = code
	w.snapshot()
	if cl := w.get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.srv.logf("http: invalid Content-Length of %q", cl)
			w.header.Del("Content-Length")
		}
	}
}

// snapshot copies the handler's header into w.fields, sorted by key.
func (w *ResponseWriter) snapshot() {
	w.fields = w.fields[:0]
	w.vals = w.vals[:0]
	for k, vv := range w.header {
		start := len(w.vals)
		w.vals = append(w.vals, vv...)
		w.fields = append(w.fields, headerField{key: k, start: start, end: len(w.vals)})
	}
	f := w.fields
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].key < f[j-1].key; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

func (w *ResponseWriter) field(key string) *headerField {
	for i := range w.fields {
		if f := &w.fields[i]; f.key == key && !f.deleted {
			return f
		}
	}
	return nil
}

// has reports whether the snapshot has key, even without values.
func (w *ResponseWriter) has(key string) bool { return w.field(key) != nil }

// get returns the first value of key in the snapshot.
func (w *ResponseWriter) get(key string) string {
	if f := w.field(key); f != nil && f.end > f.start {
		return w.vals[f.start]
	}
	return ""
}

func (w *ResponseWriter) del(key string) {
	if f := w.field(key); f != nil {
		f.deleted = true
	}
}

func (w *ResponseWriter) Write(p []byte) (int, error) {
	w.canContinue.Store(false)
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	switch {
	case w.bw != nil:
		return w.bw.Write(p)
	case w.headerSent:
		return w.sink(p)
	case w.contentLength == -1 && len(w.body)+len(p) > bufferBeforeChunking:
		// From here on the response is chunked, with the chunks that
		// net/http's 2 KiB response buffer makes.
		w.bw = newChunkBuffer(&w.sinkW)
		w.bw.Write(w.body)
		w.body = w.body[:0]
		return w.bw.Write(p)
	case len(w.body)+len(p) > maxBuffered:
		if len(w.body) > 0 {
			if _, err := w.sink(w.body); err != nil {
				return 0, err
			}
			w.body = w.body[:0]
		}
		return w.sink(p)
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// Flush implements http.Flusher.
func (w *ResponseWriter) Flush() { w.FlushError() }

// FlushError sends what the handler wrote so far. Flushing makes the
// response streamed: the connection is watched for the client going away.
func (w *ResponseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var err error
	if w.bw != nil {
		err = w.bw.Flush()
	} else {
		if len(w.body) > 0 {
			_, err = w.sink(w.body)
			w.body = w.body[:0]
		}
		if w.contentLength == -1 {
			w.bw = newChunkBuffer(&w.sinkW)
		}
	}
	if !w.headerSent {
		w.writeHeader(nil)
	}
	if e := w.c.flushOut(); err == nil {
		err = e
	}
	w.c.startBackgroundRead()
	return err
}

// SetWriteDeadline sets the deadline for writing the response; it is
// applied to the connection when the response is written.
func (w *ResponseWriter) SetWriteDeadline(t time.Time) error {
	w.writeDL, w.writeTimeout = t, 0
	return nil
}

// SetWriteTimeout sets the write deadline t of a route timeout d (> 0),
// the time the handler has to produce the whole response: a deadline up
// to d/64 earlier that is already set on the connection may be kept. A
// request body that has not arrived yet must arrive by t - d/4, which
// leaves the handler time to answer before t. It never fails.
func (w *ResponseWriter) SetWriteTimeout(t time.Time, d time.Duration) {
	w.writeDL, w.writeTimeout = t, d
	if !t.IsZero() && w.hasBody && !w.c.body.sawEOF {
		w.c.shortenReadDeadline(t.Add(-d / 4))
	}
}

// SetReadDeadline sets the read deadline of the connection.
func (w *ResponseWriter) SetReadDeadline(t time.Time) error {
	w.c.setReadDeadline(t)
	w.c.hdrDL = false
	return nil
}

func (w *ResponseWriter) requestTooLarge() {
	w.closeAfterReply = true
	w.tooLarge = true
	if !w.wroteHeader {
		w.header.Set("Connection", "close")
	}
}

// LimitBody returns rc limited to n bytes, like http.MaxBytesReader: past
// the limit reads fail with an *http.MaxBytesError and the connection is
// closed after the response.
func (w *ResponseWriter) LimitBody(rc io.ReadCloser, n int64) io.ReadCloser {
	w.c.limit = maxBytesBody{w: w, r: rc, n: max(n, 0), limit: max(n, 0)}
	return &w.c.limit
}

// finish completes the response after the handler returned.
func (w *ResponseWriter) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.bw != nil {
		w.bw.Flush()
		chunkBuffers.Put(w.bw)
		w.bw = nil
	} else if len(w.body) > 0 {
		w.sink(w.body)
		w.body = w.body[:0]
	}
	if !w.headerSent {
		w.writeHeader(nil)
	}
	c := w.c
	if w.chunking && !w.isHEAD {
		c.out = append(c.out, "0\r\n\r\n"...)
	}
	c.flushOut()
	if w.hasBody {
		c.body.Close()
	}
}

// reuse reports whether the connection can serve another request.
func (w *ResponseWriter) reuse() bool {
	switch {
	case w.closeAfterReply:
		return false
	case !w.isHEAD && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written:
		return false // the client would read the next response as body
	case w.c.werr != nil:
		return false
	case w.hasBody && w.c.body.earlyClose:
		return false
	}
	return true
}

// sinkWriter is the io.Writer below a chunked response's 2 KiB buffer.
type sinkWriter struct{ w *ResponseWriter }

func (s *sinkWriter) Write(p []byte) (int, error) { return s.w.sink(p) }

var chunkBuffers sync.Pool

func newChunkBuffer(s *sinkWriter) *bufio.Writer {
	if bw, ok := chunkBuffers.Get().(*bufio.Writer); ok {
		bw.Reset(s)
		return bw
	}
	return bufio.NewWriterSize(s, bufferBeforeChunking)
}

// sink appends a piece of the body to c.out, after the header and framed
// as a chunk if the response is chunked.
func (w *ResponseWriter) sink(p []byte) (int, error) {
	if !w.headerSent {
		w.writeHeader(p)
	}
	if w.isHEAD {
		return len(p), nil
	}
	c := w.c
	if c.werr != nil {
		return 0, c.werr
	}
	if w.chunking {
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, '\r', '\n')
	}
	c.out = append(c.out, p...)
	if w.chunking {
		c.out = append(c.out, '\r', '\n')
	}
	if len(c.out) >= maxBuffered {
		if err := c.flushOut(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// writeHeader formats the response header into c.out. p is the start of
// the body (all of it if the handler is done). The rules are net/http's:
// which framing, which of Content-Length, Connection, Transfer-Encoding,
// Date and a sniffed Content-Type are added or dropped, and whether the
// connection stays open. It also reads what is left of the request body.
func (w *ResponseWriter) writeHeader(p []byte) {
	w.headerSent = true
	c := w.c
	keepAlives := !c.srv.shutting.Load()
	var (
		extraCL         = int64(-1)
		extraType       string
		extraConnection string
		extraTE         string
	)

	te := w.get("Transfer-Encoding")
	hasTE := te != ""
	if w.handlerDone && !hasTE && bodyAllowedForStatus(w.status) && !w.has("Content-Length") && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		extraCL = int64(len(p))
	}
	if w.wants10KeepAlive && keepAlives && w.get("Content-Length") != "" && w.get("Connection") == "keep-alive" {
		w.closeAfterReply = false
	}
	hasCL := w.contentLength != -1
	if w.wants10KeepAlive && (w.isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if !w.has("Connection") {
			extraConnection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfterReply = true
	}
	if w.get("Connection") == "close" || !keepAlives {
		w.closeAfterReply = true
	}

	// A body the handler did not read to the end: read up to
	// maxPostHandlerRead of it to keep the connection, else close it.
	b := &c.body
	if w.hasBody && b.expect && !b.handlerEOF {
		w.closeAfterReply = true // 100 Continue was never sent
	}
	if w.hasBody && w.req.ContentLength != 0 && !w.closeAfterReply {
		discard, tooBig := false, false
		switch {
		case b.expect:
			// Only here after the handler read to EOF, see above.
		case b.closed:
			if !b.sawEOF {
				w.closeAfterReply = true
			}
		case b.sawEOF:
			// Nothing left; net/http would find EOF at once.
		case !b.chunked && b.remain >= maxPostHandlerRead:
			tooBig = true
		default:
			discard = true
		}
		if discard {
			_, err := b.discard(maxPostHandlerRead + 1)
			switch err {
			case nil:
				tooBig = true
			case io.EOF:
				if b.Close() != nil {
					w.closeAfterReply = true
				}
			default:
				// A broken body (bad chunk framing or trailer: the
				// request body then reports ErrBodyReadAfterClose, as
				// net/http's own closed body), or a read error: what
				// follows on the wire is no request.
				w.closeAfterReply = true
			}
		}
		if tooBig {
			w.requestTooLarge()
			w.del("Connection")
			extraConnection = "close"
		}
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		if !w.has("Content-Type") && w.get("Content-Encoding") == "" && !hasTE && len(p) > 0 {
			extraType = http.DetectContentType(p)
		}
	} else {
		if code == http.StatusNotModified {
			w.del("Content-Type")
		}
		w.del("Content-Length")
		w.del("Transfer-Encoding")
	}
	addDate := !w.has("Date")
	if hasCL && hasTE && te != "identity" {
		c.srv.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		w.del("Content-Length")
		hasCL = false
	}
	switch {
	case w.isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		w.del("Transfer-Encoding")
	case hasCL:
		w.del("Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && te == "identity" {
			w.chunking = false
			w.closeAfterReply = true
			w.del("Transfer-Encoding")
		} else {
			w.chunking = true
			extraTE = "chunked"
			if hasTE && te == "chunked" {
				w.del("Transfer-Encoding")
			}
		}
	default:
		w.closeAfterReply = true
		w.del("Transfer-Encoding")
	}
	if w.chunking {
		w.del("Content-Length")
	}
	switchProto := code == http.StatusSwitchingProtocols && w.get("Upgrade") != "" && hasToken(w.get("Connection"), "upgrade")
	if w.closeAfterReply && (!keepAlives || !hasToken(w.get("Connection"), "close")) && !switchProto {
		w.del("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			extraConnection = "close"
		}
	}

	out := appendStatusLine(c.out, w.req.ProtoAtLeast(1, 1), code)
	out = w.appendFields(out)
	if addDate {
		out = append(out, "Date: "...)
		out = appendDate(out)
		out = append(out, '\r', '\n')
	}
	if extraCL >= 0 {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, extraCL, 10)
		out = append(out, '\r', '\n')
	}
	for _, kv := range [...][2]string{{"Content-Type", extraType}, {"Connection", extraConnection}, {"Transfer-Encoding", extraTE}} {
		if kv[1] != "" {
			out = append(out, kv[0]...)
			out = append(out, ": "...)
			out = append(out, kv[1]...)
			out = append(out, '\r', '\n')
		}
	}
	c.out = append(out, '\r', '\n')
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

func appendStatusLine(b []byte, is11 bool, code int) []byte {
	if is11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	text := http.StatusText(code)
	if text == "" {
		return fmt.Appendf(b, "%03d status code %d\r\n", code, code)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, text...)
	return append(b, '\r', '\n')
}

// appendFields appends the header fields that were not dropped, in
// sorted order, with net/http's value clean-up: line breaks become spaces
// and surrounding whitespace goes. Fields with invalid names are left out.
func (w *ResponseWriter) appendFields(b []byte) []byte {
	for _, f := range w.fields {
		if f.deleted || !validFieldName(f.key) {
			continue
		}
		for _, v := range w.vals[f.start:f.end] {
			b = append(b, f.key...)
			b = append(b, ':', ' ')
			b = appendFieldValue(b, v)
			b = append(b, '\r', '\n')
		}
	}
	return b
}

func appendFieldValue(b []byte, v string) []byte {
	i, j := 0, len(v)
	for i < j && isOWS(v[i]) {
		i++
	}
	for j > i && isOWS(v[j-1]) {
		j--
	}
	for k := i; k < j; k++ {
		if c := v[k]; c == '\r' || c == '\n' {
			b = append(b, ' ')
		} else {
			b = append(b, c)
		}
	}
	return b
}

// validFieldName reports whether k is an RFC 7230 token.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool { return tokenBytes[c] }

// The Date header, formatted once per second.
type dateValue struct {
	sec int64
	b   [len(http.TimeFormat)]byte
}

var currentDate atomic.Pointer[dateValue]

func appendDate(b []byte) []byte {
	now := time.Now()
	sec := now.Unix()
	d := currentDate.Load()
	if d == nil || d.sec != sec {
		d = &dateValue{sec: sec}
		now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
		currentDate.Store(d)
	}
	return append(b, d.b[:]...)
}
