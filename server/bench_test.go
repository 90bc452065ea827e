package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/loadgen"
	"github.com/openkes/openkes/internal/memlock"
	"github.com/openkes/openkes/internal/testpki"
)

// benchWriter is a reusable, allocation-free http.ResponseWriter.
type benchWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(s int)   { w.status = s }
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.body.Write(p)
}

// SetWriteDeadline lets http.ResponseController succeed, as on a real
// connection.
func (w *benchWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body.Reset()
}

// benchHandler returns an in-process server with key "k" and a request
// factory for it.
func benchHandler(b *testing.B) (http.Handler, *testpki.Cert) {
	b.Helper()
	e := &env{
		serverCert: testpki.Server(b),
		admin:      testpki.SelfSigned(b, testpki.Options{}),
	}
	srv, err := New(b.Context(), &Config{
		Admin: e.admin.Identity(),
		Store: newMemStore(),
		TLS:   TLSConfig{GetCertificate: e.getCertificate},
		Keys:  []string{"k"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv.Handler(), e.admin
}

func benchInProcess(b *testing.B, path string, body []byte) {
	h, admin := benchHandler(b)
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{admin.X509}}
	req, err := http.NewRequest("POST", path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.TLS = cs
	req.RemoteAddr = "127.0.0.1:1234"
	w := &benchWriter{h: http.Header{}}
	rd := bytes.NewReader(body)
	rc := io.NopCloser(rd)

	serve := func() {
		rd.Reset(body)
		req.Body = rc
		req.ContentLength = int64(len(body))
		w.reset()
		h.ServeHTTP(w, req)
	}
	serve()
	if w.status != 200 {
		b.Fatalf("POST %s: %d %s", path, w.status, w.body.Bytes())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
	if w.status != 200 {
		b.Fatalf("POST %s: %d %s", path, w.status, w.body.Bytes())
	}
}

// ciphertextFor returns a ciphertext of k made by the in-process server.
func ciphertextFor(b *testing.B, h http.Handler, admin *testpki.Cert) []byte {
	b.Helper()
	req, _ := http.NewRequest("POST", "/v1/key/generate/k", bytes.NewReader([]byte(`{"context":"YWJj"}`)))
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{admin.X509}}
	w := &benchWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	var resp struct{ Ciphertext []byte }
	if err := json.Unmarshal(w.body.Bytes(), &resp); err != nil {
		b.Fatal(err)
	}
	return resp.Ciphertext
}

func BenchmarkGenerate(b *testing.B) {
	benchInProcess(b, "/v1/key/generate/k", []byte(`{"context":"YWJj"}`))
}

func BenchmarkEncrypt(b *testing.B) {
	benchInProcess(b, "/v1/key/encrypt/k", []byte(`{"plaintext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","context":"YWJj"}`))
}

func BenchmarkHMAC(b *testing.B) {
	benchInProcess(b, "/v1/key/hmac/k", []byte(`{"message":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
}

func BenchmarkDecrypt(b *testing.B) {
	h, admin := benchHandler(b)
	ct := ciphertextFor(b, h, admin)
	body := []byte(`{"ciphertext":"` + b64(ct) + `","context":"YWJj"}`)
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{admin.X509}}
	req, _ := http.NewRequest("POST", "/v1/key/decrypt/k", nil)
	req.TLS = cs
	req.RemoteAddr = "127.0.0.1:1234"
	w := &benchWriter{h: http.Header{}}
	rd := bytes.NewReader(body)
	rc := io.NopCloser(rd)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = rc
		req.ContentLength = int64(len(body))
		w.reset()
		h.ServeHTTP(w, req)
	}
	if w.status != 200 {
		b.Fatalf("decrypt: %d %s", w.status, w.body.Bytes())
	}
}

// cpuTime returns the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPUTime returns the user+system CPU time of process pid from
// /proc/<pid>/stat (clock ticks of 10 ms).
func procCPUTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

const benchServerEnv = "OPENKES_BENCH_SERVER"

// TestBenchServerProcess is not a test: it is the server process of the
// BenchmarkE2E* benchmarks, which run it as a child process so that the
// server's CPU time and memory can be measured apart from the client's.
// With OPENKES_BENCH_SERVER_MLOCK=1 it locks its memory first, as the kes
// binary does, and says whether that worked ("MLOCKED 1" or "MLOCKED 0").
func TestBenchServerProcess(t *testing.T) {
	if os.Getenv(benchServerEnv) == "" {
		t.Skip("helper process of BenchmarkE2E*")
	}
	if os.Getenv(benchServerEnv+"_MLOCK") == "1" {
		fmt.Printf("MLOCKED %d\n", map[bool]int{false: 0, true: 1}[memlock.Lock()])
	}
	cert, err := tls.X509KeyPair([]byte(os.Getenv(benchServerEnv+"_CERT")), []byte(os.Getenv(benchServerEnv+"_KEY")))
	if err != nil {
		t.Fatal(err)
	}
	mode := os.Getenv(benchServerEnv)
	srv, err := New(t.Context(), &Config{
		Admin:       os.Getenv(benchServerEnv + "_ADMIN"),
		Store:       newMemStore(),
		TLS:         TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }},
		Keys:        []string{"k"},
		HTTP1Stdlib: mode == "kes-stdlib",
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	if mode == "raw" {
		// The floor of any HTTP/1.1 server on top of crypto/tls and
		// http.ReadRequest: a goroutine per connection that parses each
		// request, reads its body and writes a constant answer with one
		// Write.
		tl := tls.NewListener(ln, srv.state.Load().tlsConfig)
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				go serveRaw(c)
			}
		}()
		io.Copy(io.Discard, os.Stdin)
		tl.Close()
		srv.Close()
		return
	}
	if mode == "baseline" {
		// A bare net/http server (HTTP/2 and HTTP/1.1) on the same TLS
		// settings with the null handler: the cost floor of a JSON API
		// over TLS on this machine.
		hs := &http.Server{Handler: http.HandlerFunc(nullHandler), TLSConfig: srv.state.Load().tlsConfig}
		go hs.ServeTLS(ln, "", "")
		io.Copy(io.Discard, os.Stdin)
		hs.Close()
		srv.Close()
		return
	}
	if mode == "loop" {
		// The server's connection handling with the null handler instead
		// of the KES handler.
		srv.testHandler = http.HandlerFunc(nullHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin
	cancel()
	<-done
	srv.Close()
}

// constantAnswer is the body of the "raw" server: a generate response.
const constantAnswer = `{"plaintext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}` + "\n"

// nullHandler is the KES API without KES work: it decodes the JSON body
// of a generate or decrypt request and encodes an answer of the same shape
// and size (a 32-byte plaintext, and for generate a 75-byte ciphertext),
// without keys, policies, audit or metrics.
func nullHandler(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Context    []byte `json:"context"`
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type generated struct {
		Plaintext  []byte `json:"plaintext"`
		Ciphertext []byte `json:"ciphertext,omitempty"`
	}
	resp := generated{Plaintext: make([]byte, 32)}
	if !strings.HasPrefix(r.URL.Path, "/v1/key/decrypt/") {
		resp.Ciphertext = make([]byte, 75)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// serveRaw is the connection loop of the "raw" benchmark server.
func serveRaw(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var out []byte
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		out = append(out[:0], "HTTP/1.1 200 OK\r\nContent-Length: "...)
		out = strconv.AppendInt(out, int64(len(constantAnswer)), 10)
		out = append(out, "\r\nContent-Type: application/json\r\nDate: "...)
		out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\n\r\n"...)
		out = append(out, constantAnswer...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// benchChild is a running TestBenchServerProcess.
type benchChild struct {
	addr    string
	pid     int
	mlocked bool // it locked its memory (only asked for with lockMemory)
}

// startServerProcess starts TestBenchServerProcess in mode, with its
// memory locked if lockMemory. OPENKES_BENCH_SERVER_CPUPROFILE and
// _MEMPROFILE name files for the child's CPU and memory profiles (written
// when it exits; the last child of a run wins).
func startServerProcess(b *testing.B, mode string, lockMemory bool, serverCert, admin *testpki.Cert) benchChild {
	args := []string{"-test.run=^TestBenchServerProcess$"}
	if prof := os.Getenv(benchServerEnv + "_CPUPROFILE"); prof != "" {
		args = append(args, "-test.cpuprofile="+prof) // for profiling the server side
	}
	if prof := os.Getenv(benchServerEnv + "_MEMPROFILE"); prof != "" {
		args = append(args, "-test.memprofile="+prof)
	}
	if prof := os.Getenv(benchServerEnv + "_MUTEXPROFILE"); prof != "" {
		args = append(args, "-test.mutexprofile="+prof)
	}
	if prof := os.Getenv(benchServerEnv + "_BLOCKPROFILE"); prof != "" {
		args = append(args, "-test.blockprofile="+prof)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(),
		benchServerEnv+"="+mode,
		benchServerEnv+"_CERT="+string(serverCert.CertPEM()),
		benchServerEnv+"_KEY="+string(serverCert.KeyPEM(b)),
		benchServerEnv+"_ADMIN="+admin.Identity(),
		benchServerEnv+"_MLOCK="+map[bool]string{false: "0", true: "1"}[lockMemory],
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	child := benchChild{pid: cmd.Process.Pid}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "MLOCKED 1" {
			child.mlocked = true
		}
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go io.Copy(io.Discard, stdout)
			child.addr = a
			return child
		}
	}
	b.Fatal("server process did not start")
	return child
}

// rssMiB returns the resident set size (VmRSS) of process pid in MiB.
func rssMiB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS: %q: %v", line, err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// An e2ePattern is how the clients of an end-to-end benchmark reach the
// server.
type e2ePattern struct {
	name string
	// proto is "h2" (every request on ONE HTTP/2 connection, as Go's
	// transport and so the kms-go client do), "http1.1" (keep-alive
	// connections, one per client) or "newconn" (a new mTLS connection
	// with HTTP/1.1 per request).
	proto   string
	clients int  // concurrent requests (h2: streams on the connection)
	resume  bool // newconn: offer TLS session resumption (a session cache)
}

var (
	patternH2      = e2ePattern{name: "h2-1conn-64streams", proto: "h2", clients: 64}
	patternH1      = e2ePattern{name: "http1.1-keepalive", proto: "http1.1", clients: 8}
	e2ePatterns    = []e2ePattern{patternH2, patternH1, {name: "newconn", proto: "newconn", clients: 8}, {name: "newconn-resume", proto: "newconn", clients: 8, resume: true}}
	e2eServerModes = []string{"kes", "baseline"}
)

// e2eClient is the client side of an end-to-end benchmark.
type e2eClient struct {
	c     *http.Client
	base  string
	dials atomic.Int64
}

func newE2EClient(b *testing.B, p e2ePattern, addr string, serverCert, admin *testpki.Cert) *e2eClient {
	roots := x509.NewCertPool()
	roots.AddCert(serverCert.X509)
	ec := &e2eClient{base: "https://" + addr}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{admin.TLS}},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ec.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: p.clients,
	}
	switch p.proto {
	case "h2":
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP2(true)
		tr.MaxConnsPerHost = 1
	case "http1.1":
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	case "newconn":
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		tr.DisableKeepAlives = true
		if p.resume {
			tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		}
	default:
		b.Fatalf("unknown protocol %q", p.proto)
	}
	b.Cleanup(tr.CloseIdleConnections)
	ec.c = &http.Client{Transport: tr}
	return ec
}

// run sends POST path with payload from clients workers until n
// requests were answered (n > 0) or until ctx ends, and fails b on any
// error.
func (ec *e2eClient) run(ctx context.Context, b *testing.B, clients, n int, path string, payload []byte) loadgen.Result {
	res := loadgen.Run(ctx, loadgen.Options{Clients: []*http.Client{ec.c}, Streams: clients, URL: ec.base + path, Body: payload, Requests: n})
	if res.Errors > 0 {
		b.Fatalf("%s: %d of %d requests failed, the first: %v", path, res.Errors, res.Requests, res.FirstError)
	}
	return res
}

// reportLoad adds the latency percentiles and, for new connections, the
// share of resumed TLS sessions.
func reportLoad(b *testing.B, p e2ePattern, res *loadgen.Result) {
	b.ReportMetric(float64(res.Percentile(0.50))/1e3, "p50-µs")
	b.ReportMetric(float64(res.Percentile(0.99))/1e3, "p99-µs")
	if p.proto == "newconn" {
		b.ReportMetric(float64(res.Resumed)/float64(max(1, res.Requests)), "resumed/op")
	}
}

// benchE2E drives a server in a child process (mode, see
// TestBenchServerProcess) over real TLS as pattern p says. It reports
// server-cpu-µs/op (the CPU time of the server process per request),
// client-cpu-µs/op (that of the benchmark process, the clients), the
// p50 and p99 latency and, for new connections, the share of resumed
// sessions.
func benchE2E(b *testing.B, mode string, p e2ePattern, path string, body func(*testing.B, *http.Client, string) []byte) {
	serverCert := testpki.Server(b)
	admin := testpki.SelfSigned(b, testpki.Options{})
	child := startServerProcess(b, mode, false, serverCert, admin)
	ec := newE2EClient(b, p, child.addr, serverCert, admin)
	payload := body(b, ec.c, ec.base)
	// Warm up: the HTTP/2 connection, the session cache, the key cache.
	ec.run(b.Context(), b, 1, 2, path, payload)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0, srv0 := cpuTime(), procCPUTime(b, child.pid)
	res := ec.run(b.Context(), b, p.clients, b.N, path, payload)
	b.StopTimer()
	b.ReportMetric(float64(procCPUTime(b, child.pid)-srv0)/float64(b.N)/1e3, "server-cpu-µs/op")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "client-cpu-µs/op")
	reportLoad(b, p, &res)
	if p.proto == "h2" && ec.dials.Load() != 1 {
		b.Fatalf("h2: %d connections, want 1", ec.dials.Load())
	}
}

func generateBody(*testing.B, *http.Client, string) []byte { return []byte(`{"context":"YWJj"}`) }

func decryptBody(b *testing.B, c *http.Client, base string) []byte {
	var gen struct{ Ciphertext []byte }
	resp, err := c.Post(base+"/v1/key/generate/k", "", strings.NewReader(`{"context":"YWJj"}`))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&gen); err != nil || len(gen.Ciphertext) == 0 {
		b.Fatalf("generate: %s %v", resp.Status, err)
	}
	return []byte(`{"ciphertext":"` + b64(gen.Ciphertext) + `","context":"YWJj"}`)
}

// The end-to-end benchmarks run every client pattern (e2ePatterns)
// against "kes", the server, and "baseline", a bare net/http server with
// nullHandler on the same TLS settings, one beside the other, so that
// the ratio of their server-cpu-µs/op is what the KES work and the
// server's own layers cost:
//
//	go test ./server/ -run '^$' -bench 'E2E(Generate|Decrypt)' -benchtime 20000x -count 3
//
// http1.1-stdlib is the server with Config.HTTP1Stdlib (net/http's
// HTTP/1.1 server instead of internal/h1).

func benchE2EAll(b *testing.B, path string, body func(*testing.B, *http.Client, string) []byte) {
	for _, p := range e2ePatterns {
		for _, mode := range e2eServerModes {
			b.Run(p.name+"/"+mode, func(b *testing.B) { benchE2E(b, mode, p, path, body) })
		}
	}
	b.Run("http1.1-stdlib/kes", func(b *testing.B) { benchE2E(b, "kes-stdlib", patternH1, path, body) })
}

func BenchmarkE2EGenerate(b *testing.B) { benchE2EAll(b, "/v1/key/generate/k", generateBody) }

func BenchmarkE2EDecrypt(b *testing.B) { benchE2EAll(b, "/v1/key/decrypt/k", decryptBody) }

// BenchmarkE2ERaw is BenchmarkE2EGenerate against serveRaw, the floor of
// any HTTP/1.1 server built on crypto/tls and http.ReadRequest.
func BenchmarkE2ERaw(b *testing.B) {
	b.Run("http1.1", func(b *testing.B) { benchE2E(b, "raw", patternH1, "/v1/key/generate/k", generateBody) })
}

// BenchmarkE2ELoop is BenchmarkE2EGenerate against the server's own
// connection handling (Serve) with nullHandler: what the HTTP layer costs
// without the KES handler.
func BenchmarkE2ELoop(b *testing.B) {
	for _, p := range []e2ePattern{patternH2, patternH1} {
		b.Run(p.name, func(b *testing.B) { benchE2E(b, "loop", p, "/v1/key/generate/k", generateBody) })
	}
}

// benchDuration returns the duration in the environment variable name,
// or def if it is unset.
func benchDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration such as 60s", name, v)
	}
	return d
}

// benchLoad runs the h2 generate load (one connection, 64 streams) for d
// against the server with its memory locked as the kes binary locks it,
// whatever b.N is, and reports the server's resident memory (rss-MiB at
// the end, and with samples every sample also rss-first-MiB, the first
// sample, and rss-max-MiB), whether it could lock (mlocked=1; 0 when
// RLIMIT_MEMLOCK is finite and the process is not root), req/s,
// server-cpu-µs/req and the latencies.
func benchLoad(b *testing.B, d, sample time.Duration) {
	serverCert := testpki.Server(b)
	admin := testpki.SelfSigned(b, testpki.Options{})
	child := startServerProcess(b, "kes", true, serverCert, admin)
	ec := newE2EClient(b, patternH2, child.addr, serverCert, admin)
	path, payload := "/v1/key/generate/k", generateBody(b, nil, "")
	ec.run(b.Context(), b, 1, 2, path, payload)

	b.ResetTimer()
	ctx, cancel := context.WithTimeout(b.Context(), d)
	defer cancel()
	stop := ctx.Done()
	var rss []float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if sample <= 0 {
			return
		}
		t := time.NewTicker(sample)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rss = append(rss, rssMiB(b, child.pid))
				b.Logf("%s rss %.1f MiB", time.Duration(len(rss))*sample, rss[len(rss)-1])
			}
		}
	}()
	srv0 := procCPUTime(b, child.pid)
	res := ec.run(ctx, b, patternH2.clients, 0, path, payload)
	cpu := procCPUTime(b, child.pid) - srv0
	end := rssMiB(b, child.pid)
	<-sampled
	b.StopTimer()
	b.ReportMetric(end, "rss-MiB")
	if len(rss) > 0 {
		b.ReportMetric(rss[0], "rss-first-MiB")
		b.ReportMetric(slices.Max(rss), "rss-max-MiB")
	}
	b.ReportMetric(map[bool]float64{false: 0, true: 1}[child.mlocked], "mlocked")
	b.ReportMetric(res.RPS(), "req/s")
	b.ReportMetric(float64(cpu)/float64(max(1, res.Requests))/1e3, "server-cpu-µs/req")
	reportLoad(b, patternH2, &res)
}

// BenchmarkE2EMemoryLoad runs the h2 generate load for KES_BENCH_LOAD
// (default 3s) against the server with locked memory and reports its
// RSS at the end (see benchLoad). The acceptance run is a minute:
//
//	KES_BENCH_LOAD=60s go test ./server/ -run '^$' -bench E2EMemoryLoad -benchtime 1x
func BenchmarkE2EMemoryLoad(b *testing.B) {
	benchLoad(b, benchDuration(b, "KES_BENCH_LOAD", 3*time.Second), 0)
}

// BenchmarkE2EMemorySoak is BenchmarkE2EMemoryLoad for KES_BENCH_SOAK
// (opt-in, e.g. 10m), sampling the RSS every 10 s: rss-first-MiB,
// rss-max-MiB and rss-MiB (the end) show whether it stays flat.
//
//	KES_BENCH_SOAK=10m go test ./server/ -run '^$' -bench E2EMemorySoak -benchtime 1x -timeout 20m
func BenchmarkE2EMemorySoak(b *testing.B) {
	if os.Getenv("KES_BENCH_SOAK") == "" {
		b.Skip("opt-in: set KES_BENCH_SOAK to a duration such as 10m")
	}
	benchLoad(b, benchDuration(b, "KES_BENCH_SOAK", 0), 10*time.Second)
}
