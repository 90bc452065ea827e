package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/mem"
)

// Tests of the HTTP/1.1 loop (internal/h1) behind Serve, and of the
// connection handling of Serve (conn.go).

// h1Env is an env whose Serve can be stopped by the test.
type h1Env struct {
	*env
	stop func() // cancels Serve and waits for it to return
}

// startH1Env starts a server like newEnv. If base is not nil, its
// certificates are reused. knobs may set the test knobs of the Server
// before Serve.
func startH1Env(t *testing.T, base *env, knobs func(*Server), modify ...func(*Config)) *h1Env {
	t.Helper()
	e := buildEnv(t, base, modify...)
	if knobs != nil {
		knobs(e.srv)
	}
	return &h1Env{env: e, stop: e.serve(t, false)}
}

// rawConn is a raw HTTP/1.1 client connection.
type rawConn struct {
	t  *testing.T
	c  *tls.Conn
	br *bufio.Reader
}

// dialH1 opens a TLS connection that offers only ALPN "http/1.1" (or no
// ALPN if noALPN) and presents cert.
func dialH1(t *testing.T, e *env, cert *testpki.Cert, noALPN bool) *rawConn {
	t.Helper()
	conf := e.clientTLS(cert)
	if !noALPN {
		conf.NextProtos = []string{"http/1.1"}
	}
	c, err := tls.Dial("tcp", e.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// read reads one response (skipping 1xx responses) to a request with the
// given method, with its whole body.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	for {
		resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
		if err != nil {
			rc.t.Fatalf("read response: %v", err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			rc.t.Fatalf("read body: %v", err)
		}
		return resp, string(body)
	}
}

// closed reports whether the server closed the connection (within d).
func (rc *rawConn) closed(d time.Duration) bool {
	rc.c.SetReadDeadline(time.Now().Add(d))
	defer rc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := rc.br.ReadByte()
	if err == nil {
		rc.t.Errorf("unexpected data after the response")
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func h1Get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n"
}

func h1Post(path, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
}

func TestHTTP1KeepAlive(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	rc := dialH1(t, e.env, e.admin, false)
	rc.send(h1Post("/v1/key/create/k", ""))
	if resp, body := rc.read("POST"); resp.StatusCode != 200 {
		t.Fatalf("create: %s %s", resp.Status, body)
	}
	for i := range 50 {
		rc.send(h1Post("/v1/key/generate/k", `{"context":"YWJj"}`))
		resp, body := rc.read("POST")
		if resp.StatusCode != 200 || resp.Close || !strings.Contains(body, `"ciphertext":"`) {
			t.Fatalf("request %d: %s close=%v %s", i, resp.Status, resp.Close, body)
		}
	}
	if n := e.srv.http1Conns.Load(); n != 1 {
		t.Errorf("connections on the HTTP/1.1 loop = %d, want 1", n)
	}
	// A client without ALPN gets HTTP/1.1 as well.
	rc2 := dialH1(t, e.env, e.admin, true)
	rc2.send(h1Get("/version"))
	if resp, _ := rc2.read("GET"); resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Errorf("no ALPN: %s %s", resp.Proto, resp.Status)
	}
	if n := e.srv.http1Conns.Load(); n != 2 {
		t.Errorf("connections on the HTTP/1.1 loop = %d, want 2", n)
	}
}

func TestHTTP1Pipelining(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	rc := dialH1(t, e.env, e.admin, false)
	rc.send(h1Get("/version") + h1Get("/v1/key/describe/nope") + h1Post("/v1/key/create/k", ""))
	want := []int{200, 404, 200}
	for i, w := range want {
		resp, body := rc.read([]string{"GET", "GET", "POST"}[i])
		if resp.StatusCode != w {
			t.Errorf("response %d: %s %s, want %d", i, resp.Status, body, w)
		}
	}
	if rc.closed(100 * time.Millisecond) {
		t.Error("connection closed after pipelined requests")
	}
}

func TestHTTP1ChunkedRequestBody(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil, func(c *Config) { c.Keys = []string{"k"} })
	rc := dialH1(t, e.env, e.admin, false)
	rc.send("POST /v1/key/encrypt/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\n{\"pla\r\n" + "1c\r\nintext\":\"AAAA\",\"context\":\"\"}\r\n0\r\n\r\n")
	resp, body := rc.read("POST")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, `{"ciphertext":"`) {
		t.Fatalf("chunked encrypt: %s %s", resp.Status, body)
	}
	// And the connection goes on.
	rc.send(h1Get("/version"))
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
		t.Errorf("after a chunked body: %s", resp.Status)
	}
}

