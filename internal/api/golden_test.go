package api_test

// Golden transcripts of the wire protocol (house style: "Wire compatibility
// is tested two ways"). Each scenario starts a real server over TLS with a
// fixed clock, a deterministic random source and client certificates made
// from the API keys of docs/api.md#api-keys (so identities are fixed too), sends a
// series of requests and records what went over the wire. The recording is
// compared with internal/api/testdata/<scenario>.golden; run
//
//	OPENKES_UPDATE_GOLDEN=1 go test ./internal/api/ -run TestGolden
//
// to rewrite the files, then read the diff against docs/api.md: a golden file
// is only useful if every line of it is right.
//
// Transcript format, one block per request:
//
//	## note
//	> METHOD /path
//	> as: <caller>
//	> |<request body line>       (or "> (no body)", or "> body: <description>")
//	< HTTP/1.1 <status>
//	< Header: value              (the header block as sent, in wire order;
//	                              the Date value is masked)
//	< |<response body line>      (or "< (no body)")
//
// Requests go over HTTP/1.1 on a keep-alive connection per caller, with
// a raw client, so the transcripts pin the header order and framing too.
// When the server has a choice of HTTP/1.1 implementations every scenario
// runs against each of them, and all must match the same file.
//
// A body is printed line by line, split at '\n': every "|" line is one
// line of the body, verbatim, so a body that ends with a newline ends
// with an empty "|" line. A line that is not printable UTF-8 is printed
// as a Go-quoted string after "~" instead of "|".

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto/cryptotest"
	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

// updateGolden rewrites the golden files instead of comparing with them.
// An environment variable, not a test flag: flags break `go test ./...`.
var updateGolden = os.Getenv("OPENKES_UPDATE_GOLDEN") == "1"

// The callers of the golden servers. Their certificates carry the Ed25519
// API keys of docs/api.md#api-keys, so their identities are the documented ones.
var callers = []struct {
	name, apiKey, identity string
}{
	{"admin", "kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"},
	{"user", "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs", "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"},
	{"reader", "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw", "0426fa9a04bc2756b92fbe8a97e1a1e07b53ecf04ed33da22c33e5c9faeb8cbb"},
	{"stranger", "kes:v1:AMxvd2uV1l5dDSRwuKZxSjuM5BDemlr+685+JAHA1TuJ", "ab785e3b95d80d72cc9c27cb9fde886a0bf9068a69d40e3bd08a54e68c3f2bf7"},
}

func identityOf(name string) string {
	for _, c := range callers {
		if c.name == name {
			return c.identity
		}
	}
	panic("unknown caller " + name)
}

// goldenNow is the fixed clock of the golden servers: the creation time of
// the protobuf test vector of docs/api.md#stored-keys, in a non-UTC zone so that the
// transcripts show which times are converted to UTC (keys) and which keep
// the server's zone (policies and identities, docs/api.md#responses).
var goldenNow = time.Date(2024, 1, 12, 11, 39, 20, 886816000, time.FixedZone("CET", 3600))

// Client certificates must be valid at goldenNow (the server checks them
// with its clock) for as long as this test lives.
var (
	certNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// The policies of the golden servers.
func goldenPolicies() map[string]server.Policy {
	return map[string]server.Policy{
		"my-app": {
			Allow: []string{
				"/v1/key/create/my-app*",
				"/v1/key/generate/my-app*",
				"/v1/key/decrypt/my-app*",
				"/v1/key/describe/*",
				"/v1/key/list/*",
				"/v1/identity/self/describe",
				"/v1/policy/describe/*",
				"/v1/status",
			},
			Deny:       []string{"/v1/key/describe/my-app-internal*"},
			Identities: []string{identityOf("user")},
		},
		"read-only": {
			Allow:      []string{"/v1/policy/*", "/v1/identity/*"},
			Deny:       []string{"/v1/policy/read/my-app", "/v1/key/list/<a&b>"},
			Identities: []string{identityOf("reader")},
		},
		"no-rules": {},
	}
}

// detRand is a deterministic, switchable random source for Config.Rand.
type detRand struct {
	mu   sync.Mutex
	r    *rand.ChaCha8
	fail bool
}

func newDetRand() *detRand {
	return &detRand{r: rand.NewChaCha8([32]byte([]byte("openkes golden transcripts seed!")))}
}

var errRandFailed = errors.New("golden: random source failed")

func (d *detRand) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errRandFailed
	}
	return d.r.Read(p)
}

func (d *detRand) setFail(v bool) {
	d.mu.Lock()
	d.fail = v
	d.mu.Unlock()
}

// switchStore wraps a store; its operations and its Status can be made to
// fail on demand.
type switchStore struct {
	keystoretest.FaultyStore
	mu        sync.Mutex
	opErr     error // Create, Get, Delete and List fail with it
	statusErr error // Status fails with it
}

func newSwitchStore(st keystore.Store) *switchStore {
	s := &switchStore{}
	s.FaultyStore = keystoretest.FaultyStore{Store: st, Fault: s.fault}
	return s
}

func (s *switchStore) set(op, status error) {
	s.mu.Lock()
	s.opErr, s.statusErr = op, status
	s.mu.Unlock()
}

func (s *switchStore) fault(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "Status" {
		return s.statusErr
	}
	return s.opErr
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer = keystoretest.LogBuffer

// testServer is a server listening on 127.0.0.1 over real TLS.
type testServer struct {
	srv    *server.Server
	addr   string
	roots  *x509.CertPool
	errLog *lockedBuffer
}

// startServer starts a server for conf, which gets a fresh server
// certificate for localhost and an error log; it is closed when t ends.
func startServer(t *testing.T, conf *server.Config) *testServer {
	t.Helper()
	serverCert := testpki.Server(t)
	ts := &testServer{roots: x509.NewCertPool(), errLog: new(lockedBuffer)}
	ts.roots.AddCert(serverCert.X509)
	conf.TLS.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serverCert.TLS, nil }
	conf.ErrorLog = slog.New(slog.NewTextHandler(ts.errLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(t.Context(), conf)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, ts.addr = srv, ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if strings.Contains(ts.errLog.String(), "panic") {
			t.Errorf("error log mentions a panic:\n%s", ts.errLog)
		}
	})
	return ts
}

// client returns an HTTP/1.1 client that presents cert (none if cert is
// nil) and does not follow redirects.
func (ts *testServer) client(t *testing.T, cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: ts.roots, ServerName: "localhost"}
	if cert != nil {
		// Always send the certificate, whatever CAs the server
		// advertises (as MinIO does), so that the server decides.
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return testpki.Client(t, &http.Transport{TLSClientConfig: conf, DisableCompression: true}, 30*time.Second)
}

// rawClient is an HTTP/1.1 client over one keep-alive TLS connection that
// also returns the raw header block of each response, so transcripts show
// the headers in wire order.
type rawClient struct {
	t    *testing.T
	addr string
	conf *tls.Config
	conn *tls.Conn
	br   *bufio.Reader
	raw  bytes.Buffer // what was read from conn for the current response
}

// rawClient returns a rawClient that presents cert.
func (ts *testServer) rawClient(t *testing.T, cert *tls.Certificate) *rawClient {
	c := &rawClient{t: t, addr: ts.addr, conf: &tls.Config{
		RootCAs:              ts.roots,
		ServerName:           "localhost",
		NextProtos:           []string{"http/1.1"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
	}}
	t.Cleanup(c.close)
	return c
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// roundTrip sends the request made by newRequest and reads the response:
// its body (unless stream) and its raw header block. The connection is
// kept for the next request unless the response closes it or is a stream.
func (c *rawClient) roundTrip(newRequest func() *http.Request, stream bool) (*http.Response, []byte, string, error) {
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if c.conn == nil {
			conn, err := tls.Dial("tcp", c.addr, c.conf)
			if err != nil {
				return nil, nil, "", err
			}
			c.conn = conn
			c.br = bufio.NewReader(io.TeeReader(conn, &c.raw))
		}
		c.raw.Reset()
		conn := c.conn
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		req := newRequest()
		// Write concurrently: the server may answer before it has read
		// the whole body (e.g. one over the limit).
		written := make(chan error, 1)
		go func() {
			bw := bufio.NewWriter(conn)
			err := req.Write(bw)
			if err == nil {
				err = bw.Flush()
			}
			written <- err
		}()
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			c.close()
			<-written
			if reused && attempt == 0 && c.raw.Len() == 0 {
				continue // the server closed the idle connection: retry once
			}
			return nil, nil, "", err
		}
		var body []byte
		if !stream {
			body, err = io.ReadAll(resp.Body)
		}
		head, _, ok := bytes.Cut(c.raw.Bytes(), []byte("\r\n\r\n"))
		if !ok {
			err = errors.Join(err, errors.New("no end of header block"))
		}
		select {
		case <-written:
		case <-time.After(10 * time.Second):
			c.t.Errorf("%s %s: request body still being written 10s after the response", req.Method, req.URL.Path)
			c.close()
			<-written
		}
		if stream || resp.Close {
			c.close()
		}
		return resp, body, string(head) + "\r\n\r\n", err
	}
}

// goldenEnv is a golden server plus the transcript being recorded.
type goldenEnv struct {
	t       *testing.T
	ts      *testServer
	store   *switchStore
	rand    *detRand
	clients map[string]*rawClient
	out     bytes.Buffer
}

