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
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore/mem"
)

// fuzzMethods are the request methods FuzzHandler picks from.
var fuzzMethods = []string{"GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "get"}

// fuzzPrefixes are put in front of the fuzzed path: every route, some
// legacy routes and nothing at all.
var fuzzPrefixes = func() []string {
	p := []string{""}
	for _, r := range api.Routes() {
		p = append(p, r.Path)
	}
	p = append(p, "/v1/key/bulk/decrypt/", "/v1/secret/create/", "/v1/key/list", "/v1/policy/")
	// After the legacy routes, so that the indices of the seeds stay.
	for _, r := range api.LifecycleRoutes() {
		p = append(p, r.Path)
	}
	return p
}()

// panicLog is an error-log handler that remembers whether a recovered
// panic was logged.
type panicLog struct {
	panics atomic.Int64
	last   atomic.Value // string
}

func (h *panicLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		h.panics.Add(1)
		h.last.Store(r.Message)
	}
	return nil
}

func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

// fuzzServer is an in-process server with an admin, a policy identity
// ("my-app", testPolicy) and a stranger, and keys of every stored kind.
type fuzzServer struct {
	srv                    *Server
	admin, user, stranger  *x509.Certificate
	log                    *panicLog
	canceled               context.Context
	adminID, userID, notID string
}

func newFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	admin := testpki.SelfSigned(tb, testpki.Options{CommonName: "admin"})
	user := testpki.SelfSigned(tb, testpki.Options{CommonName: "user"})
	stranger := testpki.SelfSigned(tb, testpki.Options{CommonName: "stranger"})
	store := mem.New()
	ctx := context.Background()
	for name, value := range map[string]string{
		"legacy":  `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		"corrupt": "not a key",
	} {
		if err := store.Create(ctx, name, []byte(value)); err != nil {
			tb.Fatal(err)
		}
	}
	p := testPolicy
	p.Identities = []string{user.Identity()}
	log := new(panicLog)
	srv, err := New(ctx, &Config{
		Admin:    admin.Identity(),
		Policies: map[string]Policy{"my-app": p},
		Keys:     []string{"my-key", "my-app-key"},
		Store:    store,
		TLS:      TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("in-process") }},
		ErrorLog: slog.New(log),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	return &fuzzServer{
		srv: srv, admin: admin.X509, user: user.X509, stranger: stranger.X509, log: log, canceled: canceled,
		adminID: admin.Identity(), userID: user.Identity(), notID: stranger.Identity(),
	}
}

// fuzzRequest is an in-process HTTP/1.1 request without TLS.
func fuzzRequest(method, path string, body []byte) *http.Request {
	r := &http.Request{
		Method:        method,
		URL:           &url.URL{Path: path},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          "localhost",
		RemoteAddr:    "192.0.2.1:1234",
	}
	r.RequestURI = r.URL.RequestURI()
	return r
}

// fuzzCaller selects the client: admin, policy identity, stranger, a
// connection without TLS, a TLS connection without certificate.
type fuzzCaller byte

const (
	callerAdmin fuzzCaller = iota
	callerUser
	callerStranger
	callerNoTLS
	callerNoCert
	numCallers
)

// FuzzHandler drives the server's handler in-process with arbitrary
// methods, paths and bodies. Properties: no panic (a panic caught by the
// recover middleware is logged and answered with 500, both fail the test),
// only expected status codes, every KES error is exactly
// {"message":"..."\n} with a matching Content-Length, and requests with an
// invalid name/pattern argument get exactly the 400 of docs/api.md#names-and-patterns (or
// 403/405 before it).
func FuzzHandler(f *testing.F) {
	seeds := []struct {
		method, caller, prefix byte
		path                   string
		body                   string
	}{
		{1, 0, 6, "my-key", ""},
		{2, 0, 12, "my-key", `{"plaintext":"AAAA","context":"AAAA"}`},
		{2, 0, 13, "my-key", `{"ciphertext":"AAAA"}`},
		{2, 0, 14, "legacy", `{"message":"AAAA"}`},
		{0, 0, 8, "corrupt", ""},
		{2, 0, 7, "imp", `{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","cipher":"AES256"}`},
		{2, 0, 7, "imp2", `{"key":"AAAA","cipher":"<x>"}`},
		{0, 0, 9, "*", ""},
		{0, 0, 9, "a*b", ""},
		{0, 1, 8, "my-app-internal", ""},
		{2, 1, 11, "my-app-1", `{"context":"%%%"}`},
		{0, 2, 3, "", ""},
		{0, 3, 2, "", ""},
		{0, 4, 20, "", ""},
		{0, 0, 0, "/v1//status", ""},
		{0, 0, 0, "/v1/key/describe/../list/", ""},
		{0, 0, 8, "a%2Fb", ""},
		{0, 0, 8, "\x00\xff", ""},
		{4, 0, 1, "", ""},
		{5, 0, 6, "x", ""},
		{0, 0, 21, "", ""},
		{0, 0, 22, "", ""},
		{0, 1, 20, "", ""},
		{0, 0, 15, "my-app", ""},
		{0, 0, 16, "hel<lo", ""},
		{0, 0, 18, "", ""},
		{3, 0, 10, "my-key", ""},
		{0x82, 0, 11, "my-key", ""},
		{0, 0, 23, "x", `[{"ciphertext":"AAAA"}]`},
		{1, 0, 27, "my-key", ""},
		{2, 0, 28, "my-key", `{"ciphertext":"AAAA","context":"AAAA"}`},
		{1, 0, 29, "my-key", ""},
		{2, 0, 13, "my-key", `{"ciphertext":"AAAA","version":2}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.caller, s.prefix, s.path, []byte(s.body))
	}
	fs := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, method, caller, prefix byte, path string, body []byte) {
		fs.check(t, method, fuzzCaller(caller), prefix, path, body)
	})
}

func (fs *fuzzServer) check(t *testing.T, method byte, caller fuzzCaller, prefix byte, path string, body []byte) {
	m := fuzzMethods[int(method&0x7f)%len(fuzzMethods)]
	chunked := method&0x80 != 0
	caller %= numCallers
	p := fuzzPrefixes[int(prefix)%len(fuzzPrefixes)] + path

	r := fuzzRequest(m, p, body)
	if chunked {
		r.ContentLength = -1
	}
	switch caller {
	case callerAdmin:
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{fs.admin}}
	case callerUser:
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{fs.user}}
	case callerStranger:
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{fs.stranger}}
	case callerNoCert:
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	clean := cleanPath(p) == p
	if clean && (p == api.PathLogError || p == api.PathLogAudit) {
		// A log stream runs until the client leaves: this one has left.
		r = r.WithContext(fs.canceled)
	}

	before := fs.log.panics.Load()
	rec := httptest.NewRecorder()
	start := time.Now()
	fs.srv.Handler().ServeHTTP(rec, r)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%s %q: took %v", m, p, d)
	}
	res := rec.Result()
	got := rec.Body.Bytes()
	where := m + " " + strconv.Quote(p)

	if fs.log.panics.Load() != before {
		t.Fatalf("%s: recovered panic: %v", where, fs.log.last.Load())
	}
	status := res.StatusCode
	ct := res.Header.Get("Content-Type")
	switch status {
	case 200, 301, 400, 403, 404, 405, 406, 409, 502:
	default:
		t.Fatalf("%s: unexpected status %d %q", where, status, got)
	}

	var msg string
	switch {
	case status == 301:
		np := cleanPath(p)
		for _, rt := range api.AllRoutes() {
			if rt.IsPrefix() && rt.Path == np+"/" {
				np = rt.Path // straight to the prefix route, as ServeMux does
			}
		}
		want := (&url.URL{Path: np}).String()
		if clean || res.Header.Get("Location") != want {
			t.Fatalf("%s: redirect to %q, want %q (clean path %v)", where, res.Header.Get("Location"), want, clean)
		}
		return
	case status == 404 && ct != "application/json":
		if ct != "text/plain; charset=utf-8" || string(got) != "404 page not found\n" {
			t.Fatalf("%s: 404 %q %q", where, ct, got)
		}
		return
	case status >= 400:
		msg = checkErrorBody(t, where, res, got)
		if status == 405 {
			want := "received method '" + m + "' expected '" + res.Header.Get("Accept") + "'"
			if msg != want {
				t.Fatalf("%s: 405 %q, want %q", where, msg, want)
			}
		}
		if status == 404 && msg != "key does not exist" && msg != "policy does not exist" && msg != "identity does not exist" {
			t.Fatalf("%s: 404 %q", where, msg)
		}
	case status == 200:
		checkOKBody(t, where, p, res, got)
	}

	// Arguments: an invalid name or pattern is answered with exactly its
	// 400 (after the method and authorization checks), whatever the body.
	if !clean {
		t.Fatalf("%s: non-canonical path answered %d, want 301", where, status)
	}
	rt, resource := fs.srv.state.Load().lookup(p)
	if rt == nil {
		t.Fatalf("%s: unrouted path answered %d %q", where, status, got)
	}
	var invalid kes.Error
	switch {
	case keyRoutes[rt.Path]:
		if !api.ValidName(resource) {
			invalid = api.InvalidKeyName(resource)
		}
	case rt.Path == api.PathPolicyDescribe || rt.Path == api.PathPolicyRead:
		if !api.ValidName(resource) {
			invalid = api.InvalidPolicyName(resource)
		}
	case rt.Path == api.PathIdentityDescribe:
		if !api.ValidName(resource) {
			invalid = api.InvalidIdentity(resource)
		}
	case rt.Path == api.PathKeyList || rt.Path == api.PathPolicyList || rt.Path == api.PathIdentityList:
		if !api.ValidPattern(resource) {
			invalid = api.InvalidPattern(resource)
		}
	}
	if invalid == (kes.Error{}) {
		return
	}
	// The client sees the message after JSON encoding, which replaces
	// invalid UTF-8 with U+FFFD.
	invalid = kes.NewError(invalid.Status(), jsonRoundTrip(invalid.Error()))
	switch {
	case status == 405 || status == 403:
	case status == 400 && (msg == invalid.Error() || msg == api.ErrInsecure.Error() || msg == api.ErrCertRequired.Error()):
	default:
		t.Fatalf("%s: invalid argument %q answered %d %q, want 400 %q (or 403/405)", where, resource, status, msg, invalid.Error())
	}
	if caller == callerAdmin && rt.AcceptsMethod(m) && (status != 400 || msg != invalid.Error()) {
		t.Fatalf("%s: admin with invalid argument %q got %d %q, want 400 %q", where, resource, status, msg, invalid.Error())
	}
}

// jsonRoundTrip returns s as a client decodes it from a JSON string.
func jsonRoundTrip(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

// checkErrorBody checks the error body of docs/api.md#responses and returns its message.
func checkErrorBody(t *testing.T, where string, res *http.Response, body []byte) string {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: error Content-Type %q", where, ct)
	}
	if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Fatalf("%s: Content-Length %q for %d bytes", where, cl, len(body))
	}
	const head, tail = `{"message":`, "\n}"
	if !bytes.HasPrefix(body, []byte(head)) || !bytes.HasSuffix(body, []byte(tail)) {
		t.Fatalf("%s: error body %q", where, body)
	}
	inner := body[len(head) : len(body)-len(tail)]
	var msg string
	if err := json.Unmarshal(inner, &msg); err != nil || len(inner) == 0 || inner[0] != '"' {
		t.Fatalf("%s: error body %q: message is not a JSON string: %v", where, body, err)
	}
	if msg == "" || msg == api.ErrInternal.Error() {
		t.Fatalf("%s: error message %q", where, msg)
	}
	return msg
}

// checkOKBody checks a 200 answer: empty (Content-Length 0, no
// Content-Type) or one JSON value followed by "\n", except for metrics
// and log streams.
func checkOKBody(t *testing.T, where, path string, res *http.Response, body []byte) {
	t.Helper()
	ct := res.Header.Get("Content-Type")
	switch {
	case path == api.PathMetrics || path == api.PathLogError || path == api.PathLogAudit:
	case len(body) == 0:
		if res.Header.Get("Content-Length") != "0" || ct != "" {
			t.Fatalf("%s: empty 200 with Content-Length %q, Content-Type %q", where, res.Header.Get("Content-Length"), ct)
		}
	default:
		if ct != "application/json" || !json.Valid(body) || !bytes.HasSuffix(body, []byte("\n")) ||
			res.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("%s: 200 %q %q %v", where, ct, body, res.Header)
		}
	}
}

// The request types DecodeJSON is used with.
var decodeTypes = []func() any{
	func() any { return new(api.ImportKeyRequest) },
	func() any { return new(api.GenerateKeyRequest) },
	func() any { return new(api.EncryptKeyRequest) },
	func() any { return new(api.DecryptKeyRequest) },
	func() any { return new(api.HMACRequest) },
	func() any { return new(api.RewrapKeyRequest) },
}

// decodeReader yields data; if cut < len(data) it stops after cut bytes
// with the error of a body over its limit, like http.MaxBytesReader.
func decodeReader(data []byte, cut int, oneByte bool) io.Reader {
	var r io.Reader = bytes.NewReader(data)
	if cut >= 0 && cut < len(data) {
		r = io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(&http.MaxBytesError{Limit: int64(cut)}))
	}
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	return r
}

// FuzzDecodeRequest checks that api.DecodeJSON decodes request bodies
// exactly as json.Decoder.Decode does (what the original server uses):
// same success or failure, same value, for complete bodies and for bodies
// cut by a read error; and that its buffer reuse never leaks into values
// returned earlier.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","cipher":"AES256"}`,
		`{"plaintext":"AAAA","context":"AAAA","version":"v1"}`,
		`{"ciphertext":"AAAA"} trailing`,
		`{"message":"AAAA"}{"message":"BBBB"}`,
		`{"context":null}`,
		`null`, `[]`, `"x"`, `1`, ``, ` `, `{`, `{"plaintext":1}`, `{"plaintext":"%%%"}`,
		`{"PLAINTEXT":"AAAA"}`, `{"plaintext":"AA\nAA"}`, `{"plaintext":"YQ"}`,
		`{"plaintext":"AAAA","plaintext":"BBBB"}`, `{"cipher":"\ud800"}`, "{\"cipher\":\"\xff\"}",
		`{"version":1,"message":"AAAA"}`, `123`, `{"a":[[[[[[[[]]]]]]]]}`,
		`{"ciphertext":"AAAA","version":2}`, `{"ciphertext":"AAAA","version":-1}`, `{"version":1.5e3}`,
		`{"version":true}`, `{"version":{}}`, `{"version":null}`, `{"version":4294967296}`,
	} {
		f.Add(byte(0), []byte(s), uint32(1<<31), false)
		f.Add(byte(2), []byte(s), uint32(len(s)/2), true)
	}
	f.Fuzz(func(t *testing.T, which byte, data []byte, cut uint32, oneByte bool) {
		newV := decodeTypes[int(which)%len(decodeTypes)]
		c := int(cut)
		if cut > 1<<30 {
			c = -1 // no cut
		}
		got, want := newV(), newV()
		errGot := api.DecodeJSON(decodeReader(data, c, oneByte), got)
		errWant := json.NewDecoder(decodeReader(data, c, false)).Decode(want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("DecodeJSON(%q, cut %d) error = %v, json.Decoder error = %v", data, c, errGot, errWant)
		}
		if errGot != nil {
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DecodeJSON(%q, cut %d) mismatch (-json.Decoder +DecodeJSON):\n%s", data, c, diff)
		}
		// Decoding other input (reusing the pooled buffer) must not change
		// the value decoded before.
		snapshot, _ := json.Marshal(got)
		other := bytes.Repeat([]byte{'x'}, len(data)+1)
		copy(other, `{"plaintext":"`)
		_ = api.DecodeJSON(bytes.NewReader(other), newV())
		_ = api.DecodeJSON(bytes.NewReader(bytes.ToUpper(data)), newV())
		if again, _ := json.Marshal(got); !bytes.Equal(again, snapshot) {
			t.Fatalf("value changed after another DecodeJSON: %s, was %s", again, snapshot)
		}
	})
}