func TestHTTP1ExpectContinue(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil, func(c *Config) { c.Keys = []string{"k"} })
	rc := dialH1(t, e.env, e.admin, false)
	body := `{"context":"YWJj"}`
	rc.send(fmt.Sprintf("POST /v1/key/generate/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body)))
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line = %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := rc.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q", blank)
	}
	rc.send(body)
	resp, got := rc.read("POST")
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("generate: %s close=%v %s", resp.Status, resp.Close, got)
	}

	// A handler that does not read the body: no 100 Continue, and the
	// connection is closed after the answer.
	rc.send("PUT /version HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
	resp, _ = rc.read("PUT")
	if resp.StatusCode != 405 || !resp.Close {
		t.Errorf("PUT /version with Expect: %s close=%v, want 405 and close", resp.Status, resp.Close)
	}
}

func TestHTTP1ConnectionClose(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	tests := []struct {
		name, req  string
		wantProto  string
		wantHeader string // Connection header of the response
		wantClosed bool
	}{
		{"close", "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1", "close", true},
		{"http1.0", "GET /version HTTP/1.0\r\n\r\n", "HTTP/1.0", "close", true},
		{"http1.0 keep-alive", "GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.0", "keep-alive", false},
		{"http1.1", "GET /version HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := dialH1(t, e.env, e.admin, false)
			rc.send(tt.req)
			resp, _ := rc.read("GET")
			// ReadResponse turns "Connection: close" into resp.Close.
			conn := resp.Header.Get("Connection")
			if resp.Close {
				conn = "close"
			}
			if resp.StatusCode != 200 || resp.Proto != tt.wantProto || conn != tt.wantHeader {
				t.Errorf("%s %d Connection %q, want %s 200 Connection %q", resp.Proto, resp.StatusCode, conn, tt.wantProto, tt.wantHeader)
			}
			if got := rc.closed(200 * time.Millisecond); got != tt.wantClosed {
				t.Errorf("closed = %v, want %v", got, tt.wantClosed)
			}
		})
	}
}