func newGoldenEnv(t *testing.T, modify func(*server.Config)) *goldenEnv {
	t.Helper()
	g := &goldenEnv{
		t:       t,
		store:   newSwitchStore(mem.New()),
		rand:    newDetRand(),
		clients: map[string]*rawClient{},
	}
	conf := &server.Config{
		Admin:    identityOf("admin"),
		Policies: goldenPolicies(),
		Store:    g.store,
		Rand:     g.rand,
		Now:      func() time.Time { return goldenNow },
	}
	if modify != nil {
		modify(conf)
	}
	g.ts = startServer(t, conf)
	for _, c := range callers {
		cert := apiKeyCert(t, c.apiKey)
		if got := cert.Identity(); got != c.identity {
			t.Fatalf("identity of %s = %s, want %s (docs/api.md#api-keys)", c.apiKey, got, c.identity)
		}
		g.clients[c.name] = g.ts.rawClient(t, &cert.TLS)
	}
	return g
}

// apiKeyCert mints a self-signed certificate for the Ed25519 key of a
// kes:v1: API key, valid from 2020 to 2099.
func apiKeyCert(t *testing.T, apiKey string) *testpki.Cert {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(apiKey, "kes:v1:"))
	if err != nil || len(b) != 33 || b[0] != 0 {
		t.Fatalf("bad API key %q", apiKey)
	}
	return testpki.SelfSigned(t, testpki.Options{
		CommonName: "golden",
		Key:        testpki.Ed25519Key(b[1:]),
		NotBefore:  certNotBefore,
		NotAfter:   certNotAfter,
	})
}

// req is one request of a scenario.
type req struct {
	note   string
	as     string // caller name
	method string
	path   string // sent as is (escaped form)
	body   string
	// bodyNote, if set, is printed instead of body (large bodies).
	bodyNote string
	// chunked sends body with Transfer-Encoding: chunked (unknown length).
	chunked bool
	header  map[string]string
	// stream marks a never-ending response (log streams): only its
	// status and headers are recorded.
	stream bool
	// normalize rewrites the parts of a response that vary between runs
	// or machines; it must say so in the returned body.
	normalize func(t *testing.T, body []byte, h http.Header) []byte
}

// result is a response as recorded.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (g *goldenEnv) section(title string) {
	fmt.Fprintf(&g.out, "######## %s\n\n", title)
}

// do sends rq, records request and response and checks the response
// against the generic invariants of docs/api.md#routing, docs/api.md#responses.
func (g *goldenEnv) do(rq req) result {
	t := g.t
	t.Helper()
	if rq.as == "" {
		rq.as = "admin"
	}
	newRequest := func() *http.Request {
		var body io.Reader
		if rq.body != "" || rq.chunked {
			body = strings.NewReader(rq.body)
		}
		hr, err := http.NewRequestWithContext(t.Context(), rq.method, "https://"+g.ts.addr+rq.path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", rq.method, rq.path, err)
		}
		if rq.chunked {
			hr.ContentLength = -1
			hr.Body = io.NopCloser(body) // hide the length: chunked encoding
		}
		for k, v := range rq.header {
			hr.Header.Set(k, v)
		}
		return hr
	}
	resp, b, head, err := g.clients[rq.as].roundTrip(newRequest, rq.stream)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	res := result{status: resp.StatusCode, header: resp.Header, body: b}
	if !rq.stream {
		checkInvariants(t, rq, res)
	}

	w := &g.out
	if rq.note != "" {
		fmt.Fprintf(w, "## %s\n", rq.note)
	}
	fmt.Fprintf(w, "> %s %s\n", rq.method, rq.path)
	fmt.Fprintf(w, "> as: %s\n", rq.as)
	keys := make([]string, 0, len(rq.header))
	for k := range rq.header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "> %s: %s\n", k, rq.header[k])
	}
	if rq.chunked {
		fmt.Fprintf(w, "> Transfer-Encoding: chunked\n")
	}
	switch {
	case rq.bodyNote != "":
		fmt.Fprintf(w, "> body: %s\n", rq.bodyNote)
	case rq.body == "":
		fmt.Fprintf(w, "> (no body)\n")
	default:
		writeBody(w, ">", []byte(rq.body))
	}

	h := resp.Header.Clone()
	if rq.normalize != nil {
		b = rq.normalize(t, b, h)
	}
	// The header block as it was on the wire, in its order; the Date
	// value is masked and normalised headers are replaced or dropped.
	for _, line := range strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n") {
		k, _, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
		case k == "Date":
			line = "Date: <date>"
		case resp.Header.Get(k) != h.Get(k):
			if len(h.Values(k)) == 0 {
				continue
			}
			line = k + ": " + h.Get(k)
		}
		if !printable(line) {
			line = "~" + strconv.Quote(line)
		}
		fmt.Fprintf(w, "< %s\n", line)
	}
	switch {
	case rq.stream:
		fmt.Fprintf(w, "< (stream: body not recorded)\n")
	case len(b) == 0:
		fmt.Fprintf(w, "< (no body)\n")
	default:
		writeBody(w, "<", b)
	}
	fmt.Fprintln(w)
	return res
}

// writeBody prints body line by line (see the file comment).
func writeBody(w io.Writer, dir string, body []byte) {
	for _, line := range strings.Split(string(body), "\n") {
		if printable(line) {
			fmt.Fprintf(w, "%s |%s\n", dir, line)
		} else {
			fmt.Fprintf(w, "%s ~%s\n", dir, strconv.Quote(line))
		}
	}
}

// printable reports whether s is valid UTF-8 without control characters
// or other invisible runes.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// checkInvariants checks what holds for every response of the server,
// whatever the scenario (docs/api.md#routing, docs/api.md#responses, docs/api.md#errors).
func checkInvariants(t *testing.T, rq req, r result) {
	t.Helper()
	where := rq.method + " " + rq.path
	ct := r.header.Get("Content-Type")
	if cl := r.header.Get("Content-Length"); cl != "" && rq.method != http.MethodHead {
		if n, err := strconv.Atoi(cl); err != nil || n != len(r.body) {
			t.Errorf("%s: Content-Length %s, body has %d bytes", where, cl, len(r.body))
		}
	}
	switch {
	case r.status == http.StatusMovedPermanently:
		if r.header.Get("Location") == "" {
			t.Errorf("%s: redirect without Location", where)
		}
	case r.status == http.StatusNotFound && ct != "application/json":
		if ct != "text/plain; charset=utf-8" || r.header.Get("X-Content-Type-Options") != "nosniff" ||
			(rq.method != http.MethodHead && string(r.body) != "404 page not found\n") {
			t.Errorf("%s: plain 404 = %q %v", where, r.body, r.header)
		}
	case r.status >= 400:
		// Every KES error: application/json, explicit length, and the
		// body {"message":<JSON string>\n} exactly as Go's encoder
		// writes the message (HTML escaping on).
		if ct != "application/json" {
			t.Errorf("%s: error Content-Type = %q", where, ct)
		}
		if r.header.Get("Content-Length") == "" {
			t.Errorf("%s: error without Content-Length", where)
		}
		if rq.method == http.MethodHead {
			break
		}
		var e api.ErrorResponse
		if err := json.Unmarshal(r.body, &e); err != nil || e.Message == "" {
			t.Errorf("%s: error body %q is not {\"message\":...}: %v", where, r.body, err)
			break
		}
		// Invalid UTF-8 in the message became U+FFFD when it was
		// encoded, so re-encoding cannot reproduce the body then.
		msg, _ := json.Marshal(e.Message)
		if want := `{"message":` + string(msg) + "\n}"; string(r.body) != want && !strings.ContainsRune(e.Message, utf8.RuneError) {
			t.Errorf("%s: error body = %q, want %q", where, r.body, want)
		}
		if !bytes.HasPrefix(r.body, []byte(`{"message":"`)) || !bytes.HasSuffix(r.body, []byte("\"\n}")) {
			t.Errorf("%s: error body = %q, want {\"message\":\"...\"\n}", where, r.body)
		}
		if r.status == http.StatusMethodNotAllowed && r.header.Get("Accept") == "" {
			t.Errorf("%s: 405 without Accept", where)
		}
	case r.status == http.StatusOK && len(r.body) == 0 && rq.method != http.MethodHead:
		if r.header.Get("Content-Length") != "0" || ct != "" {
			t.Errorf("%s: empty 200 with Content-Length %q Content-Type %q", where, r.header.Get("Content-Length"), ct)
		}
	case r.status == http.StatusOK && ct == "application/json":
		if !json.Valid(r.body) || !bytes.HasSuffix(r.body, []byte("\n")) {
			t.Errorf("%s: JSON body %q invalid or without trailing newline", where, r.body)
		}
	}
}

