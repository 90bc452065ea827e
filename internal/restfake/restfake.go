// Package restfake is the common part of the fakes of the REST key
// services (keystore/gemalto/gemaltotest, keystore/fortanix/fortanixtest,
// keystore/entrust/entrusttest): an httptest TLS server around a vendor
// handler with fault injection. A fake that is "down" drops every
// connection without an answer, as a stopped service behind a load
// balancer does; a throttling fake answers every request with 429 or 503.
package restfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a TLS server with fault injection.
type Server struct {
	// URL is the base URL, e.g. https://127.0.0.1:4711.
	URL string

	srv      *httptest.Server
	caPEM    []byte
	down     atomic.Bool
	throttle atomic.Int32
}

// Start serves h over TLS until tb's test ends.
func Start(tb testing.TB, h http.Handler) *Server {
	tb.Helper()
	s := &Server{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if code := int(s.throttle.Load()); code != 0 {
			w.Header().Set("Retry-After", strconv.Itoa(1))
			http.Error(w, http.StatusText(code), code)
			return
		}
		h.ServeHTTP(w, r)
	}))
	// Clients that give up are part of the tests; their errors are noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	s.URL = s.srv.URL
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	tb.Cleanup(s.srv.Close)
	return s
}

// CACertPEM returns the server's self-signed certificate, to be trusted
// as a CA (through tls.ca). It is valid for 127.0.0.1, ::1 and
// example.com.
func (s *Server) CACertPEM() []byte { return slices.Clone(s.caPEM) }

// CAFile writes CACertPEM to a file in a temporary directory of tb and
// returns its path, for tls.ca.
func (s *Server) CAFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(path, s.caPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Client returns an HTTP client that trusts the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// SetDown makes the server drop every connection (true) or serve again.
// Idle connections are closed so that clients notice at once.
func (s *Server) SetDown(down bool) {
	s.down.Store(down)
	if down {
		s.srv.CloseClientConnections()
	}
}

// SetThrottle makes the server answer every request with code (429 or
// 503); 0 serves again.
func (s *Server) SetThrottle(code int) { s.throttle.Store(int32(code)) }

// WriteJSON answers with status and v as an application/json body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// RandomHex returns n random bytes in hex, for tokens and IDs.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Locked returns f() computed with mu held, for the getters of fakes.
func Locked[T any](mu *sync.Mutex, f func() T) T {
	mu.Lock()
	defer mu.Unlock()
	return f()
}

// WithLock calls f with mu held, for the setters of fakes.
func WithLock(mu *sync.Mutex, f func()) {
	mu.Lock()
	defer mu.Unlock()
	f()
}