func TestHTTP1Head(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	rc := dialH1(t, e.env, e.admin, false)
	rc.send("HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := rc.read("HEAD")
	if resp.StatusCode != 405 || resp.Header.Get("Accept") != "GET" || resp.ContentLength <= 0 || body != "" {
		t.Errorf("HEAD /version = %s Accept %q Content-Length %d body %q", resp.Status, resp.Header.Get("Accept"), resp.ContentLength, body)
	}
	rc.send("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body = rc.read("HEAD")
	if resp.StatusCode != 404 || resp.ContentLength != 19 || body != "" {
		t.Errorf("HEAD /nope = %s Content-Length %d body %q", resp.Status, resp.ContentLength, body)
	}
	// No stray body bytes: the connection is in sync.
	rc.send(h1Get("/version"))
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
		t.Errorf("GET after HEAD: %s", resp.Status)
	}
}

func TestHTTP1OversizedBody(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil, func(c *Config) { c.Keys = []string{"k"} })
	rc := dialH1(t, e.env, e.admin, false)
	body := `{"context":"` + strings.Repeat("A", 1_000_100) + `"}`
	go io.WriteString(rc.c, fmt.Sprintf("POST /v1/key/generate/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	resp, got := rc.read("POST")
	if resp.StatusCode != 400 || got != "{\"message\":\"invalid request body\"\n}" || !resp.Close {
		t.Errorf("oversized body: %s close=%v %q, want 400 invalid request body and close", resp.Status, resp.Close, got)
	}
	if !rc.closed(2 * time.Second) {
		t.Error("connection not closed")
	}
}

func TestHTTP1BadRequests(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	tests := []struct {
		name, req, wantStatus, wantBody string
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", "400 Bad Request", "400 Bad Request"},
		{"missing Host", "GET /version HTTP/1.1\r\n\r\n", "400 Bad Request: missing required Host header", "400 Bad Request: missing required Host header"},
		{"malformed Host", "GET /version HTTP/1.1\r\nHost: a b\r\n\r\n", "400 Bad Request: malformed Host header", "400 Bad Request: malformed Host header"},
		{"unsupported transfer encoding", "POST /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501 Not Implemented", "Unsupported transfer encoding"},
		{"HTTP/2.0 request line", "GET /version HTTP/2.0\r\nHost: x\r\n\r\n", "505 HTTP Version Not Supported: unsupported protocol version", "505 HTTP Version Not Supported: unsupported protocol version"},
		{"header too large", "GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n", "431 Request Header Fields Too Large", "431 Request Header Fields Too Large"},
		{"expectation", "GET /version HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", "417 Expectation Failed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := dialH1(t, e.env, e.admin, false)
			go io.WriteString(rc.c, tt.req)
			resp, body := rc.read("GET")
			if got := resp.Status; got != tt.wantStatus || body != tt.wantBody || !resp.Close {
				t.Errorf("got %q %q close=%v, want %q %q and close", got, body, resp.Close, tt.wantStatus, tt.wantBody)
			}
			if !rc.closed(2 * time.Second) {
				t.Error("connection not closed")
			}
		})
	}
}

func TestHTTP1Timeouts(t *testing.T) {
	t.Parallel()
	const d = 300 * time.Millisecond
	e := startH1Env(t, nil, func(s *Server) { s.idleTimeout, s.readHeaderTimeout = d, d })

	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		rc := dialH1(t, e.env, e.admin, false)
		rc.send(h1Get("/version"))
		rc.read("GET")
		start := time.Now()
		if !rc.closed(5 * time.Second) {
			t.Fatal("idle connection not closed")
		}
		if el := time.Since(start); el < d/2 {
			t.Errorf("idle connection closed after %v, want about %v", el, d)
		}
	})
	t.Run("first request", func(t *testing.T) {
		t.Parallel()
		rc := dialH1(t, e.env, e.admin, false)
		if !rc.closed(5 * time.Second) {
			t.Fatal("connection without request not closed")
		}
	})
	t.Run("header", func(t *testing.T) {
		t.Parallel()
		rc := dialH1(t, e.env, e.admin, false)
		rc.send(h1Get("/version"))
		rc.read("GET")
		// A header cut at a line end: at the timeout there is no
		// partial line that the parser would call malformed, so the
		// connection ends without an answer, as with net/http.
		rc.send("GET /version HTTP/1.1\r\nHost: x\r\n") // then nothing
		start := time.Now()
		if !rc.closed(5 * time.Second) {
			t.Fatal("connection with a partial header not closed")
		}
		if el := time.Since(start); el > 3*d {
			t.Errorf("partial header: closed after %v, want about %v", el, d)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		// A body is read without deadline, as net/http does.
		t.Parallel()
		rc := dialH1(t, e.env, e.admin, false)
		rc.send("POST /v1/key/create/k HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		rc.read("POST")
		rc.send("POST /v1/key/generate/k HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n{\"context\"")
		time.Sleep(2 * d)
		rc.send(`:"YWJj"}`)
		if resp, body := rc.read("POST"); resp.StatusCode != 200 {
			t.Errorf("slow body: %s %s", resp.Status, body)
		}
	})
}

func TestHTTP1LogStream(t *testing.T) {
	t.Parallel()
	e := startH1Env(t, nil, nil)
	rc := dialH1(t, e.env, e.admin, false)
	rc.send(h1Get("/v1/log/audit"))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream: %s %v %v", resp.Status, resp.Header, resp.TransferEncoding)
	}
	h1WaitFor(t, func() bool { return e.srv.auditHub.n.Load() == 1 })

	// Each event arrives on its own, flushed.
	c := e.client(t, e.admin)
	sc := bufio.NewScanner(resp.Body)
	for i := range 3 {
		path := fmt.Sprintf("/v1/key/describe/event-%d", i)
		do(t, c, "GET", e.url(path), "").want(t, 404)
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		if !strings.Contains(sc.Text(), `"path":"`+path+`"`) {
			t.Errorf("event %d = %s", i, sc.Text())
		}
	}

	// The client goes away: the handler ends.
	rc.c.Close()
	h1WaitFor(t, func() bool { return e.srv.auditHub.n.Load() == 0 })

	// A shutdown ends a stream at once, with the end of the chunked body.
	rc = dialH1(t, e.env, e.admin, false)
	rc.send(h1Get("/v1/log/error"))
	resp, err = http.ReadResponse(rc.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.stop()
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 0 {
		t.Errorf("stream at shutdown: %q, %v", b, err)
	}
	if d := time.Since(start); d > shutdownGrace {
		t.Errorf("shutdown with an open stream took %v", d)
	}
}

// h1WaitFor waits up to 5 s for cond.
func h1WaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// h1BlockingStore blocks Get of "slow" until release is closed.
type h1BlockingStore struct {
	keystore.Store
	entered chan struct{}
	release chan struct{}
}

func (s *h1BlockingStore) Get(ctx context.Context, name string) ([]byte, error) {
	if name == "slow" {
		close(s.entered)
		<-s.release
	}
	return s.Store.Get(ctx, name)
}

func TestHTTP1GracefulShutdown(t *testing.T) {
	t.Parallel()
	store := &h1BlockingStore{Store: mem.New(), entered: make(chan struct{}), release: make(chan struct{})}
	e := startH1Env(t, nil, nil, func(c *Config) { c.Store = store })

	idle := dialH1(t, e.env, e.admin, false)
	idle.send(h1Get("/version"))
	idle.read("GET")

	busy := dialH1(t, e.env, e.admin, false)
	busy.send(h1Get("/v1/key/describe/slow"))
	<-store.entered

	stopped := make(chan struct{})
	go func() {
		e.stop()
		close(stopped)
	}()
	if !idle.closed(2 * time.Second) {
		t.Error("idle connection not closed at shutdown")
	}
	select {
	case <-stopped:
		t.Fatal("Serve returned before the in-flight request finished")
	case <-time.After(100 * time.Millisecond):
	}
	close(store.release)
	resp, body := busy.read("GET")
	if resp.StatusCode != 404 || body != "{\"message\":\"key does not exist\"\n}" || !resp.Close {
		t.Errorf("in-flight request: %s close=%v %q, want 404 and Connection: close", resp.Status, resp.Close, body)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestHTTP1PanicKeepsServing(t *testing.T) {
	t.Parallel()
	store := &flakyStore{Store: mem.New()}
	e := startH1Env(t, nil, nil, func(c *Config) { c.Store = store })
	store.panicky.Store(true)
	rc := dialH1(t, e.env, e.admin, false)
	rc.send(h1Post("/v1/key/create/k", ""))
	if resp, _ := rc.read("POST"); resp.StatusCode != 500 {
		t.Errorf("panicking handler: %s, want 500", resp.Status)
	}
	rc.send(h1Get("/version"))
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
		t.Errorf("after a panic: %s", resp.Status)
	}
}

// TestHTTP1Protocols checks that HTTP/2 is still served by net/http, that
// the kill switch hands HTTP/1.1 to net/http, and that requests carry the
// TLS state on every path (self-describe needs the client certificate).
func TestHTTP1Protocols(t *testing.T) {
	t.Parallel()
	for _, stdlib := range []bool{false, true} {
		t.Run(fmt.Sprintf("HTTP1Stdlib=%v", stdlib), func(t *testing.T) {
			t.Parallel()
			e := startH1Env(t, nil, nil, func(c *Config) { c.HTTP1Stdlib = stdlib })
			h2 := e.client(t, e.admin)
			h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientTLS(e.admin)}}
			t.Cleanup(h1.CloseIdleConnections)
			for _, c := range []*http.Client{h2, h1} {
				var self h1Self
				resp := do(t, c, "GET", e.url("/v1/identity/self/describe"), "")
				resp.decode(t, &self)
				if self.Identity != e.admin.Identity() {
					t.Errorf("HTTP/%d: self identity = %q", resp.proto, self.Identity)
				}
			}
			want := int64(1)
			if stdlib {
				want = 0
			}
			if n := e.srv.http1Conns.Load(); n != want {
				t.Errorf("connections on the HTTP/1.1 loop = %d, want %d", n, want)
			}
			if resp := do(t, h2, "GET", e.url("/version"), ""); resp.proto != 2 {
				t.Errorf("h2 client got HTTP/%d", resp.proto)
			}
		})
	}
}

