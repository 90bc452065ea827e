package interop

import (
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
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore/keystoretest"
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
type syncBuffer = keystoretest.LogBuffer

// kesServer is a running kes server process.
type kesServer struct {
	Addr   string // host:port
	URL    string // https://host:port
	Dir    string // working directory with config, certificates and keys
	CA     *x509.CertPool
	Stdout *syncBuffer
	Stderr *syncBuffer

	// Process is the running kes process, for sending signals.
	Process *os.Process

	configAddr string        // the address written into config.yml
	keyStore   string        // the keystore section, see serverOptions
	done       chan struct{} // closed when the process has exited
	waitErr    error         // the result of cmd.Wait, once done is closed
}

// serverOptions describe the server to start.
type serverOptions struct {
	// Config is the YAML config without address, tls.key/cert and
	// keystore; those are added by startServer.
	Config string
	// RawConfig, if set, is the complete config file, written as it is
	// except that "{{ADDR}}" becomes the listen address and "{{DIR}}" the
	// server's directory. Config and KeyStore are then ignored.
	RawConfig string
	// KeyStore is the YAML of the "keystore" section, indented as its
	// children (e.g. "  etcd:\n    endpoints: [...]\n"). Empty means an
	// fs key store in <dir>/keys.
	KeyStore string
	// KeyFiles are copied into the fs key store before start.
	KeyFiles map[string][]byte
	// Files are written into the server's directory before start.
	Files map[string][]byte
	// Args are extra command-line arguments after "server --config
	// config.yml".
	Args []string
	// ListenAddr, if set, is the address the server listens on because
	// Args contain --addr; the config file still names another one.
	ListenAddr string
}

// startAdminServer starts a server like startServer whose config begins
// with a fresh admin identity (opts.Config follows it), and returns it
// with an upstream SDK client for that admin.
func startAdminServer(t *testing.T, opts serverOptions) (*kesServer, *kes.Client) {
	t.Helper()
	admin := newAPIKey(t)
	opts.Config = "admin:\n  identity: " + admin.Identity().String() + "\n" + opts.Config
	srv := startServer(t, opts)
	return srv, srv.apiKeyClient(t, admin)
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

	for name, data := range opts.Files {
		write(name, data, 0o600)
	}

	addr := freeAddr(t)
	srv := &kesServer{
		Addr:       addr,
		URL:        "https://" + addr,
		Dir:        dir,
		CA:         x509.NewCertPool(),
		configAddr: addr,
		keyStore:   opts.KeyStore,
	}
	if opts.RawConfig != "" {
		write("config.yml", []byte(strings.NewReplacer("{{ADDR}}", addr, "{{DIR}}", dir).Replace(opts.RawConfig)), 0o600)
	} else {
		write("config.yml", []byte(srv.renderConfig(opts.Config)), 0o600)
	}

	if opts.ListenAddr != "" {
		srv.Addr, srv.URL = opts.ListenAddr, "https://"+opts.ListenAddr
	}
	srv.CA.AddCert(srvCert.X509)
	srv.launch(t, append([]string{"server", "--config", "config.yml"}, opts.Args...))
	srv.waitListening(t, 20*time.Second)
	return srv
}

// renderConfig returns the config file startServer writes for body.
func (s *kesServer) renderConfig(body string) string {
	keyStore := s.keyStore
	if keyStore == "" {
		keyStore = "  fs:\n    path: keys\n"
	}
	config := fmt.Sprintf("address: %s\n%s\nkeystore:\n%s", s.configAddr, body, keyStore)
	if !strings.Contains(body, "tls:") {
		config += "tls:\n  key: server.key\n  cert: server.cert\n"
	}
	return config
}

// rewriteConfig replaces config.yml of a server started by startServer
// with the file startServer would write for body.
func (s *kesServer) rewriteConfig(t *testing.T, body string) {
	t.Helper()
	writeFile(t, s.Dir, "config.yml", []byte(s.renderConfig(body)))
}

// launch starts kes with args in s.Dir, writing its output to s.Stdout
// and s.Stderr. The process is interrupted and waited for when the test
// ends.
func (s *kesServer) launch(t *testing.T, args []string) {
	t.Helper()
	s.Stdout, s.Stderr = new(syncBuffer), new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, kesBinary, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	s.Process = cmd.Process
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
		if t.Failed() {
			t.Logf("kes stdout:\n%s\nkes stderr:\n%s", s.Stdout, s.Stderr)
		}
	})
}

// waitListening waits until s.Addr accepts TCP connections. It fails the
// test if the process exits first or timeout passes.
func (s *kesServer) waitListening(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-s.done:
			t.Fatalf("kes server exited early: %v\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.Stdout, s.Stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kes server did not start listening on %s\nstderr:\n%s", s.Addr, s.Stderr)
		}
	}
}

// wait waits at most timeout for the process to exit. It reports
// whether the process exited and, if so, the result of cmd.Wait.
func (s *kesServer) wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-s.done:
		return true, s.waitErr
	default:
	}
	select {
	case <-s.done:
		return true, s.waitErr
	case <-time.After(timeout):
		return false, nil
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

// waitReady polls c.IsReady until the server reports ready; it fails the
// test after d.
func waitReady(t *testing.T, c *kes.Client, d time.Duration) {
	t.Helper()
	eventually(t, d, func() error {
		if ready, err := c.IsReady(t.Context()); !ready {
			return fmt.Errorf("IsReady = false, %v; want true", err)
		}
		return nil
	})
}

// waitUnready polls c.IsReady until the server reports that its key store
// is unreachable (504); it fails the test after d.
func waitUnready(t *testing.T, c *kes.Client, d time.Duration) {
	t.Helper()
	eventually(t, d, func() error {
		if ready, err := c.IsReady(t.Context()); ready || status(err) != http.StatusGatewayTimeout {
			return fmt.Errorf("IsReady = %t, %v; want false, 504", ready, err)
		}
		return nil
	})
}

// checkStartedDown checks a server that started while its key store was
// unreachable: /v1/ready says 504, and so does creating the key name.
func checkStartedDown(t *testing.T, c *kes.Client, name string) {
	t.Helper()
	if ready, err := c.IsReady(t.Context()); ready || status(err) != http.StatusGatewayTimeout {
		t.Fatalf("IsReady with the key store down = %t, %v; want false, 504", ready, err)
	}
	if err := c.CreateKey(t.Context(), name); status(err) != http.StatusGatewayTimeout {
		t.Fatalf("CreateKey(%s) with the key store down = %v, want 504", name, err)
	}
}
