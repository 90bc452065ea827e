package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/mem"
)

// env is a server listening on 127.0.0.1 over real TLS, with an admin, a
// policy identity ("my-app") and a stranger (known to nobody).
type env struct {
	srv        *Server
	addr       string
	conf       *Config
	store      keystore.Store
	serverCert *testpki.Cert
	roots      *x509.CertPool
	admin      *testpki.Cert
	user       *testpki.Cert
	stranger   *testpki.Cert
	errLog     *syncBuffer
	audit      *auditRecorder
}

// testPolicy is the policy of env.user.
var testPolicy = Policy{
	Allow: []string{
		"/v1/key/create/my-app*",
		"/v1/key/generate/my-app*",
		"/v1/key/decrypt/my-app*",
		"/v1/key/describe/*",
		"/v1/identity/self/describe",
		"/v1/policy/describe/*",
		"/v1/status",
	},
	Deny: []string{"/v1/key/describe/my-app-internal*"},
}

// newEnv starts a server. modify may change the config before New.
func newEnv(t testing.TB, modify ...func(*Config)) *env {
	t.Helper()
	e := buildEnv(t, nil, modify...)
	e.serve(t, true)
	return e
}

// adminEnv is newEnv plus a client of the admin identity, which has
// created each of keys.
func adminEnv(t testing.TB, keys ...string) (*env, *http.Client) {
	t.Helper()
	e := newEnv(t)
	c := e.client(t, e.admin)
	for _, k := range keys {
		do(t, c, "POST", e.url("/v1/key/create/"+k), "").wantEmpty(t)
	}
	return e, c
}

// buildEnv returns an env with a new server that does not listen yet. If
// base is not nil, its certificates are reused; otherwise new ones are
// made. modify may change the config before New.
func buildEnv(t testing.TB, base *env, modify ...func(*Config)) *env {
	t.Helper()
	e := &env{errLog: new(syncBuffer), audit: new(auditRecorder)}
	if base != nil {
		e.serverCert, e.admin, e.user, e.stranger = base.serverCert, base.admin, base.user, base.stranger
	} else {
		e.serverCert = testpki.Server(t)
		e.admin = testpki.SelfSigned(t, testpki.Options{CommonName: "admin"})
		e.user = testpki.SelfSigned(t, testpki.Options{CommonName: "user"})
		e.stranger = testpki.SelfSigned(t, testpki.Options{CommonName: "stranger"})
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.serverCert.X509)
	p := testPolicy
	p.Identities = []string{e.user.Identity()}
	e.conf = &Config{
		Admin:    e.admin.Identity(),
		Policies: map[string]Policy{"my-app": p},
		Store:    mem.New(),
		TLS:      TLSConfig{GetCertificate: e.getCertificate},
		ErrorLog: slog.New(slog.NewTextHandler(e.errLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AuditLog: e.audit,
	}
	for _, m := range modify {
		m(e.conf)
	}
	e.store = e.conf.Store
	srv, err := New(t.Context(), e.conf)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	return e
}

// serve makes e.srv serve on a new listener on 127.0.0.1 and sets e.addr.
// The returned stop cancels Serve and waits for it to return; it runs
// when the test ends, before e.srv is closed, if the test has not called
// it. Serve must return nil, or, if tolerateClosed, the error of a server
// the test has closed itself.
func (e *env) serve(t testing.TB, tolerateClosed bool) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !(tolerateClosed && err.Error() == "server: closed") {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if err := e.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return stop
}

func (e *env) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &e.serverCert.TLS, nil
}

func (e *env) url(path string) string { return "https://" + e.addr + path }

// clientTLS returns a client TLS config presenting cert (none if nil).
func (e *env) clientTLS(cert *testpki.Cert) *tls.Config {
	c := &tls.Config{RootCAs: e.roots, ServerName: "localhost"}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	return c
}

// client returns an HTTP client (HTTP/2 when possible) presenting cert.
// It does not follow redirects.
func (e *env) client(t testing.TB, cert *testpki.Cert) *http.Client {
	t.Helper()
	return testpki.Client(t, &http.Transport{TLSClientConfig: e.clientTLS(cert), ForceAttemptHTTP2: true}, 20*time.Second)
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
	proto  int
}

// do sends one request and reads the whole response.
func do(t testing.TB, c *http.Client, method, url, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.ProtoMajor}
}

// wantStatus fails unless resp has the given status.
func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %q)", r.status, status, r.body)
	}
	return r
}

// wantError fails unless resp is the KES error with the given status and
// message, byte for byte.
func (r response) wantError(t testing.TB, status int, msg string) {
	t.Helper()
	r.want(t, status)
	want := `{"message":"` + msg + "\"\n}"
	if string(r.body) != want {
		t.Errorf("body = %q, want %q", r.body, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

// wantEmpty fails unless resp is an empty 200.
func (r response) wantEmpty(t testing.TB) {
	t.Helper()
	r.want(t, http.StatusOK)
	if len(r.body) != 0 || r.header.Get("Content-Length") != "0" {
		t.Errorf("body %q Content-Length %q, want empty", r.body, r.header.Get("Content-Length"))
	}
	if ct := r.header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type = %q, want none", ct)
	}
}

// decode decodes a 200 JSON body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	r.want(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.HasSuffix(r.body, []byte("}\n")) && !bytes.HasSuffix(r.body, []byte("]\n")) {
		t.Errorf("body %q does not end in a newline", r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer = keystoretest.LogBuffer

// auditRecorder is an AuditHandler that keeps every record.
type auditRecorder struct {
	mu      sync.Mutex
	records []AuditRecord
}

func (a *auditRecorder) HandleAudit(_ context.Context, r *AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = append(a.records, *r)
}

func (a *auditRecorder) all() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditRecord(nil), a.records...)
}

// flakyStore wraps a store and can be made unreachable or broken.
type flakyStore struct {
	keystoretest.FaultyStore
	down    atomic.Bool // every call fails with *keystore.UnreachableError
	broken  atomic.Bool // every call fails with a plain error
	panicky atomic.Bool // Create panics
}

func newFlakyStore(st keystore.Store) *flakyStore {
	s := &flakyStore{}
	s.FaultyStore = keystoretest.FaultyStore{Store: st, Fault: s.fault}
	return s
}

var errBroken = errors.New("store is broken")

func (s *flakyStore) fault(method string) error {
	if method == "Create" && s.panicky.Load() {
		panic("flakyStore: create panics")
	}
	switch {
	case s.down.Load():
		return &keystore.UnreachableError{Err: errors.New("connection refused")}
	case s.broken.Load():
		return errBroken
	}
	return nil
}

// closeCounter wraps a store and counts Close calls.
type closeCounter struct {
	keystore.Store
	closed atomic.Int32
}

func (s *closeCounter) Close() error {
	s.closed.Add(1)
	return s.Store.Close()
}

func newMemStore() keystore.Store { return mem.New() }