// h1Self is the part of the self-describe answer the tests need.
type h1Self struct {
	Identity string `json:"identity"`
}

// h1Rand is a deterministic io.Reader for Config.Rand.
type h1Rand struct {
	mu sync.Mutex
	n  byte
}

func (r *h1Rand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range p {
		p[i] = r.n
		r.n = r.n*31 + 7
	}
	return len(p), nil
}

// h1Exchange sends raw on a new connection and records everything the
// server sends back: the responses to methods (one per expected final
// response), with Date values masked, and whether the server then closed
// the connection. If headerOnly, only the header of the first response is
// read (streams).
func h1Exchange(t *testing.T, e *env, cert *testpki.Cert, raw string, methods []string, headerOnly bool) string {
	t.Helper()
	conf := e.clientTLS(cert)
	conf.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", e.addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go io.WriteString(c, raw) // may block until the server reads
	rec := &h1Recorder{r: c}
	br := bufio.NewReader(rec)
	for _, m := range methods {
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: m})
			if err != nil {
				fmt.Fprintf(&rec.buf, "\n[read error: %v]", err)
				return h1MaskDate(rec.String())
			}
			if headerOnly {
				return h1MaskDate(rec.String()[:strings.Index(rec.String(), "\r\n\r\n")+4])
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				fmt.Fprintf(&rec.buf, "\n[body error: %v]", err)
			}
			if resp.StatusCode >= 200 {
				break
			}
		}
	}
	// Is the connection still open? A server that keeps it answers one
	// more request; one that closes it does not read it. (No timing:
	// waiting for a close that may come late would make this flaky.)
	got := h1MaskDate(rec.String())
	if br.Buffered() > 0 {
		return got + "\n[more data]"
	}
	if _, err := io.WriteString(c, "GET /sentinel HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return got + "\n[closed]"
	}
	if _, err := http.ReadResponse(br, &http.Request{Method: "GET"}); err != nil {
		return got + "\n[closed]"
	}
	return got + "\n[open]"
}

