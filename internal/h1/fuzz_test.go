package h1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzHeaderScanner checks that the streaming headerScanner, fed in
// arbitrary pieces, finds what scanHeader finds in the whole header.
func FuzzHeaderScanner(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nhOsT:  a.b:80 \n\nbody",
		"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost\r\n\r\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		want := scanHeader(b)
		var s headerScanner
		n := int(step%16) + 1
		for i := 0; i < len(b); i += n {
			s.feed(b[i:min(i+n, len(b))])
		}
		if s.h.complete != want.complete {
			t.Fatalf("complete = %v, want %v", s.h.complete, want.complete)
		}
		if want.complete && s.h != want {
			t.Fatalf("headerScanner(%q) = %+v, want %+v", b, s.h, want)
		}
	})
}

// fuzzHandler answers from what it learns of the request, so that two
// servers that parse differently answer differently.
func fuzzHandler(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var err error
	if !strings.HasPrefix(r.URL.Path, "/skip") {
		body, err = io.ReadAll(r.Body)
	}
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-URI", r.RequestURI)
	w.Header().Set("X-Host", r.Host)
	w.Header().Set("X-Proto", r.Proto)
	w.Header().Set("X-Length", fmt.Sprint(r.ContentLength, " ", r.TransferEncoding, " ", r.Close))
	if strings.HasPrefix(r.URL.Path, "/close") {
		w.Header().Set("Connection", "close")
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "body error\n")
		return
	}
	fmt.Fprintf(w, "%d %q\n", len(body), r.Header)
}

// fuzzServers are the two servers of FuzzDifferential, started once.
var fuzzServers struct {
	once      sync.Once
	own, std  string // addresses
	startErr  error
	quietLogs *log.Logger
}

func startFuzzServers() error {
	s := &fuzzServers
	s.once.Do(func() {
		s.quietLogs = log.New(io.Discard, "", 0)
		own, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.startErr = err
			return
		}
		std, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.startErr = err
			return
		}
		s.own, s.std = own.Addr().String(), std.Addr().String()
		go Serve(own, http.HandlerFunc(fuzzHandler), Timeouts{})
		hs := &http.Server{
			Handler:           http.HandlerFunc(fuzzHandler),
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			ErrorLog:          s.quietLogs,
		}
		go hs.Serve(std)
	})
	return s.startErr
}

var dateRE = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// exchange sends raw on a new connection to addr, half-closes it and
// returns everything the server sends until it closes the connection.
func exchange(ctx context.Context, addr string, raw []byte) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", err
	}
	// A reset after the answer (the server closed with input unread)
	// ends the transcript like a close.
	return dateRE.ReplaceAllString(string(b), "\r\nDate: <date>\r\n"), nil
}

// FuzzDifferential sends the same bytes to the request loop and to
// net/http's server with the same handler, followed by a probe request,
// and requires the same answer: status lines, headers (Date masked),
// bodies, and whether the connection stayed open for the probe.
func FuzzDifferential(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /close HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST /skip HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: a\r\nHost: x\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"garbage\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	const probe = "GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"
	f.Fuzz(func(t *testing.T, in []byte) {
		// Everything must reach the servers' first read (4 KiB), so that
		// no server closes with input unread: the kernel would reset
		// the connection and could destroy the answer on the way.
		if len(in)+len(probe) > 4000 {
			return
		}
		if bytes.HasPrefix(in, []byte("PRI")) {
			return // HTTP/2 prior knowledge: neither server speaks h2c
		}
		if err := startFuzzServers(); err != nil {
			t.Fatal(err)
		}
		raw := append(append([]byte{}, in...), probe...)
		var got [2]string
		var errs [2]error
		var wg sync.WaitGroup
		for i, addr := range []string{fuzzServers.own, fuzzServers.std} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = exchange(t.Context(), addr, raw)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs[0], errs[1]); err != nil {
			t.Fatalf("exchange %q: %v", raw, err)
		}
		if got[0] != got[1] {
			t.Fatalf("request %q:\nown loop: %q\nnet/http: %q", raw, got[0], got[1])
		}
	})
}