// check compares the transcript with the golden file, or rewrites it.
func (g *goldenEnv) check(name string, update bool) {
	t := g.t
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	header := "# Golden transcript " + name + ".golden, recorded by TestGolden in golden_test.go.\n" +
		"# Rewrite with OPENKES_UPDATE_GOLDEN=1 go test ./internal/api/ -run TestGolden and review the diff against docs/api.md.\n\n"
	got := header + g.out.String()
	if updateGolden && !update {
		return // compared on the next run, once the files are written
	}
	if updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with OPENKES_UPDATE_GOLDEN=1 to create it)", err)
	}
	if string(want) != got {
		t.Errorf("transcript differs from %s (-want +got):\n%s", file,
			cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")))
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func zeros(n int) []byte { return make([]byte, n) }

func repeat(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// Keys with fixed bytes, imported by the scenarios.
var (
	keyAES    = b64(repeat(0x11, 32))
	keyChaCha = b64(repeat(0x22, 32))
	keyZero   = b64(zeros(32))
	key67     = cryptotest.Key67 // the key of cryptotest.Vector6 and Vector7
)

// Stored key values (docs/api.md#stored-keys).
const (
	legacyZeroKey   = `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`
	legacyChaChaKey = `{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}`
	protobufKey     = "CiQKIMiHG7XrN94FuwblJJor4f7f6rbqAl7DwsLaiIoyz0D2EAESJAognLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9HgQARoMCNithK0GEID67qYDIkAzZWNmY2RmMzhmY2JlMTQxYWUyNmExMDMwZjgxZTk2Yjc1MzM2NWE0Njc2MGFlNmI1Nzg2OThhOTdjNTlmZDIy"
	protobufHMACKey = "nLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9Hg="
)

// getEach sends GET prefix+p for each p, in order.
func (g *goldenEnv) getEach(prefix string, ps ...string) {
	for _, p := range ps {
		g.do(req{method: "GET", path: prefix + p})
	}
}

// importKey imports a key with fixed bytes and expects success.
func (g *goldenEnv) importKey(name, key, cipher string) {
	g.t.Helper()
	r := g.do(req{method: "POST", path: "/v1/key/import/" + name, body: `{"key":"` + key + `","cipher":"` + cipher + `"}`})
	if r.status != 200 {
		g.t.Fatalf("import %s: %d %q", name, r.status, r.body)
	}
}

// putRaw stores value under name directly in the key store.
func (g *goldenEnv) putRaw(name, value string) {
	g.t.Helper()
	if err := g.store.Store.Create(g.t.Context(), name, []byte(value)); err != nil {
		g.t.Fatal(err)
	}
	fmt.Fprintf(&g.out, "## key store: %q := %s\n\n", name, strconv.Quote(value))
}

// bigBody returns a JSON object {"<field>":"AAAA..."   } of exactly n
// bytes whose value is valid base64: only its size can make it fail.
func bigBody(field string, n int) (body, note string) {
	prefix := `{"` + field + `":"`
	a := (n - len(prefix) - 2) / 4 * 4
	spaces := n - len(prefix) - a - 2
	body = prefix + strings.Repeat("A", a) + `"` + strings.Repeat(" ", spaces) + `}`
	return body, fmt.Sprintf("<%d bytes: %s + %d x 'A' + '\"' + %d x ' ' + '}'>", len(body), prefix, a, spaces)
}

// normalizeStatus replaces the machine-dependent values of /v1/status.
func normalizeStatus(t *testing.T, b []byte, h http.Header) []byte {
	t.Helper()
	var s api.StatusResponse
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("status %q: %v", b, err)
	}
	if s.OS != runtime.GOOS || s.Arch != runtime.GOARCH || s.CPUs != runtime.NumCPU() ||
		s.UsableCPUs != runtime.GOMAXPROCS(0) || s.HeapAlloc == 0 || s.StackAlloc == 0 {
		t.Errorf("status = %+v", s)
	}
	out := regexp.MustCompile(`"(uptime|num_cpu|num_cpu_used|mem_heap_used|mem_stack_used)":\d+`).ReplaceAll(b, []byte(`"$1":<n>`))
	out = regexp.MustCompile(`"(os|arch)":"[^"]*"`).ReplaceAll(out, []byte(`"$1":"<$1>"`))
	h.Set("Content-Length", "<n> (normalised: uptime, num_cpu*, mem_*, os, arch)")
	return out
}

// normalizeAlgorithm hides the algorithm of keys created by the server,
// which depends on the CPU (docs/api.md#stored-keys).
func normalizeAlgorithm(t *testing.T, b []byte, h http.Header) []byte {
	t.Helper()
	out := regexp.MustCompile(`"algorithm":"(AES256|ChaCha20)"`).ReplaceAll(b, []byte(`"algorithm":"<AES256|ChaCha20>"`))
	if bytes.Equal(out, b) {
		t.Errorf("no algorithm in %q", b)
	}
	h.Set("Content-Length", "<n> (normalised: algorithm)")
	return out
}

// summarize keeps only the size of a body that varies between runs.
func summarize(what string) func(*testing.T, []byte, http.Header) []byte {
	return func(t *testing.T, b []byte, h http.Header) []byte {
		if len(b) == 0 {
			t.Errorf("empty %s", what)
		}
		// The length varies with the values.
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
		return []byte("<" + what + ", not recorded; length varies>")
	}
}

// openCiphertext decrypts a ciphertext of docs/api.md#ciphertexts with the raw key bytes,
// independently of internal/crypto: AES256 derives the AEAD key with
// HMAC-SHA-256(key, iv), ChaCha20 with HChaCha20(key, iv).
func openCiphertext(t *testing.T, alg string, key, ciphertext, ad []byte) []byte {
	t.Helper()
	if len(ciphertext) < 44 {
		t.Fatalf("ciphertext of %d bytes", len(ciphertext))
	}
	n := len(ciphertext)
	sealed, iv, nonce := ciphertext[:n-28], ciphertext[n-28:n-12], ciphertext[n-12:]
	var aead cipher.AEAD
	switch alg {
	case "AES256":
		mac := hmac.New(sha256.New, key)
		mac.Write(iv)
		block, err := aes.NewCipher(mac.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		if aead, err = cipher.NewGCM(block); err != nil {
			t.Fatal(err)
		}
	case "ChaCha20":
		k, err := chacha20.HChaCha20(key, iv)
		if err != nil {
			t.Fatal(err)
		}
		if aead, err = chacha20poly1305.New(k); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("algorithm %q", alg)
	}
	plaintext, err := aead.Open(nil, nonce, sealed, ad)
	if err != nil {
		t.Fatalf("%s ciphertext %x does not open with the key: %v", alg, ciphertext, err)
	}
	return plaintext
}

var routes = api.Routes()

// TestGolden records one transcript per scenario.
func TestGolden(t *testing.T) {
	t.Parallel()
	scenarios := []struct {
		name string
		run  func(*goldenEnv)
	}{
		{"info", goldenInfo},
		{"keys", goldenKeys},
		{"stored-keys", goldenStoredKeys},
		{"key-errors", goldenKeyErrors},
		{"authorization", goldenAuthorization},
		{"policies-identities", goldenPoliciesIdentities},
		{"invalid-names", goldenInvalidNames},
		{"request-bodies", goldenRequestBodies},
		{"import", goldenImport},
		{"methods", goldenMethods},
		{"routing", goldenRouting},
		{"store-failures", goldenStoreFailures},
		{"internal-errors", goldenInternalErrors},
	}
	for _, impl := range http1Implementations() {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					g := newGoldenEnv(t, impl.modify)
					sc.run(g)
					// Every implementation must produce the same bytes:
					// only the first one rewrites the files.
					g.check(sc.name, impl.name == "default")
				})
			}
		})
	}
}

// http1Implementations returns the server's HTTP/1.1 implementations to
// record the transcripts with: the default one and, if the server has the
// Config.HTTP1Stdlib switch (work in progress when this was written, hence
// found by reflection rather than compiled in), net/http's.
func http1Implementations() []struct {
	name   string
	modify func(*server.Config)
} {
	impls := []struct {
		name   string
		modify func(*server.Config)
	}{{"default", nil}}
	if f, ok := reflect.TypeFor[server.Config]().FieldByName("HTTP1Stdlib"); ok && f.Type.Kind() == reflect.Bool {
		impls = append(impls, struct {
			name   string
			modify func(*server.Config)
		}{"HTTP1Stdlib", func(c *server.Config) { reflect.ValueOf(c).Elem().FieldByName("HTTP1Stdlib").SetBool(true) }})
	}
	return impls
}

// goldenInfo: /version, /v1/api, /v1/status, /v1/metrics, /v1/ready.
func goldenInfo(g *goldenEnv) {
	g.section("GET /version (docs/api.md#version): no authentication; the test binary has no VCS info")
	g.do(req{as: "stranger", method: "GET", path: "/version"})
	g.do(req{as: "admin", method: "GET", path: "/version"})

	g.section("GET /v1/api (docs/api.md#routes): the 22 upstream routes, then OpenKES's rotate, rewrap and restore")
	r := g.do(req{method: "GET", path: "/v1/api"})
	var list []api.RouteResponse
	if err := json.Unmarshal(r.body, &list); err != nil {
		g.t.Fatal(err)
	}
	if len(list) != 25 {
		g.t.Errorf("/v1/api lists %d routes, want 25", len(list))
	}

	g.section("GET /v1/status (docs/api.md#status), machine-dependent values normalised")
	g.do(req{method: "GET", path: "/v1/status", normalize: normalizeStatus})
	g.do(req{as: "user", method: "GET", path: "/v1/status", normalize: normalizeStatus})

	g.section("GET /v1/metrics (docs/api.md#metrics): Prometheus text by default, body not recorded")
	g.do(req{method: "GET", path: "/v1/metrics", normalize: summarize("Prometheus text exposition")})
	g.do(req{method: "GET", path: "/v1/metrics", header: map[string]string{"Accept": "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"},
		normalize: summarize("delimited protobuf")})

	g.section("GET /v1/ready (docs/api.md#ready)")
	g.do(req{method: "GET", path: "/v1/ready"})

	g.section("GET /v1/log/error and /v1/log/audit (docs/api.md#log-streams): NDJSON streams, headers only")
	g.do(req{method: "GET", path: "/v1/log/error", stream: true})
	g.do(req{method: "GET", path: "/v1/log/audit", stream: true})
}