// h1Recorder keeps a copy of what is read through it.
type h1Recorder struct {
	r   io.Reader
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *h1Recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.buf.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *h1Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

var h1DateRE = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

func h1MaskDate(s string) string { return h1DateRE.ReplaceAllString(s, "\r\nDate: <date>\r\n") }

// h1VariableBody masks the body of responses whose content changes from
// call to call (status, metrics): only the status line and the header
// names are kept.
func h1VariableBody(s string) string {
	head, _, _ := strings.Cut(s, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	for i := 1; i < len(lines); i++ {
		k, _, _ := strings.Cut(lines[i], ":")
		lines[i] = k
	}
	return strings.Join(lines, "\n")
}

// TestHTTP1Identical sends the same requests to a server on its own
// HTTP/1.1 loop and to one with Config.HTTP1Stdlib (net/http) and
// requires the same bytes back, Date values aside, and the same
// connection handling. Both servers have the same certificates, clock and
// random source, and get the requests in the same order.
func TestHTTP1Identical(t *testing.T) {
	t.Parallel()
	// A fixed clock, but within the validity of the test certificates.
	now := time.Now().Truncate(time.Second).UTC()
	setup := func(stdlib bool) func(*Config) {
		return func(c *Config) {
			c.HTTP1Stdlib = stdlib
			c.Now = func() time.Time { return now }
			c.Rand = &h1Rand{}
			c.Keys = []string{"k"}
		}
	}
	fast := startH1Env(t, nil, nil, setup(false))
	std := startH1Env(t, fast.env, nil, setup(true))

	const h = "Host: localhost\r\n"
	req := func(method, path, headers, body string) string {
		if body != "" || method == "POST" || method == "PUT" {
			headers += fmt.Sprintf("Content-Length: %d\r\n", len(body))
		}
		return method + " " + path + " HTTP/1.1\r\n" + h + headers + "\r\n" + body
	}
	big := strings.Repeat("a", 300<<10)
	tests := []struct {
		name       string
		raw        string
		methods    []string // one per final response
		as         string   // "user" or "stranger"; default admin
		vary       bool     // the body changes between calls
		headerOnly bool
	}{
		// Every route.
		{name: "version", raw: req("GET", "/version", "", "")},
		{name: "ready", raw: req("GET", "/v1/ready", "", "")},
		{name: "status", raw: req("GET", "/v1/status", "", ""), vary: true},
		{name: "metrics", raw: req("GET", "/v1/metrics", "", ""), vary: true},
		{name: "api", raw: req("GET", "/v1/api", "", "")},
		{name: "create", raw: req("POST", "/v1/key/create/k2", "", "")},
		{name: "create exists", raw: req("PUT", "/v1/key/create/k2", "", "")},
		{name: "import", raw: req("POST", "/v1/key/import/k3", "", `{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","cipher":"AES256"}`)},
		{name: "import bad", raw: req("POST", "/v1/key/import/k4", "", `{"key":"AAAA","cipher":"AES256"}`)},
		{name: "import bad body", raw: req("POST", "/v1/key/import/k4", "", `[`)},
		{name: "describe", raw: req("GET", "/v1/key/describe/k", "", "")},
		{name: "describe missing", raw: req("GET", "/v1/key/describe/nope", "", "")},
		{name: "list", raw: req("GET", "/v1/key/list/*", "", "")},
		{name: "list no slash", raw: req("GET", "/v1/key/list", "", "")},
		{name: "list bad pattern", raw: req("GET", "/v1/key/list/a%2Fb", "", "")},
		{name: "generate", raw: req("POST", "/v1/key/generate/k", "", `{"context":"YWJj"}`)},
		{name: "generate no body", raw: req("POST", "/v1/key/generate/k", "", "")},
		{name: "encrypt", raw: req("PUT", "/v1/key/encrypt/k", "", `{"plaintext":"AAAA","context":"YWJj"}`)},
		{name: "decrypt bad", raw: req("POST", "/v1/key/decrypt/k", "", `{"ciphertext":"AAAA"}`)},
		{name: "decrypt bad body", raw: req("POST", "/v1/key/decrypt/k", "", `{`)},
		{name: "hmac", raw: req("POST", "/v1/key/hmac/k", "", `{"message":"AAAA"}`)},
		{name: "delete", raw: req("DELETE", "/v1/key/delete/k3", "", "")},
		{name: "delete missing", raw: req("DELETE", "/v1/key/delete/k3", "", "")},
		{name: "invalid key name", raw: req("GET", "/v1/key/describe/a%20b", "", "")},
		{name: "policy describe", raw: req("GET", "/v1/policy/describe/my-app", "", "")},
		{name: "policy read", raw: req("GET", "/v1/policy/read/my-app", "", "")},
		{name: "policy missing", raw: req("GET", "/v1/policy/read/nope", "", "")},
		{name: "policy list", raw: req("GET", "/v1/policy/list/*", "", "")},
		{name: "identity describe", raw: req("GET", "/v1/identity/describe/"+fast.user.Identity(), "", "")},
		{name: "identity missing", raw: req("GET", "/v1/identity/describe/nope", "", "")},
		{name: "identity list", raw: req("GET", "/v1/identity/list/*", "", "")},
		{name: "self", raw: req("GET", "/v1/identity/self/describe", "", "")},
		{name: "self user", raw: req("GET", "/v1/identity/self/describe", "", ""), as: "user"},
		{name: "error log", raw: req("GET", "/v1/log/error", "", ""), headerOnly: true},
		{name: "audit log", raw: req("GET", "/v1/log/audit", "", ""), headerOnly: true},

		// Errors of the router.
		{name: "not found", raw: req("GET", "/v1/nope", "", "")},
		{name: "wrong method", raw: req("DELETE", "/v1/key/create/x", "", "")},
		{name: "not allowed", raw: req("GET", "/v1/key/describe/k", "", ""), as: "stranger"},
		{name: "denied by policy", raw: req("GET", "/v1/key/describe/my-app-internal", "", ""), as: "user"},
		{name: "redirect GET", raw: req("GET", "/v1//key/describe/k", "", "")},
		{name: "redirect POST", raw: req("POST", "/v1/./key/create/x?a=b", "", "")},

		// Protocol corners.
		{name: "HEAD on GET route", raw: req("HEAD", "/version", "", ""), methods: []string{"HEAD"}},
		{name: "HEAD unknown route", raw: req("HEAD", "/nope", "", ""), methods: []string{"HEAD"}},
		{name: "HEAD redirect", raw: req("HEAD", "/v1//status", "", ""), methods: []string{"HEAD"}},
		{name: "HTTP/1.0", raw: "GET /version HTTP/1.0\r\n\r\n"},
		{name: "HTTP/1.0 keep-alive", raw: "GET /version HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{name: "HTTP/1.0 keep-alive error", raw: "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{name: "HTTP/1.0 POST", raw: "POST /v1/key/generate/k HTTP/1.0\r\nContent-Length: 18\r\n\r\n{\"context\":\"YWJj\"}"},
		{name: "connection close", raw: req("GET", "/version", "Connection: close\r\n", "")},
		{name: "connection close error", raw: req("GET", "/v1/key/describe/nope", "Connection: close\r\n", "")},
		{name: "pipelined", raw: req("GET", "/version", "", "") + req("POST", "/v1/key/generate/k", "", `{}`) + req("GET", "/nope", "", ""), methods: []string{"GET", "POST", "GET"}},
		{name: "chunked body", raw: "POST /v1/key/generate/k HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\r\n{\"c\r\nf\r\nontext\":\"YWJj\"}\r\n0\r\n\r\n"},
		{name: "chunked body bad", raw: "POST /v1/key/generate/k HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{name: "POST trailing CRLF", raw: req("POST", "/v1/key/generate/k", "", `{}`) + "\r\n" + req("GET", "/version", "", ""), methods: []string{"POST", "GET"}},
		{name: "expect continue", raw: req("POST", "/v1/key/generate/k", "Expect: 100-continue\r\n", `{"context":"YWJj"}`)},
		{name: "expect continue unread", raw: req("PUT", "/version", "Expect: 100-continue\r\n", `{}`)},
		{name: "expect other", raw: req("GET", "/version", "Expect: magic\r\n", "")},
		{name: "unread body", raw: req("POST", "/version", "", "hello") + req("GET", "/version", "", ""), methods: []string{"POST", "GET"}},
		{name: "unread big body", raw: req("POST", "/version", "", big)},
		{name: "unread big chunked body", raw: "POST /version HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)},
		{name: "oversized body", raw: req("POST", "/v1/key/decrypt/k", "", `{"ciphertext":"`+strings.Repeat("A", 1_000_100)+`"}`)},
		{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\n" + h + "\r\n"},
		{name: "malformed request line", raw: "GARBAGE\r\n\r\n"},
		{name: "bad method", raw: "G(T /version HTTP/1.1\r\n" + h + "\r\n"},
		{name: "missing Host", raw: "GET /version HTTP/1.1\r\n\r\n"},
		{name: "empty Host", raw: "GET /version HTTP/1.1\r\nHost:\r\n\r\n"},
		{name: "absolute URI", raw: "GET https://localhost/version HTTP/1.1\r\nHost: other\r\n\r\n"},
		{name: "malformed Host", raw: "GET /version HTTP/1.1\r\nHost: a/b\r\n\r\n"},
		{name: "two Hosts", raw: "GET /version HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "invalid header name", raw: "GET /version HTTP/1.1\r\n" + h + "Bad Name: x\r\n\r\n"},
		{name: "invalid header value", raw: "GET /version HTTP/1.1\r\n" + h + "X: a\x00b\r\n\r\n"},
		{name: "unsupported transfer encoding", raw: "POST /version HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n"},
		{name: "CL and TE", raw: "POST /v1/key/generate/k HTTP/1.1\r\n" + h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
		{name: "bad Content-Length", raw: "POST /version HTTP/1.1\r\n" + h + "Content-Length: x\r\n\r\n"},
		{name: "HTTP/2.0 request line", raw: "GET /version HTTP/2.0\r\n" + h + "\r\n"},
		{name: "header too large", raw: "GET /version HTTP/1.1\r\n" + h + "X-Big: " + strings.Repeat("a", 1<<20+8192) + "\r\n\r\n"},
		{name: "bare LF", raw: "GET /version HTTP/1.1\n" + h + "\n"},
	}
	certs := map[string]*testpki.Cert{"": fast.admin, "user": fast.user, "stranger": fast.stranger}
	for _, tt := range tests {
		methods := tt.methods
		if methods == nil {
			methods = []string{strings.Fields(tt.raw)[0]}
		}
		// Both servers at once, the requests one after the other: the
		// servers consume their random sources in the same order.
		var got [2]string
		var wg sync.WaitGroup
		for i, e := range []*env{fast.env, std.env} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = h1Exchange(t, e, certs[tt.as], tt.raw, methods, tt.headerOnly)
				if tt.vary {
					got[i] = h1VariableBody(got[i])
				}
			}()
		}
		wg.Wait()
		if !strings.HasPrefix(got[0], "HTTP/1.") {
			t.Errorf("%s: no response: %s", tt.name, got[0])
		}
		if diff := cmp.Diff(got[1], got[0]); diff != "" {
			t.Errorf("%s: own loop and net/http differ (-net/http +own):\n%s", tt.name, diff)
		} else if testing.Verbose() {
			t.Logf("%s:\n%s", tt.name, got[0])
		}
	}
}

// h1TestHandler exercises the ResponseWriter the way generic handlers
// may, one case per path.
func h1TestHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	fill := func(n int) []byte { return bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n] }
	switch r.URL.Path {
	case "/empty":
	case "/small":
		io.WriteString(w, "hello")
	case "/big":
		for range 50 {
			w.Write(fill(100))
		}
	case "/big-single":
		w.Write(fill(5000))
	case "/small-then-big":
		w.Write(fill(100))
		w.Write(fill(3000))
	case "/exactly-2048":
		w.Write(fill(2048))
	case "/2049":
		w.Write(fill(2048))
		w.Write(fill(1))
	case "/flush":
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
		http.NewResponseController(w).Flush()
		w.Write(fill(3000))
	case "/flush-empty":
		w.(http.Flusher).Flush()
		io.WriteString(w, "<html><body>late</body></html>")
	case "/flush-cl":
		h.Set("Content-Length", "10")
		io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		io.WriteString(w, "67890")
	case "/big-cl":
		h.Set("Content-Length", "200000")
		for range 100 {
			w.Write(fill(2000))
		}
	case "/sniff":
		io.WriteString(w, "<html><body>x</body></html>")
	case "/content-encoding":
		h.Set("Content-Encoding", "gzip")
		io.WriteString(w, "<html>")
	case "/te-chunked":
		h.Set("Transfer-Encoding", "chunked")
		io.WriteString(w, "data")
	case "/te-identity":
		h.Set("Transfer-Encoding", "identity")
		io.WriteString(w, "data")
	case "/te-and-cl":
		h.Set("Transfer-Encoding", "chunked")
		h.Set("Content-Length", "4")
		io.WriteString(w, "data")
	case "/cl-invalid":
		h.Set("Content-Length", "abc")
		io.WriteString(w, "data")
	case "/cl-short":
		h.Set("Content-Length", "10")
		io.WriteString(w, "data")
	case "/cl-over":
		h.Set("Content-Length", "3")
		io.WriteString(w, "data")
	case "/204":
		h.Set("Content-Length", "5")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
		io.WriteString(w, "x")
	case "/304":
		h.Set("Content-Length", "5")
		h.Set("Content-Type", "text/plain")
		h.Set("Etag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	case "/103":
		h.Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		h.Set("X-Final", "yes")
		io.WriteString(w, "final")
	case "/status-unknown":
		w.WriteHeader(599)
	case "/header-values":
		h["X-Spaced"] = []string{"  spaced \t"}
		h["X-Lines"] = []string{"line1\r\nline2\nline3"}
		h["X-Multi"] = []string{"a", "b"}
		h["X-Empty"] = []string{}
		h["Bad Key"] = []string{"x"}
		h["lower-case"] = []string{"y"}
		io.WriteString(w, "ok")
	case "/superfluous":
		w.WriteHeader(201)
		w.WriteHeader(202)
		io.WriteString(w, "x")
	case "/header-after":
		w.WriteHeader(200)
		h.Set("X-Late", "1")
		io.WriteString(w, "x")
	case "/conn-close":
		h.Set("Connection", "close")
		io.WriteString(w, "bye")
	case "/conn-keep-alive":
		h.Set("Connection", "keep-alive")
		h.Set("Content-Length", "2")
		io.WriteString(w, "hi")
	case "/date":
		h.Set("Date", "Thu, 01 Jan 1970 00:00:00 GMT")
		io.WriteString(w, "x")
	case "/abort":
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	case "/panic":
		io.WriteString(w, "partial")
		panic("test panic")
	case "/read-half":
		io.ReadFull(r.Body, make([]byte, 5))
		io.WriteString(w, "half")
	case "/read-all":
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	case "/close-body":
		r.Body.Close()
		io.WriteString(w, "closed")
	case "/close-body-read":
		r.Body.Close()
		_, err := r.Body.Read(make([]byte, 1))
		io.WriteString(w, err.Error())
	case "/write-error":
		w.WriteHeader(http.StatusNoContent)
		_, err := w.Write([]byte("x"))
		h.Set("X-Ignored", "1")
		fmt.Fprint(io.Discard, err)
	}
}

// TestHTTP1WriterIdentical is TestHTTP1Identical for generic handler
// behaviour: the same handler behind both servers.
func TestHTTP1WriterIdentical(t *testing.T) {
	t.Parallel()
	knobs := func(s *Server) { s.testHandler = http.HandlerFunc(h1TestHandler) }
	fast := startH1Env(t, nil, knobs)
	std := startH1Env(t, fast.env, knobs, func(c *Config) { c.HTTP1Stdlib = true })

	paths := []string{"/empty", "/small", "/big", "/big-single", "/small-then-big", "/exactly-2048", "/2049",
		"/flush", "/flush-empty", "/flush-cl", "/big-cl", "/sniff", "/content-encoding", "/te-chunked",
		"/te-identity", "/te-and-cl", "/cl-invalid", "/cl-short", "/cl-over", "/204", "/304", "/103",
		"/status-unknown", "/header-values", "/superfluous", "/header-after", "/conn-close", "/conn-keep-alive",
		"/date", "/abort", "/panic", "/write-error"}
	type tcase struct {
		name, raw string
		methods   []string
	}
	var tests []tcase
	for _, p := range paths {
		tests = append(tests,
			tcase{"GET " + p, "GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET"}},
			tcase{"HEAD " + p, "HEAD " + p + " HTTP/1.1\r\nHost: x\r\n\r\n", []string{"HEAD"}},
			tcase{"1.0 " + p, "GET " + p + " HTTP/1.0\r\n\r\n", []string{"GET"}},
			tcase{"1.0 keep-alive " + p, "GET " + p + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []string{"GET"}},
		)
	}
	for _, p := range []string{"/read-half", "/read-all", "/close-body", "/close-body-read", "/small"} {
		tests = append(tests,
			tcase{"POST " + p, h1Post(p, "0123456789") + h1Get("/small"), []string{"POST", "GET"}},
			tcase{"POST chunked " + p, "POST " + p + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n" + h1Get("/small"), []string{"POST", "GET"}},
			tcase{"POST big " + p, h1Post(p, strings.Repeat("x", 300<<10)) + h1Get("/small"), []string{"POST", "GET"}},
			tcase{"POST close " + p, "POST " + p + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n0123456789", []string{"POST"}},
			tcase{"POST expect " + p, "POST " + p + " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n0123456789" + h1Get("/small"), []string{"POST", "GET"}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got [2]string
			var wg sync.WaitGroup
			for i, e := range []*env{fast.env, std.env} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = h1Exchange(t, e, e.admin, tt.raw, tt.methods, false)
				}()
			}
			wg.Wait()
			if diff := cmp.Diff(got[1], got[0]); diff != "" {
				t.Errorf("own loop and net/http differ (-net/http +own):\n%s", diff)
			} else if testing.Verbose() {
				t.Logf("%s", got[0])
			}
		})
	}
}
