package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
	"github.com/openkes/openkes/internal/testpki"
)

// kesBinary is the path of the kes binary built by TestMain.
var kesBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "openkes-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kesBinary = filepath.Join(dir, "kes")
	build := exec.Command("go", "build", "-o", kesBinary, "./cmd/kes")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "interop: building kes:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// kesServer is a running kes server process.
type kesServer struct {
	Addr   string // host:port
	URL    string // https://host:port
	Dir    string // working directory with config, certificates and keys
	CA     *x509.CertPool
	Stdout *syncBuffer
	Stderr *syncBuffer
}

// serverOptions describe the server to start.
type serverOptions struct {
	// Config is the YAML config without address, tls.key/cert and
	// keystore; those are added by startServer. "{{KEYSTORE}}" is not
	// needed: an fs key store in <dir>/keys is always used.
	Config string
	// KeyFiles are copied into the fs key store before start.
	KeyFiles map[string][]byte
}

// startServer starts `kes server --config` in a temporary directory and
// waits until it answers.
func startServer(t *testing.T, opts serverOptions) *kesServer {
	t.Helper()
	dir := t.TempDir()
	srvCert := testpki.Server(t)
	write := func(name string, data []byte, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("server.cert", srvCert.CertPEM(), 0o644)
	write("server.key", srvCert.KeyPEM(t), 0o600)
	if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range opts.KeyFiles {
		write(filepath.Join("keys", name), data, 0o600)
	}

	addr := freeAddr(t)
	config := fmt.Sprintf("address: %s\n%s\nkeystore:\n  fs:\n    path: keys\n", addr, opts.Config)
	if !strings.Contains(opts.Config, "tls:") {
		config += "tls:\n  key: server.key\n  cert: server.cert\n"
	}
	write("config.yml", []byte(config), 0o600)

	srv := &kesServer{
		Addr:   addr,
		URL:    "https://" + addr,
		Dir:    dir,
		CA:     x509.NewCertPool(),
		Stdout: new(syncBuffer),
		Stderr: new(syncBuffer),
	}
	srv.CA.AddCert(srvCert.X509)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, kesBinary, "server", "--config", "config.yml")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = srv.Stdout, srv.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("kes stdout:\n%s\nkes stderr:\n%s", srv.Stdout, srv.Stderr)
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return srv
		}
		select {
		case err := <-exited:
			t.Fatalf("kes server exited early: %v\nstdout:\n%s\nstderr:\n%s", err, srv.Stdout, srv.Stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kes server did not start listening on %s\nstderr:\n%s", addr, srv.Stderr)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// apiKeyClient returns an upstream SDK client that authenticates with key,
// built exactly as MinIO builds it (kes.NewClient), trusting the test CA.
func (s *kesServer) apiKeyClient(t *testing.T, key kes.APIKey) *kes.Client {
	t.Helper()
	client, err := kes.NewClient(s.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	client.HTTPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = s.CA
	return client
}

// certClient returns an upstream SDK client that authenticates with cert.
func (s *kesServer) certClient(cert tls.Certificate) *kes.Client {
	return kes.NewClientWithConfig(s.URL, &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      s.CA,
	})
}

// newAPIKey generates a fresh API key.
func newAPIKey(t *testing.T) kes.APIKey {
	t.Helper()
	key, err := kes.GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeFile writes data to dir/name.
func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