// goldenKeys: the successful answers of every key route.
func goldenKeys(g *goldenEnv) {
	g.section("import (docs/api.md#key-import): every accepted cipher name, POST and PUT")
	g.importKey("k-aes", keyAES, "AES256")
	g.do(req{method: "PUT", path: "/v1/key/import/k-aes-gcm", body: `{"key":"` + keyAES + `","cipher":"AES256-GCM_SHA256"}`})
	g.importKey("k-chacha", keyChaCha, "ChaCha20")
	g.do(req{method: "PUT", path: "/v1/key/import/k-xchacha", body: `{"key":"` + keyChaCha + `","cipher":"XCHACHA20-POLY1305"}`})
	g.do(req{note: "unknown fields are ignored", method: "POST", path: "/v1/key/import/k-extra",
		body: `{"key":"` + keyAES + `","cipher":"AES256","created_at":"x","bytes":1}`})

	g.section("create (docs/api.md#key-create): body ignored, POST and PUT")
	g.do(req{method: "POST", path: "/v1/key/create/k-created"})
	g.do(req{method: "PUT", path: "/v1/key/create/k-created2", body: "this body is ignored"})

	g.section("describe (docs/api.md#key-describe): created_at in UTC, created_by the caller")
	for _, name := range []string{"k-aes", "k-aes-gcm", "k-chacha", "k-xchacha"} {
		g.do(req{method: "GET", path: "/v1/key/describe/" + name})
	}
	g.do(req{note: "algorithm of a created key depends on the CPU (docs/api.md#stored-keys)", method: "GET", path: "/v1/key/describe/k-created", normalize: normalizeAlgorithm})
	g.do(req{note: "created by a policy identity", as: "user", method: "POST", path: "/v1/key/create/my-app-key"})
	g.do(req{as: "user", method: "GET", path: "/v1/key/describe/my-app-key", normalize: normalizeAlgorithm})

	g.section("list (docs/api.md#key-list): sorted, [] when empty, no continue_at")
	g.getEach("/v1/key/list/", "", "*", "k-a", "k-a*", "k-xchacha", "zzz", "_-*")
	g.do(req{note: "prefix route without trailing slash, served directly", method: "GET", path: "/v1/key/list"})
	g.do(req{as: "user", method: "GET", path: "/v1/key/list"})

	g.section("encrypt (docs/api.md#key-encrypt): ciphertext = plaintext + 44 bytes; deterministic random source")
	pt := b64([]byte("Hello, <KES> & friends"))
	ctx := b64([]byte(`{"MinIO admin API":"ServerInfoHandler"}`))
	r := g.do(req{method: "POST", path: "/v1/key/encrypt/k-aes", body: `{"plaintext":"` + pt + `","context":"` + ctx + `"}`})
	var enc api.EncryptKeyResponse
	json.Unmarshal(r.body, &enc)
	if len(enc.Ciphertext) != len("Hello, <KES> & friends")+44 {
		g.t.Errorf("ciphertext has %d bytes", len(enc.Ciphertext))
	}
	aesKey, _ := base64.StdEncoding.DecodeString(keyAES)
	chachaKey, _ := base64.StdEncoding.DecodeString(keyChaCha)
	if got := openCiphertext(g.t, "AES256", aesKey, enc.Ciphertext, []byte(`{"MinIO admin API":"ServerInfoHandler"}`)); string(got) != "Hello, <KES> & friends" {
		g.t.Errorf("independent decryption = %q", got)
	}
	g.do(req{note: "decrypt it again", method: "PUT", path: "/v1/key/decrypt/k-aes", body: `{"ciphertext":"` + b64(enc.Ciphertext) + `","context":"` + ctx + `"}`})
	g.do(req{note: "empty plaintext, version ignored", method: "PUT", path: "/v1/key/encrypt/k-chacha", body: `{"version":"v7"}`})
	g.do(req{note: "null means absent", method: "PUT", path: "/v1/key/encrypt/k-chacha", body: `{"plaintext":null,"context":null}`})
	r = g.do(req{method: "POST", path: "/v1/key/encrypt/k-chacha", body: `{"plaintext":"` + pt + `"}`})
	json.Unmarshal(r.body, &enc)
	if got := openCiphertext(g.t, "ChaCha20", chachaKey, enc.Ciphertext, nil); string(got) != "Hello, <KES> & friends" {
		g.t.Errorf("independent decryption = %q", got)
	}
	g.do(req{method: "POST", path: "/v1/key/decrypt/k-xchacha", body: `{"ciphertext":"` + b64(enc.Ciphertext) + `"}`})
	r = g.do(req{method: "POST", path: "/v1/key/encrypt/k-aes", body: `{"plaintext":"AAAA"}`})
	json.Unmarshal(r.body, &enc)
	g.do(req{note: "same key bytes imported under another name and cipher name", method: "POST", path: "/v1/key/decrypt/k-aes-gcm",
		body: `{"ciphertext":"` + b64(enc.Ciphertext) + `"}`})

	g.section("generate (docs/api.md#key-generate): body optional; 32-byte plaintext, 76-byte ciphertext")
	r = g.do(req{method: "POST", path: "/v1/key/generate/k-aes"})
	var dek api.GenerateKeyResponse
	json.Unmarshal(r.body, &dek)
	if len(dek.Plaintext) != 32 || len(dek.Ciphertext) != 76 {
		g.t.Errorf("DEK sizes %d %d", len(dek.Plaintext), len(dek.Ciphertext))
	}
	if got := openCiphertext(g.t, "AES256", aesKey, dek.Ciphertext, nil); !bytes.Equal(got, dek.Plaintext) {
		g.t.Errorf("independent decryption of the DEK = %x, want %x", got, dek.Plaintext)
	}
	g.do(req{method: "POST", path: "/v1/key/decrypt/k-aes", body: `{"ciphertext":"` + b64(dek.Ciphertext) + `"}`})
	r = g.do(req{method: "PUT", path: "/v1/key/generate/k-chacha", body: `{"context":"` + ctx + `","version":"ignored"}`})
	json.Unmarshal(r.body, &dek)
	if got := openCiphertext(g.t, "ChaCha20", chachaKey, dek.Ciphertext, []byte(`{"MinIO admin API":"ServerInfoHandler"}`)); !bytes.Equal(got, dek.Plaintext) {
		g.t.Errorf("independent decryption of the DEK = %x, want %x", got, dek.Plaintext)
	}
	r = g.do(req{method: "PUT", path: "/v1/key/decrypt/k-chacha", body: `{"ciphertext":"` + b64(dek.Ciphertext) + `","context":"` + ctx + `"}`})
	var dec api.DecryptKeyResponse
	json.Unmarshal(r.body, &dec)
	if !bytes.Equal(dec.Plaintext, dek.Plaintext) {
		g.t.Errorf("decrypted DEK %x, want %x", dec.Plaintext, dek.Plaintext)
	}
	g.do(req{note: "{} is an empty body too", method: "PUT", path: "/v1/key/generate/k-aes", body: `{}`})
	g.do(req{as: "user", method: "POST", path: "/v1/key/generate/my-app-key"})

	g.section("hmac (docs/api.md#key-hmac): deterministic per key, random HMAC key on import")
	msg := `{"message":"` + b64([]byte("message")) + `"}`
	r1 := g.do(req{method: "PUT", path: "/v1/key/hmac/k-aes", body: msg})
	r2 := g.do(req{method: "POST", path: "/v1/key/hmac/k-aes", body: msg + " trailing data is ignored"})
	r3 := g.do(req{note: "same key bytes, other import: other HMAC", method: "PUT", path: "/v1/key/hmac/k-aes-gcm", body: msg})
	if !bytes.Equal(r1.body, r2.body) || bytes.Equal(r1.body, r3.body) {
		g.t.Errorf("HMACs %q %q %q", r1.body, r2.body, r3.body)
	}
	g.do(req{method: "PUT", path: "/v1/key/hmac/k-aes", body: `{}`})

	g.section("decrypt (docs/api.md#key-decrypt, docs/api.md#ciphertexts): the upstream test vectors")
	g.importKey("zero-aes", keyZero, "AES256")
	g.importKey("zero-chacha", keyZero, "ChaCha20")
	g.importKey("v67-aes", key67, "AES256")
	g.importKey("v67-chacha", key67, "ChaCha20")
	for i, v := range []struct{ key, ct, ad string }{
		{"zero-aes", b64([]byte(cryptotest.Vector0)), ""},
		{"zero-chacha", b64([]byte(cryptotest.Vector1)), ""},
		{"zero-chacha", b64([]byte(cryptotest.Vector2)), ""},
		{"zero-aes", cryptotest.Vector3, ""},
		{"zero-chacha", cryptotest.Vector4, ""},
		{"zero-aes", cryptotest.Vector5, ""},
		{"v67-aes", cryptotest.Vector6, cryptotest.AD67},
		{"v67-chacha", cryptotest.Vector7, cryptotest.AD67},
	} {
		body := `{"ciphertext":"` + v.ct + `"`
		if v.ad != "" {
			body += `,"context":"` + v.ad + `"`
		}
		r := g.do(req{note: fmt.Sprintf("vector %d", i), method: "POST", path: "/v1/key/decrypt/" + v.key, body: body + "}"})
		json.Unmarshal(r.body, &dec)
		want := zeros(16)
		if i >= 6 {
			want, _ = base64.StdEncoding.DecodeString(cryptotest.PT67)
		}
		if r.status != 200 || !bytes.Equal(dec.Plaintext, want) {
			g.t.Errorf("vector %d: %d %q", i, r.status, r.body)
		}
	}
	g.do(req{note: "vector 0 with the ChaCha20 key", method: "POST", path: "/v1/key/decrypt/zero-chacha", body: `{"ciphertext":"` + b64([]byte(cryptotest.Vector0)) + `"}`})
	g.do(req{note: "vector 6 without its context", method: "POST", path: "/v1/key/decrypt/v67-aes", body: `{"ciphertext":"` + cryptotest.Vector6 + `"}`})

	g.section("delete (docs/api.md#key-delete)")
	g.do(req{method: "DELETE", path: "/v1/key/delete/k-created2"})
	g.do(req{method: "GET", path: "/v1/key/describe/k-created2"})
	g.do(req{method: "DELETE", path: "/v1/key/delete/k-created2"})
	g.do(req{note: "a deleted name can be created again", method: "POST", path: "/v1/key/create/k-created2"})
	g.do(req{method: "GET", path: "/v1/key/list/k-c"})
}

