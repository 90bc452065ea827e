package server

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

// connCounts returns the connections and unauthenticated connections of
// all running Serve calls.
func (s *Server) connCounts() (total, unauth int, evicted int64) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for cs := range s.connServers {
		n, u := cs.counts()
		total, unauth, evicted = total+n, unauth+u, evicted+cs.evicted.Load()
	}
	return total, unauth, evicted
}

// waitCounts waits until cond holds for the connection counts.
func waitCounts(t *testing.T, s *Server, cond func(total, unauth int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		total, unauth, _ := s.connCounts()
		if cond(total, unauth) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection counts: total %d, unauthenticated %d", total, unauth)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStalledConnections opens a few hundred connections that stall in
// every phase (before the TLS handshake, in a header, in a body, idle)
// from clients with an unknown certificate, and checks that the
// unauthenticated budget and the cap hold, and that known identities are
// served meanwhile, over HTTP/1.1 (both loops) and HTTP/2.
//
// Not parallel: its hundreds of handshakes would slow down the tests
// that run beside it (and do, under -race).
func TestStalledConnections(t *testing.T) {
	for _, stdlib := range []bool{false, true} {
		name := "own"
		if stdlib {
			name = "stdlib"
		}
		t.Run(name, func(t *testing.T) {
			const budget, limit, stalled = 32, 128, 200
			e := newEnv(t, func(c *Config) {
				c.HTTP1Stdlib = stdlib
				c.Limits = Limits{Connections: limit, UnauthenticatedConnections: budget}
			})
			stranger := testpki.SelfSigned(t, testpki.Options{CommonName: "unknown"})
			stalls := []string{
				"", // handshake only: idle
				"POST /v1/key/create/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", // body never sent
				"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: ",                             // header never finished
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var conns []net.Conn
			for i := range stalled {
				wg.Add(1)
				go func() {
					defer wg.Done()
					raw, err := net.Dial("tcp", e.addr)
					if err != nil {
						return // refused or reset: fine, the server protects itself
					}
					mu.Lock()
					conns = append(conns, raw)
					mu.Unlock()
					if i%4 == 3 {
						return // never starts the TLS handshake
					}
					c := tls.Client(raw, e.clientTLS(stranger))
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if c.Handshake() != nil {
						return // evicted during the handshake
					}
					io.WriteString(c, stalls[i%4%len(stalls)])
				}()
			}
			t.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			wg.Wait()

			total, unauth, evicted := e.srv.connCounts()
			if unauth > budget || total > limit {
				t.Errorf("after %d stalled connections: %d connections, %d unauthenticated; want at most %d, %d", stalled, total, unauth, limit, budget)
			}
			// How many were evicted depends on how many handshakes
			// ended on their own first (a slow machine).
			t.Logf("%d stalled connections: %d unauthenticated ones evicted", stalled, evicted)
			// Known identities are served, over HTTP/2 and HTTP/1.1,
			// while the stalled connections stay open.
			h1 := e.client(t, e.user)
			h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
			h1.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			for _, c := range []*http.Client{e.client(t, e.admin), h1} {
				do(t, c, "GET", e.url("/v1/status"), "").want(t, http.StatusOK)
			}
			if _, unauth, _ := e.srv.connCounts(); unauth > budget {
				t.Errorf("%d unauthenticated connections, want at most %d", unauth, budget)
			}
		})
	}
}

// TestConnectionLimit checks that the cap counts HTTP/1.1 and HTTP/2
// connections of known identities, refuses connections past it, and
// frees a slot when a connection closes.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	const limit = 4
	e := newEnv(t, func(c *Config) { c.Limits = Limits{Connections: limit, UnauthenticatedConnections: 2} })
	dial := func(proto string) (*tls.Conn, error) {
		conf := e.clientTLS(e.admin)
		conf.NextProtos = []string{proto}
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", e.addr, conf)
		if err != nil {
			return nil, err
		}
		// TLS 1.3 client handshakes end before the server's: a refused
		// connection shows on the first read.
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				c.Close()
				return nil, err
			}
		}
		c.SetReadDeadline(time.Time{})
		return c, nil
	}
	var open []*tls.Conn
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	for i := range limit {
		c, err := dial([]string{"h2", "http/1.1"}[i%2])
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
		open = append(open, c)
	}
	waitCounts(t, e.srv, func(total, unauth int) bool { return total == limit && unauth == 0 })
	if c, err := dial("http/1.1"); err == nil {
		c.Close()
		t.Fatalf("connection past the cap of %d was accepted", limit)
	}
	open[0].Close()
	open = open[1:]
	waitCounts(t, e.srv, func(total, _ int) bool { return total < limit })
	c, err := dial("http/1.1")
	if err != nil {
		t.Fatalf("connection after one closed: %v", err)
	}
	open = append(open, c)
}

// TestStalledBody checks that a request whose body never arrives is
// answered and its connection closed, on both HTTP/1.1 loops, instead of
// holding the connection:
//   - denied: a request denied before its body is read (403 for an
//     unknown identity); the server drains an unread body only briefly
//     (1 s), well within the client's 10 s here and before the 15 s body
//     timeout.
//   - known: a known identity's request, within the route's timeout
//     (here 1 s: the body has 3/4 of it).
func TestStalledBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		known      bool // the admin sends the request, not the stranger
		req        string
		wantStatus int
		wantBody   string // "" for any
	}{
		{"denied", false, "PUT /v1/key/create/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", http.StatusForbidden, ""},
		{"known", true, "PUT /v1/key/import/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", http.StatusBadRequest,
			"{\"message\":\"invalid import key request body\"\n}"},
	}
	for _, tt := range tests {
		for _, stdlib := range []bool{false, true} {
			t.Run(tt.name+"/"+map[bool]string{false: "own", true: "stdlib"}[stdlib], func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *Config) {
					c.HTTP1Stdlib = stdlib
					c.Routes = map[string]RouteConfig{"/v1/key/import/": {Timeout: time.Second}}
				})
				cert := e.stranger
				if tt.known {
					cert = e.admin
				}
				rc := dialH1(t, e, cert, false)
				rc.c.SetDeadline(time.Now().Add(10 * time.Second))
				rc.send(tt.req)
				resp, body := rc.read("PUT")
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
				}
				if tt.wantBody != "" && body != tt.wantBody {
					t.Errorf("body = %q, want %q", body, tt.wantBody)
				}
				if !resp.Close {
					t.Errorf("response keeps the connection, want Connection: close")
				}
				if !rc.closed(5 * time.Second) {
					t.Errorf("connection still open after the answer")
				}
			})
		}
	}
}
