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
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
// server's CPU time can be measured apart from the client's.
func TestBenchServerProcess(t *testing.T) {
	if os.Getenv(benchServerEnv) == "" {
		t.Skip("helper process of BenchmarkE2E*")
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
		// A bare net/http server on the same TLS settings: the cost floor
		// of HTTP over TLS on this machine.
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, constantAnswer)
			}),
			TLSConfig: srv.state.Load().tlsConfig,
		}
		go hs.ServeTLS(ln, "", "")
		io.Copy(io.Discard, os.Stdin)
		hs.Close()
		srv.Close()
		return
	}
	if mode == "loop" {
		// The server's connection handling with the constant answer of
		// "baseline" instead of the KES handler.
		srv.testHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, constantAnswer)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes stdin
	cancel()
	<-done
	srv.Close()
}

// constantAnswer is the body of the "baseline" and "raw" servers: a
// generate response.
const constantAnswer = `{"plaintext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}` + "\n"

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

// startServerProcess starts TestBenchServerProcess and returns its
// address and pid.
func startServerProcess(b *testing.B, mode string, serverCert, admin *testpki.Cert) (addr string, pid int) {
	args := []string{"-test.run=^TestBenchServerProcess$"}
	if prof := os.Getenv(benchServerEnv + "_CPUPROFILE"); prof != "" {
		args = append(args, "-test.cpuprofile="+prof) // for profiling the server side
	}
	if prof := os.Getenv(benchServerEnv + "_MEMPROFILE"); prof != "" {
		args = append(args, "-test.memprofile="+prof)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(),
		benchServerEnv+"="+mode,
		benchServerEnv+"_CERT="+string(serverCert.CertPEM()),
		benchServerEnv+"_KEY="+string(serverCert.KeyPEM(b)),
		benchServerEnv+"_ADMIN="+admin.Identity(),
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
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go io.Copy(io.Discard, stdout)
			return a, cmd.Process.Pid
		}
	}
	b.Fatal("server process did not start")
	return "", 0
}

// benchE2E drives a server in a child process over real TLS with
// keep-alive connections from parallel clients. server-cpu-µs/op is the
// CPU time of the server process per request; client-cpu-µs/op that of
// the benchmark process (the clients).
func benchE2E(b *testing.B, mode, proto, path string, body func(*testing.B, *http.Client, string) []byte) {
	serverCert := testpki.Server(b)
	admin := testpki.SelfSigned(b, testpki.Options{})
	addr, pid := startServerProcess(b, mode, serverCert, admin)
	roots := x509.NewCertPool()
	roots.AddCert(serverCert.X509)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{admin.TLS}},
		MaxIdleConnsPerHost: 64,
	}
	switch proto {
	case "h2":
		tr.ForceAttemptHTTP2 = true
	case "http1.1":
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := "https://" + addr + path
	payload := body(b, c, "https://"+addr)

	b.ReportAllocs()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 concurrent clients, as the target is measured
	b.ResetTimer()
	cpu0, srv0 := cpuTime(), procCPUTime(b, pid)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.ReadFull(resp.Body, buf)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("%s: %s %s", path, resp.Status, buf[:n])
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(procCPUTime(b, pid)-srv0)/float64(b.N)/1e3, "server-cpu-µs/op")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "client-cpu-µs/op")
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

// The end-to-end benchmarks run every server on HTTP/1.1 and on HTTP/2:
// "kes" is the server with its own HTTP/1.1 loop, "kes-stdlib" the server
// with Config.HTTP1Stdlib (net/http's HTTP/1.1 server), "baseline" a bare
// net/http server with a constant answer and "raw" the floor of HTTP/1.1
// over crypto/tls (serveRaw), "loop" the server's connection handling with
// the constant answer of "baseline".

func BenchmarkE2EGenerate(b *testing.B) {
	for _, tt := range []struct{ name, mode, proto string }{
		{"h2", "kes", "h2"},
		{"http1.1", "kes", "http1.1"},
		{"http1.1-stdlib", "kes-stdlib", "http1.1"},
	} {
		b.Run(tt.name, func(b *testing.B) { benchE2E(b, tt.mode, tt.proto, "/v1/key/generate/k", generateBody) })
	}
}

func BenchmarkE2EDecrypt(b *testing.B) {
	for _, tt := range []struct{ name, mode, proto string }{
		{"h2", "kes", "h2"},
		{"http1.1", "kes", "http1.1"},
		{"http1.1-stdlib", "kes-stdlib", "http1.1"},
	} {
		b.Run(tt.name, func(b *testing.B) { benchE2E(b, tt.mode, tt.proto, "/v1/key/decrypt/k", decryptBody) })
	}
}

// BenchmarkE2EBaseline is BenchmarkE2EGenerate against a bare net/http
// server with a constant answer: the floor that the KES numbers should be
// compared with.
func BenchmarkE2EBaseline(b *testing.B) {
	for _, proto := range []string{"h2", "http1.1"} {
		b.Run(proto, func(b *testing.B) { benchE2E(b, "baseline", proto, "/v1/key/generate/k", generateBody) })
	}
}

// BenchmarkE2ERaw is BenchmarkE2EGenerate against serveRaw, the floor of
// any HTTP/1.1 server built on crypto/tls and http.ReadRequest.
func BenchmarkE2ERaw(b *testing.B) {
	b.Run("http1.1", func(b *testing.B) { benchE2E(b, "raw", "http1.1", "/v1/key/generate/k", generateBody) })
}

// BenchmarkE2ELoop is BenchmarkE2EBaseline against the server's own
// connection handling (Serve) with the constant answer: what the HTTP
// layer costs without the KES handler.
func BenchmarkE2ELoop(b *testing.B) {
	b.Run("http1.1", func(b *testing.B) { benchE2E(b, "loop", "http1.1", "/v1/key/generate/k", generateBody) })
}