// goldenStoredKeys: key values put into the store directly (docs/api.md#stored-keys).
func goldenStoredKeys(g *goldenEnv) {
	g.section("legacy JSON key (docs/api.md#stored-keys, docs/api.md#key-hmac): no HMAC key")
	g.putRaw("legacy", legacyZeroKey)
	g.do(req{method: "GET", path: "/v1/key/describe/legacy"})
	g.do(req{method: "PUT", path: "/v1/key/hmac/legacy", body: `{"message":"` + b64([]byte("message")) + `"}`})
	g.do(req{note: "decrypt vector 0 (key 32 x 0x00)", method: "POST", path: "/v1/key/decrypt/legacy", body: `{"ciphertext":"` + b64([]byte(cryptotest.Vector0)) + `"}`})
	g.do(req{method: "POST", path: "/v1/key/encrypt/legacy", body: `{"plaintext":"AAAA"}`})
	g.do(req{method: "POST", path: "/v1/key/generate/legacy"})

	g.putRaw("legacy-chacha", legacyChaChaKey)
	g.do(req{method: "GET", path: "/v1/key/describe/legacy-chacha"})

	g.section("protobuf key of docs/api.md#stored-keys: HMAC checked against the known HMAC key")
	g.putRaw("pb", protobufKey)
	g.do(req{method: "GET", path: "/v1/key/describe/pb"})
	r := g.do(req{method: "PUT", path: "/v1/key/hmac/pb", body: `{"message":"` + b64([]byte("message")) + `"}`})
	var h api.HMACResponse
	json.Unmarshal(r.body, &h)
	hk, _ := base64.StdEncoding.DecodeString(protobufHMACKey)
	mac := hmac.New(sha256.New, hk)
	mac.Write([]byte("message"))
	if !hmac.Equal(h.HMAC, mac.Sum(nil)) {
		g.t.Errorf("HMAC of the docs/api.md#stored-keys key = %x, want %x", h.HMAC, mac.Sum(nil))
	}
	g.do(req{method: "GET", path: "/v1/key/list/"})

	g.section("undecodable stored values (docs/api.md#key-describe): 502 failed to read key")
	g.putRaw("corrupt", "this is not a key")
	g.putRaw("short-json", `{"bytes":"AAAA"}`)
	g.putRaw("bad-alg", `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"DES"}`)
	for _, name := range []string{"corrupt", "short-json", "bad-alg"} {
		g.do(req{method: "GET", path: "/v1/key/describe/" + name})
	}
	g.do(req{method: "POST", path: "/v1/key/encrypt/corrupt", body: `{"plaintext":"AAAA"}`})
	g.do(req{method: "POST", path: "/v1/key/decrypt/corrupt", body: `{"ciphertext":"AAAA"}`})
	g.do(req{method: "POST", path: "/v1/key/generate/corrupt"})
	g.do(req{method: "PUT", path: "/v1/key/hmac/corrupt", body: `{"message":"AAAA"}`})
	g.do(req{note: "a corrupt key can still be deleted", method: "DELETE", path: "/v1/key/delete/corrupt"})
}

// goldenKeyErrors: key exists, key does not exist, decryption failed.
func goldenKeyErrors(g *goldenEnv) {
	g.importKey("k", keyAES, "AES256")

	g.section("key already exists (400)")
	g.do(req{method: "POST", path: "/v1/key/create/k"})
	g.do(req{method: "PUT", path: "/v1/key/create/k"})
	g.do(req{method: "POST", path: "/v1/key/import/k", body: `{"key":"` + keyAES + `","cipher":"AES256"}`})

	g.section("key does not exist (404) on every key route")
	g.do(req{method: "GET", path: "/v1/key/describe/missing"})
	g.do(req{method: "DELETE", path: "/v1/key/delete/missing"})
	g.do(req{method: "POST", path: "/v1/key/generate/missing"})
	g.do(req{method: "POST", path: "/v1/key/encrypt/missing", body: `{"plaintext":"AAAA"}`})
	g.do(req{method: "POST", path: "/v1/key/decrypt/missing", body: `{"ciphertext":"AAAA"}`})
	g.do(req{method: "PUT", path: "/v1/key/hmac/missing", body: `{"message":"AAAA"}`})
	g.do(req{note: "a body error comes first", method: "PUT", path: "/v1/key/hmac/missing", body: `{`})
	g.do(req{note: "name check before the lookup", method: "GET", path: "/v1/key/describe/missing.key"})

	g.section("decryption failed (400)")
	r := g.do(req{method: "POST", path: "/v1/key/encrypt/k", body: `{"plaintext":"AAAA","context":"` + b64([]byte("ctx")) + `"}`})
	var enc api.EncryptKeyResponse
	json.Unmarshal(r.body, &enc)
	g.do(req{note: "wrong context", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"` + b64(enc.Ciphertext) + `","context":"` + b64([]byte("other")) + `"}`})
	g.do(req{note: "missing context", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"` + b64(enc.Ciphertext) + `"}`})
	tampered := slices.Clone(enc.Ciphertext)
	tampered[0] ^= 1
	g.do(req{note: "tampered", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"` + b64(tampered) + `","context":"` + b64([]byte("ctx")) + `"}`})
	g.do(req{note: "28 bytes: too short", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"` + b64(zeros(28)) + `"}`})
	g.do(req{note: "empty ciphertext", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":""}`})
	g.do(req{note: "no ciphertext", method: "POST", path: "/v1/key/decrypt/k", body: `{}`})
	g.do(req{note: "vector 0 for another key", method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"` + b64([]byte(cryptotest.Vector0)) + `"}`})
	g.do(req{note: "JSON envelope with an unknown aead", method: "POST", path: "/v1/key/decrypt/k",
		body: `{"ciphertext":"` + b64([]byte(strings.Replace(cryptotest.Vector0, "AES-256-GCM-HMAC-SHA-256", "AES-256-GCM", 1))) + `"}`})
}

// goldenAuthorization: 403 for unknown identities and policy denials
// (docs/api.md#authorization), checked before any name or body validation.
func goldenAuthorization(g *goldenEnv) {
	g.importKey("my-app-internal", keyAES, "AES256")
	g.importKey("other", keyAES, "AES256")

	g.section("stranger (no policy): 403 on every verified route, with the route's method")
	for _, rt := range routes {
		if rt.Auth != api.AuthVerify {
			continue
		}
		p := rt.Path
		if rt.IsPrefix() {
			p += "x"
		}
		g.do(req{as: "stranger", method: rt.Method, path: p})
	}
	g.do(req{note: "invalid name: 403 comes first", as: "stranger", method: "POST", path: "/v1/key/create/a.b"})
	g.do(req{note: "invalid body: 403 comes first", as: "stranger", method: "POST", path: "/v1/key/encrypt/other", body: "{"})
	g.do(req{as: "stranger", method: "GET", path: "/v1/key/list"})
	g.do(req{note: "self-describe only identifies (docs/api.md#identity-self-describe, docs/api.md#differences-from-upstream)", as: "stranger", method: "GET", path: "/v1/identity/self/describe"})
	g.do(req{note: "no authentication", as: "stranger", method: "GET", path: "/version"})

	g.section("policy my-app (user)")
	g.do(req{as: "user", method: "POST", path: "/v1/key/create/my-app-1"})
	g.do(req{note: "allowed by /v1/key/create/my-app*, then an invalid name", as: "user", method: "POST", path: "/v1/key/create/my-app.x"})
	g.do(req{note: "not allowed", as: "user", method: "POST", path: "/v1/key/create/other2"})
	g.do(req{note: "not allowed, invalid name", as: "user", method: "POST", path: "/v1/key/create/a.b"})
	g.do(req{as: "user", method: "GET", path: "/v1/key/describe/other"})
	g.do(req{note: "deny wins over allow", as: "user", method: "GET", path: "/v1/key/describe/my-app-internal"})
	g.do(req{note: "deny pattern is a prefix", as: "user", method: "GET", path: "/v1/key/describe/my-app-internal-2"})
	g.do(req{note: "allowed path plus '/': not a route, 404 before authorization", as: "user", method: "GET", path: "/v1/status/"})
	g.do(req{as: "user", method: "DELETE", path: "/v1/key/delete/other"})
	g.do(req{as: "user", method: "GET", path: "/v1/ready"})
	g.do(req{as: "user", method: "GET", path: "/v1/api"})
	g.do(req{as: "user", method: "GET", path: "/v1/metrics"})
	g.do(req{as: "user", method: "GET", path: "/v1/log/audit"})
	g.do(req{as: "user", method: "GET", path: "/v1/log/error"})
	g.do(req{as: "user", method: "POST", path: "/v1/key/encrypt/my-app-1", body: `{"plaintext":"AAAA"}`})
	g.do(req{note: "allowed: /v1/key/list/* also covers the path without slash", as: "user", method: "GET", path: "/v1/key/list/"})
	g.do(req{as: "user", method: "GET", path: "/v1/policy/describe/my-app"})
	g.do(req{as: "user", method: "GET", path: "/v1/policy/read/my-app"})

	g.section("policy read-only (reader)")
	g.do(req{as: "reader", method: "GET", path: "/v1/policy/read/read-only"})
	g.do(req{note: "denied by /v1/policy/read/my-app", as: "reader", method: "GET", path: "/v1/policy/read/my-app"})
	g.do(req{note: "exact deny pattern does not match a longer path", as: "reader", method: "GET", path: "/v1/policy/read/my-app2"})
	g.do(req{as: "reader", method: "GET", path: "/v1/identity/list/"})
	g.do(req{as: "reader", method: "GET", path: "/v1/key/list/"})
}

// goldenPoliciesIdentities: policy and identity routes, self-describe.
func goldenPoliciesIdentities(g *goldenEnv) {
	g.section("policy describe / read (docs/api.md#policy-describe, docs/api.md#policy-read): created_at = server start (server zone), created_by = admin")
	g.getEach("/v1/policy/describe/", "my-app", "read-only", "no-rules", "missing")
	g.getEach("/v1/policy/read/", "my-app", "read-only", "no-rules", "missing")

	g.section("policy list (docs/api.md#policy-list): continue_at always present")
	g.getEach("/v1/policy/list/", "", "*", "my*", "my-app", "r", "zzz")
	g.do(req{method: "GET", path: "/v1/policy/list"})

	g.section("identity describe (docs/api.md#identity-describe)")
	for _, c := range callers {
		g.do(req{note: c.name, method: "GET", path: "/v1/identity/describe/" + c.identity})
	}
	g.do(req{note: "identities are compared as exact strings", method: "GET", path: "/v1/identity/describe/" + strings.ToUpper(identityOf("admin"))})

	g.section("identity list (docs/api.md#identity-list): admin and policy identities")
	g.getEach("/v1/identity/list/", "", "*", "0*", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", "e", "zzz")
	g.do(req{method: "GET", path: "/v1/identity/list"})

	g.section("self-describe (docs/api.md#identity-self-describe, docs/api.md#differences-from-upstream): admin, policy identity (fixed shape), unknown (404)")
	for _, c := range callers {
		g.do(req{as: c.name, method: "GET", path: "/v1/identity/self/describe"})
	}
	g.do(req{note: "query ignored", as: "user", method: "GET", path: "/v1/identity/self/describe?enclave=x"})
}

// goldenInvalidNames: docs/api.md#names-and-patterns name and pattern rules on every route
// with an argument.
func goldenInvalidNames(g *goldenEnv) {
	long := strings.Repeat("a", 81)
	g.section("invalid key names on every key route (docs/api.md#names-and-patterns, docs/api.md#errors)")
	for _, rt := range routes {
		switch rt.Path {
		case api.PathKeyCreate, api.PathKeyImport, api.PathKeyDescribe, api.PathKeyDelete,
			api.PathKeyGenerate, api.PathKeyEncrypt, api.PathKeyDecrypt, api.PathKeyHMAC:
		default:
			continue
		}
		g.do(req{method: rt.Method, path: rt.Path + "my.key", body: `{"plaintext":"AAAA"}`})
		g.do(req{note: "empty name", method: rt.Method, path: rt.Path})
	}
	g.section("invalid key names: the table of docs/api.md#names-and-patterns and JSON escaping of the message")
	for _, n := range []string{
		"key%2F", "%E2%98%B0", "hel%3Clo", "%CE%95macs", long, "-a", "a-", "_", "a%20b",
		"a*", "*", "a%22b", "a%5Cb", "%FF", "a%E2%80%A8b", "a&b", "%00", "a%2Fb",
	} {
		g.do(req{method: "GET", path: "/v1/key/describe/" + n})
	}
	g.section("valid key names (docs/api.md#names-and-patterns): 404, not 400")
	for _, n := range []string{"my-key", "abc123", "0", "_-___---_", "_0", "0-Z", "my_key-0", strings.Repeat("a", 80), "my%2Dkey"} {
		g.do(req{method: "GET", path: "/v1/key/describe/" + n})
	}

	g.section("invalid policy names")
	for _, n := range []string{"my.policy", "", long, "hel%3Clo", "-"} {
		g.do(req{method: "GET", path: "/v1/policy/describe/" + n})
		g.do(req{method: "GET", path: "/v1/policy/read/" + n})
	}
	g.do(req{method: "GET", path: "/v1/policy/describe"})

	g.section("invalid identities")
	for _, n := range []string{"my.id", "", long, "hel%3Clo", "_"} {
		g.do(req{method: "GET", path: "/v1/identity/describe/" + n})
	}
	g.do(req{method: "GET", path: "/v1/identity/describe"})

	g.section("invalid listing patterns (docs/api.md#names-and-patterns) on the three list routes")
	for _, p := range []string{"*-*", "my.key", "key%2F", long, "-", "_", "**", "a*b", "-*", "a-*", "hel%3Clo*"} {
		for _, route := range []string{"/v1/key/list/", "/v1/policy/list/", "/v1/identity/list/"} {
			g.do(req{method: "GET", path: route + p})
		}
	}
	g.section("valid edge patterns")
	g.getEach("/v1/key/list/", "_-*", "a_", "_a*", strings.Repeat("a", 79)+"*", strings.Repeat("a", 80))
}

// goldenRequestBodies: docs/api.md#request-bodies body rules on generate, encrypt, decrypt
// and hmac.
func goldenRequestBodies(g *goldenEnv) {
	g.importKey("k", keyAES, "AES256")

	g.section("encrypt: body required; invalid JSON, base64 and types are 400 invalid request body")
	for _, b := range []struct{ note, body string }{
		{"empty body", ""},
		{"whitespace only", " \n\t "},
		{"bad JSON", `{`},
		{"bad JSON", `{"plaintext":"AAAA"`},
		{"bad base64", `{"plaintext":"%%%"}`},
		{"unpadded base64", `{"plaintext":"YQ"}`},
		{"URL-safe base64", `{"plaintext":"-_8="}`},
		{"base64 with a newline escape", `{"plaintext":"AA\nAA"}`},
		{"wrong type", `{"plaintext":1}`},
		{"wrong type", `{"plaintext":["AAAA"]}`},
		{"wrong type", `{"context":{}}`},
		{"array", `[]`},
		{"string", `"AAAA"`},
		{"number", `1`},
		{"null: no fields, accepted", `null`},
		{"trailing data after the first value is ignored", `{"plaintext":"AAAA"} {`},
		{"duplicate field: the last wins", `{"plaintext":"AAAA","plaintext":"BBBB"}`},
		{"field names match case-insensitively (encoding/json)", `{"PlainText":"AAAA"}`},
	} {
		g.do(req{note: b.note, method: "POST", path: "/v1/key/encrypt/k", body: b.body})
	}
	g.do(req{note: "chunked empty body", method: "POST", path: "/v1/key/encrypt/k", chunked: true})

	g.section("decrypt and hmac: body required")
	g.do(req{method: "POST", path: "/v1/key/decrypt/k"})
	g.do(req{method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":"%%%"}`})
	g.do(req{method: "POST", path: "/v1/key/decrypt/k", body: `{"ciphertext":5}`})
	g.do(req{method: "PUT", path: "/v1/key/hmac/k"})
	g.do(req{method: "PUT", path: "/v1/key/hmac/k", body: `{"message":"%%%"}`})
	g.do(req{method: "PUT", path: "/v1/key/hmac/k", body: `{"message":true}`})

	g.section("generate: body optional (known zero length), otherwise parsed")
	g.do(req{note: "no body: 200", method: "POST", path: "/v1/key/generate/k"})
	g.do(req{note: "chunked empty body: length unknown, parsed, EOF", method: "POST", path: "/v1/key/generate/k", chunked: true})
	g.do(req{method: "POST", path: "/v1/key/generate/k", body: `{`})
	g.do(req{method: "POST", path: "/v1/key/generate/k", body: `{"context":"%%%"}`})
	g.do(req{method: "POST", path: "/v1/key/generate/k", body: `{"context":1}`})
	g.do(req{method: "POST", path: "/v1/key/generate/k", body: `null`})

	g.section("body limit 1,000,000 bytes (docs/api.md#request-bodies)")
	body, note := bigBody("message", api.MaxBody)
	g.do(req{note: "hmac: exactly the limit", method: "PUT", path: "/v1/key/hmac/k", body: body, bodyNote: note})
	for _, p := range []struct{ path, field string }{
		{"/v1/key/generate/k", "context"},
		{"/v1/key/encrypt/k", "plaintext"},
		{"/v1/key/decrypt/k", "ciphertext"},
		{"/v1/key/hmac/k", "message"},
	} {
		body, note := bigBody(p.field, api.MaxBody+1)
		g.do(req{note: "one byte over the limit", method: "PUT", path: p.path, body: body, bodyNote: note})
		body, note = bigBody(p.field, api.MaxBody+4096)
		g.do(req{note: "over the limit, chunked", method: "PUT", path: p.path, body: body, bodyNote: note, chunked: true})
	}
	g.do(req{note: "a value complete within the limit is decoded, whatever follows (json.Decoder semantics)", method: "PUT", path: "/v1/key/hmac/k",
		body: `{"message":"YQ=="}` + strings.Repeat(" ", api.MaxBody), bodyNote: fmt.Sprintf(`<%d bytes: {"message":"YQ=="} + %d x ' '>`, 18+api.MaxBody, api.MaxBody)})
	g.do(req{note: "the same without the padding", method: "PUT", path: "/v1/key/hmac/k", body: `{"message":"YQ=="}`})
	body, note = bigBody("key", api.MaxBody+1)
	g.do(req{note: "import: one byte over the limit", method: "PUT", path: "/v1/key/import/big", body: body, bodyNote: note})
	g.do(req{note: "bodies of other routes are never read", method: "PUT", path: "/v1/key/create/big", body: body, bodyNote: note})
}

// goldenImport: docs/api.md#key-import import errors.
func goldenImport(g *goldenEnv) {
	g.section("invalid import key request body (400)")
	for _, b := range []struct{ note, body string }{
		{"empty body", ""},
		{"bad JSON", `{"key":`},
		{"bad base64", `{"key":"%%%","cipher":"AES256"}`},
		{"unpadded base64", `{"key":"` + strings.TrimRight(b64(repeat(1, 31)), "=") + `","cipher":"AES256"}`},
		{"wrong type", `{"key":1,"cipher":"AES256"}`},
		{"wrong type", `{"key":"` + keyAES + `","cipher":256}`},
		{"array", `[]`},
	} {
		g.do(req{note: b.note, method: "POST", path: "/v1/key/import/k", body: b.body})
	}

	g.section("406 algorithm not supported / invalid key size")
	for _, b := range []struct{ note, body string }{
		{"no cipher", `{"key":"` + keyAES + `"}`},
		{"empty cipher", `{"key":"` + keyAES + `","cipher":""}`},
		{"unknown cipher", `{"key":"` + keyAES + `","cipher":"DES"}`},
		{"case matters", `{"key":"` + keyAES + `","cipher":"aes256"}`},
		{"case matters", `{"key":"` + keyAES + `","cipher":"CHACHA20"}`},
		{"FIPS-looking name", `{"key":"` + keyAES + `","cipher":"AES-256-GCM-HMAC-SHA-256"}`},
		{"message is JSON-escaped", `{"key":"` + keyAES + `","cipher":"<b>&"}`},
		{"cipher checked before the key size", `{"key":"AAAA","cipher":"DES"}`},
		{"16-byte AES key", `{"key":"` + b64(zeros(16)) + `","cipher":"AES256"}`},
		{"24-byte ChaCha20 key", `{"key":"` + b64(zeros(24)) + `","cipher":"ChaCha20"}`},
		{"33-byte key", `{"key":"` + b64(zeros(33)) + `","cipher":"XCHACHA20-POLY1305"}`},
		{"no key", `{"cipher":"AES256-GCM_SHA256"}`},
		{"null is an empty body: no cipher", `null`},
		{"empty object", `{}`},
	} {
		g.do(req{note: b.note, method: "POST", path: "/v1/key/import/k", body: b.body})
	}
	g.do(req{note: "nothing was created", method: "GET", path: "/v1/key/list/"})
}

// goldenMethods: docs/api.md#routing, for every route.
func goldenMethods(g *goldenEnv) {
	g.section("405 for a wrong method on every route, checked before authentication (stranger)")
	for _, rt := range routes {
		p := rt.Path
		if rt.IsPrefix() {
			p += "x"
		}
		var wrong []string
		switch rt.Method {
		case http.MethodGet:
			wrong = []string{"POST", "HEAD"}
		case http.MethodPut:
			wrong = []string{"GET", "DELETE"}
		case http.MethodDelete:
			wrong = []string{"GET", "POST", "PUT"}
		}
		for _, m := range wrong {
			g.do(req{as: "stranger", method: m, path: p})
		}
	}
	g.section("other methods")
	for _, m := range []string{"PATCH", "OPTIONS", "TRACE", "PROPFIND"} {
		g.do(req{as: "stranger", method: m, path: "/v1/key/create/x"})
	}
	g.do(req{as: "stranger", method: "OPTIONS", path: "/version"})
	g.do(req{note: "lower-case method names are different methods", as: "stranger", method: "get", path: "/version"})
	g.do(req{note: "405 before name validation", as: "admin", method: "GET", path: "/v1/key/create/a.b"})
	g.do(req{note: "405 before the body is read", as: "admin", method: "GET", path: "/v1/key/encrypt/x", body: "{"})
	g.do(req{note: "prefix route without slash", as: "stranger", method: "DELETE", path: "/v1/key/list"})

	g.section("POST is accepted where the route wants PUT (see keys.golden for more)")
	g.do(req{method: "POST", path: "/v1/key/create/x"})
	g.do(req{method: "PUT", path: "/v1/key/create/y"})
}

// goldenRouting: docs/api.md#routing and 3.24.
func goldenRouting(g *goldenEnv) {
	g.importKey("my-key", keyAES, "AES256")

	g.section("unknown paths: plain-text 404, for any caller and method (docs/api.md#routing)")
	for _, p := range []string{"/", "/v1", "/v1/", "/V1/status", "/v1/status/", "/version/", "/v1/key", "/v1/key/",
		"/v1/key/Describe/my-key", "/v1/identity/self/describe/x", "/v1/identity/self/", "/v1/log/error/", "/v1/ready/x", "/favicon.ico"} {
		g.do(req{method: "GET", path: p})
	}
	g.do(req{as: "stranger", method: "DELETE", path: "/v1/nope"})
	g.do(req{as: "stranger", method: "HEAD", path: "/v1/nope"})

	g.section("legacy routes of docs/api.md#legacy-routes: plain-text 404")
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/v1/key/bulk/decrypt/my-key", `[{"ciphertext":"AAAA"}]`},
		{"POST", "/v1/enclave/create/e", ""},
		{"GET", "/v1/enclave/describe/e", ""},
		{"DELETE", "/v1/enclave/delete/e", ""},
		{"POST", "/v1/secret/create/s", `{"secret":"AAAA"}`},
		{"GET", "/v1/secret/describe/s", ""},
		{"GET", "/v1/secret/read/s", ""},
		{"DELETE", "/v1/secret/delete/s", ""},
		{"GET", "/v1/secret/list/*", ""},
		{"POST", "/v1/policy/assign/my-app/" + identityOf("stranger"), ""},
		{"POST", "/v1/policy/write/p", `{"allow":["/v1/*"]}`},
		{"DELETE", "/v1/policy/delete/p", ""},
		{"DELETE", "/v1/identity/delete/" + identityOf("user"), ""},
		{"GET", "/v1/log/audit/trace", ""},
		{"GET", "/v1/log/error/trace", ""},
		{"POST", "/v1/key/derive/my-key", ""},
		{"GET", "/v1/policy/show/my-app", ""},
		{"POST", "/v1/identity/assign/p/x", ""},
	} {
		g.do(req{as: "stranger", method: r.method, path: r.path, body: r.body})
	}
	g.do(req{note: "the enclave query parameter is ignored on current routes", method: "GET", path: "/v1/key/describe/my-key?enclave=tenant-1"})
	g.do(req{note: "the Kes-Enclave header is ignored", method: "GET", path: "/v1/key/describe/my-key", header: map[string]string{"Kes-Enclave": "tenant-1"}})

	g.section("non-canonical paths: 301 to the clean path (docs/api.md#routing, 13.5)")
	for _, r := range []struct{ as, method, path string }{
		{"admin", "GET", "/v1//status"},
		{"admin", "GET", "/v1/./status"},
		{"admin", "GET", "/v1/key/describe/../list/"},
		{"admin", "GET", "/v1/key//list/x?a=b&c=<d>"},
		{"admin", "GET", "//version"},
		{"admin", "GET", "/v1/status/.."},
		{"admin", "PUT", "/v1/key//create/x"},
		{"admin", "HEAD", "/v1//status"},
		{"admin", "DELETE", "/v1/key/delete/./my-key"},
		{"stranger", "GET", "/v1//status"},
		{"stranger", "GET", "/v1//nope"},
	} {
		g.do(req{as: r.as, method: r.method, path: r.path})
	}

	g.section("prefix routes without trailing slash: served directly with an empty argument (docs/api.md#routing)")
	g.do(req{method: "GET", path: "/v1/key/list"})
	g.do(req{method: "GET", path: "/v1/key/list?continue=x"})
	g.do(req{method: "GET", path: "/v1/policy/list"})
	g.do(req{method: "GET", path: "/v1/identity/list"})
	g.do(req{method: "POST", path: "/v1/key/create"})
	g.do(req{method: "POST", path: "/v1/key/import", body: `{"key":"` + keyAES + `","cipher":"AES256"}`})
	g.do(req{method: "GET", path: "/v1/key/describe"})
	g.do(req{method: "DELETE", path: "/v1/key/delete"})
	g.do(req{method: "POST", path: "/v1/key/generate"})
	g.do(req{method: "POST", path: "/v1/key/encrypt", body: `{}`})
	g.do(req{method: "POST", path: "/v1/key/decrypt", body: `{}`})
	g.do(req{method: "PUT", path: "/v1/key/hmac", body: `{}`})
	g.do(req{method: "GET", path: "/v1/policy/read"})

	g.section("percent-encoding: the argument is the decoded path (docs/api.md#routing)")
	g.do(req{method: "GET", path: "/v1/key/describe/my%2Dkey"})
	g.do(req{method: "GET", path: "/v1/key/describe/%6d%79-key"})
	g.do(req{method: "GET", path: "/v1/key/describe/a%2Fb"})
	g.do(req{method: "GET", path: "/v1/key/list/%2A"})
}

// goldenStoreFailures: docs/api.md#ready and the 502 answers of docs/api.md#errors.
func goldenStoreFailures(g *goldenEnv) {
	// First, while the cache has not seen any unreachable error: once it
	// has, it reports the store offline (504) until its next probe.
	g.section("/v1/ready and /v1/status (docs/api.md#ready, docs/api.md#status)")
	g.do(req{method: "GET", path: "/v1/ready"})
	g.store.set(nil, errors.New("vault says 500"))
	fmt.Fprintf(&g.out, "## key store: Status fails with a plain error\n\n")
	g.do(req{method: "GET", path: "/v1/ready"})
	g.do(req{method: "GET", path: "/v1/status", normalize: normalizeStatus})
	g.store.set(nil, &keystore.UnreachableError{Err: errors.New("connection refused")})
	fmt.Fprintf(&g.out, "## key store: Status fails with *keystore.UnreachableError\n\n")
	g.do(req{method: "GET", path: "/v1/ready"})
	g.do(req{method: "GET", path: "/v1/status", normalize: normalizeStatus})
	g.do(req{note: "403 comes before the store is asked", as: "user", method: "GET", path: "/v1/ready"})
	g.store.set(nil, nil)
	g.importKey("cached", keyAES, "AES256")
	g.importKey("uncached", keyAES, "AES256")
	g.do(req{note: "load into the cache", method: "GET", path: "/v1/key/describe/cached"})

	g.section("the store fails every operation with a plain error: 502")
	g.store.set(errors.New("disk on fire"), nil)
	fmt.Fprintf(&g.out, "## key store: Create, Get, Delete and List fail with a plain error\n\n")
	g.do(req{method: "POST", path: "/v1/key/create/new"})
	g.do(req{method: "POST", path: "/v1/key/import/new", body: `{"key":"` + keyAES + `","cipher":"AES256"}`})
	g.do(req{method: "GET", path: "/v1/key/describe/uncached"})
	g.do(req{method: "POST", path: "/v1/key/generate/uncached"})
	g.do(req{method: "POST", path: "/v1/key/encrypt/uncached", body: `{"plaintext":"AAAA"}`})
	g.do(req{method: "POST", path: "/v1/key/decrypt/uncached", body: `{"ciphertext":"AAAA"}`})
	g.do(req{method: "PUT", path: "/v1/key/hmac/uncached", body: `{"message":"AAAA"}`})
	g.do(req{method: "DELETE", path: "/v1/key/delete/uncached"})
	g.do(req{method: "GET", path: "/v1/key/list/"})
	g.do(req{note: "cached keys are still served", method: "GET", path: "/v1/key/describe/cached"})

	g.section("the store is unreachable: 504 on key routes (the original: 502)")
	g.store.set(&keystore.UnreachableError{Err: errors.New("connection refused")}, nil)
	fmt.Fprintf(&g.out, "## key store: Create, Get, Delete and List fail with *keystore.UnreachableError\n\n")
	g.do(req{method: "POST", path: "/v1/key/create/new"})
	g.do(req{method: "GET", path: "/v1/key/describe/uncached"})
	g.do(req{method: "DELETE", path: "/v1/key/delete/uncached"})
	g.do(req{method: "GET", path: "/v1/key/list/"})
	g.do(req{note: "cached keys are still served", method: "GET", path: "/v1/key/describe/cached"})
}

// goldenInternalErrors: the 500 answers that a failing random source
// produces (docs/api.md#key-create, docs/api.md#key-import, docs/api.md#key-generate, docs/api.md#key-encrypt).
func goldenInternalErrors(g *goldenEnv) {
	g.importKey("k", keyAES, "AES256")
	g.rand.setFail(true)
	fmt.Fprintf(&g.out, "## random source: every read fails from now on\n\n")
	g.do(req{method: "POST", path: "/v1/key/create/new"})
	g.do(req{method: "POST", path: "/v1/key/import/new", body: `{"key":"` + keyAES + `","cipher":"AES256"}`})
	g.do(req{method: "POST", path: "/v1/key/generate/k"})
	g.do(req{method: "POST", path: "/v1/key/encrypt/k", body: `{"plaintext":"AAAA"}`})
	g.do(req{note: "decrypt and hmac need no randomness", method: "PUT", path: "/v1/key/hmac/k", body: `{"message":"AAAA"}`})
	g.do(req{note: "nothing was created", method: "GET", path: "/v1/key/list/"})
}

// TestTLSClientAuthentication checks the handshake modes of docs/api.md#client-certificates and
// the identity errors of docs/api.md#identities over real TLS.
func TestTLSClientAuthentication(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	now := time.Now()
	admin := ca.Issue(t, testpki.Options{CommonName: "admin"})
	valid := func() *tls.Certificate { return &ca.Issue(t, testpki.Options{}).TLS }
	selfSigned := &testpki.SelfSigned(t, testpki.Options{}).TLS
	expired := &ca.Issue(t, testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}).TLS
	expiredSelf := &testpki.SelfSigned(t, testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}).TLS
	notYet := &ca.Issue(t, testpki.Options{NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}).TLS
	notYetSelf := &testpki.SelfSigned(t, testpki.Options{NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}).TLS

	// Two non-CA certificates in the presented chain.
	leaf1, leaf2 := ca.Issue(t, testpki.Options{}), ca.Issue(t, testpki.Options{})
	twoLeaves := &tls.Certificate{Certificate: [][]byte{leaf1.X509.Raw, leaf2.X509.Raw}, PrivateKey: leaf1.Key}
	self1, self2 := testpki.SelfSigned(t, testpki.Options{}), testpki.SelfSigned(t, testpki.Options{})
	twoSelf := &tls.Certificate{Certificate: [][]byte{self1.X509.Raw, self2.X509.Raw}, PrivateKey: self1.Key}
	// A CA certificate as the client certificate: no non-CA certificate.
	caAsLeaf := &ca.TLS
	// A leaf followed by its CA: the CA is dropped, the leaf identifies.
	leafAndCA := &tls.Certificate{Certificate: [][]byte{admin.X509.Raw, ca.X509.Raw}, PrivateKey: admin.Key}

	newServer := func(t *testing.T, verify bool, skipAuth bool) *testServer {
		conf := &server.Config{
			Admin: admin.Identity(),
			Store: mem.New(),
			TLS:   server.TLSConfig{VerifyClients: verify, ClientCAs: ca.Pool()},
		}
		if skipAuth {
			conf.Routes = map[string]server.RouteConfig{"/v1/status": {SkipAuth: true}}
		}
		return startServer(t, conf)
	}

	const (
		ok       = 0  // handshake and request succeed with 200
		rejected = -1 // the handshake fails
	)
	tests := []struct {
		name   string
		cert   *tls.Certificate
		path   string
		off    int    // status (or rejected) with tls.auth off
		on     int    // ... with tls.auth on
		errMsg string // the 400 message, if any
	}{
		{"no certificate", nil, "/version", rejected, rejected, ""},
		{"CA-signed", valid(), "/version", ok, ok, ""},
		{"CA-signed, admin", &admin.TLS, "/v1/status", ok, ok, ""},
		{"CA-signed, unknown identity", valid(), "/v1/status", 403, 403, ""},
		{"self-signed", selfSigned, "/version", ok, rejected, ""},
		{"expired, CA-signed", expired, "/version", rejected, rejected, ""},
		{"expired, self-signed", expiredSelf, "/version", rejected, rejected, ""},
		{"not yet valid, CA-signed", notYet, "/version", rejected, rejected, ""},
		{"not yet valid, self-signed", notYetSelf, "/version", rejected, rejected, ""},
		{"two non-CA certificates, CA-signed", twoLeaves, "/v1/status", 400, 400, "tls: received more than one client certificate"},
		{"two non-CA certificates, CA-signed, /version", twoLeaves, "/version", ok, ok, ""},
		{"two non-CA certificates, self-signed", twoSelf, "/v1/status", 400, rejected, "tls: received more than one client certificate"},
		{"CA certificate as leaf", caAsLeaf, "/v1/status", 400, 400, "tls: client certificate is required"},
		{"CA certificate as leaf, self-describe", caAsLeaf, "/v1/identity/self/describe", 404, 404, ""},
		{"leaf and its CA", leafAndCA, "/v1/status", ok, ok, ""},
	}
	for _, mode := range []struct {
		name   string
		verify bool
	}{{"auth off", false}, {"auth on", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ts := newServer(t, mode.verify, false)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					want := tt.off
					if mode.verify {
						want = tt.on
					}
					if want == ok {
						want = 200
					}
					status, body, err := get(t, ts.client(t, tt.cert), ts.addr, tt.path)
					switch {
					case want == rejected && err == nil:
						t.Fatalf("GET %s = %d %q, want a failed handshake", tt.path, status, body)
					case want == rejected:
						return
					case err != nil:
						t.Fatalf("GET %s: %v, want %d", tt.path, err, want)
					case status != want:
						t.Fatalf("GET %s = %d %q, want %d", tt.path, status, body, want)
					}
					if tt.errMsg != "" {
						if w := `{"message":"` + tt.errMsg + "\"\n}"; string(body) != w {
							t.Errorf("body = %q, want %q", body, w)
						}
					}
				})
			}
		})
	}

	// With a skip_auth route the handshake only requests a certificate;
	// routes that still verify answer 400 without one (docs/api.md#client-certificates, docs/api.md#identities).
	for _, verify := range []bool{false, true} {
		name := "skip_auth, auth off"
		if verify {
			name = "skip_auth, auth on"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := newServer(t, verify, true)
			c := ts.client(t, nil)
			for _, tt := range []struct {
				path   string
				status int
				body   string
			}{
				{"/version", 200, ""},
				{"/v1/status", 200, ""},
				{"/v1/ready", 400, "{\"message\":\"tls: client certificate is required\"\n}"},
				{"/v1/key/list/", 400, "{\"message\":\"tls: client certificate is required\"\n}"},
				{"/v1/identity/self/describe", 404, "{\"message\":\"identity does not exist\"\n}"},
			} {
				status, body, err := get(t, c, ts.addr, tt.path)
				if err != nil || status != tt.status || (tt.body != "" && string(body) != tt.body) {
					t.Errorf("GET %s without certificate = %d %q %v, want %d %q", tt.path, status, body, err, tt.status, tt.body)
				}
			}
			status, _, err := get(t, ts.client(t, selfSigned), ts.addr, "/v1/status")
			if verify && err == nil {
				t.Errorf("self-signed certificate accepted with auth on (status %d)", status)
			}
			if !verify && (err != nil || status != 200) {
				t.Errorf("self-signed certificate with auth off: %d %v", status, err)
			}
		})
	}

	// Not reachable over a listener: a request without TLS at all.
	t.Run("no TLS (in-process)", func(t *testing.T) {
		t.Parallel()
		srv, err := server.New(t.Context(), &server.Config{
			Admin: admin.Identity(),
			Store: mem.New(),
			TLS:   server.TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
		if want := "{\"message\":\"insecure connection: TLS is required\"\n}"; rec.Code != 400 || rec.Body.String() != want {
			t.Errorf("GET /v1/status without TLS = %d %q, want 400 %q", rec.Code, rec.Body, want)
		}
	})
}

// get sends GET path and returns status and body, or the transport error.
func get(t *testing.T, c *http.Client, addr, path string) (int, []byte, error) {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), "GET", "https://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
