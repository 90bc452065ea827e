package https

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

// writeFile writes data to name below dir and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func concat(blocks ...[]byte) []byte {
	var out []byte
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// encryptedKeyPEM encrypts the key of c as a legacy RFC 1423 PEM block.
func encryptedKeyPEM(t *testing.T, c *testpki.Cert, password string) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(c.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the tests must produce the legacy format the loader still reads.
	block, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", der, []byte(password), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func TestLoadCertificate(t *testing.T) {
	t.Parallel()
	server := testpki.Server(t)
	other := testpki.Server(t)
	noSAN := testpki.SelfSigned(t, testpki.Options{CommonName: "no-san"})
	ipOnly := testpki.SelfSigned(t, testpki.Options{IPs: []net.IP{net.IPv4(10, 0, 0, 1)}})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert := testpki.SelfSigned(t, testpki.Options{DNSNames: []string{"kes.example"}, Key: rsaKey})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	ecDER, err := x509.MarshalECPrivateKey(server.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	encrypted := encryptedKeyPEM(t, server, "correct_password")

	tests := []struct {
		name     string
		cert     []byte
		key      []byte
		password string
		want     *testpki.Cert // nil: expect an error
		wantErr  string        // substring of the error, or the exact text if exact is set
		exact    bool
	}{
		{name: "pkcs8", cert: server.CertPEM(), key: server.KeyPEM(t), want: server},
		{name: "plain key with password", cert: server.CertPEM(), key: server.KeyPEM(t), password: "ignored", want: server},
		{name: "pkcs1 rsa", cert: rsaCert.CertPEM(), key: pkcs1, want: rsaCert},
		{name: "sec1 ec", cert: server.CertPEM(), key: sec1, want: server},
		{name: "ip san only", cert: ipOnly.CertPEM(), key: ipOnly.KeyPEM(t), want: ipOnly},
		{name: "key file with certificate first", cert: server.CertPEM(), key: concat(server.CertPEM(), server.KeyPEM(t)), want: server},
		{name: "first key is used", cert: server.CertPEM(), key: concat(server.KeyPEM(t), other.KeyPEM(t)), want: server},
		{name: "second key is not used", cert: server.CertPEM(), key: concat(other.KeyPEM(t), server.KeyPEM(t)), wantErr: "private key does not match"},
		{name: "chain", cert: concat(server.CertPEM(), other.CertPEM()), key: server.KeyPEM(t), want: server},
		{name: "text around blocks", cert: concat([]byte("subject=CN=localhost\n"), server.CertPEM(), []byte("trailer\n")), key: server.KeyPEM(t), want: server},
		{name: "encrypted correct password", cert: server.CertPEM(), key: encrypted, password: "correct_password", want: server},
		{name: "encrypted no password", cert: server.CertPEM(), key: encrypted, wantErr: "https: private key is encrypted: password required", exact: true},
		{name: "encrypted wrong password", cert: server.CertPEM(), key: encrypted, password: "wrong_password", wantErr: "failed to decrypt private key"},
		{name: "certificate file with private key", cert: concat(server.CertPEM(), server.KeyPEM(t)), key: server.KeyPEM(t), wantErr: "certificate file contains a private key"},
		{name: "certificate file with other block", cert: concat(server.CertPEM(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1}})), key: server.KeyPEM(t), wantErr: `"X509 CRL"`},
		{name: "empty certificate file", cert: nil, key: server.KeyPEM(t), wantErr: "no PEM-encoded certificate"},
		{name: "no private key", cert: server.CertPEM(), key: server.CertPEM(), wantErr: "no PEM-encoded private key"},
		{name: "encrypted pkcs8", cert: server.CertPEM(), key: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), password: "x", wantErr: "encrypted PKCS#8"},
		{name: "key mismatch", cert: server.CertPEM(), key: other.KeyPEM(t), wantErr: "private key does not match"},
		{name: "no SAN", cert: noSAN.CertPEM(), key: noSAN.KeyPEM(t), wantErr: "invalid TLS certificate: certificate does not contain any DNS or IP address as SAN", exact: true},
		{name: "garbage key", cert: server.CertPEM(), key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), wantErr: "https:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile := writeFile(t, dir, "server.cert", tt.cert)
			keyFile := writeFile(t, dir, "server.key", tt.key)
			got, err := LoadCertificate(certFile, keyFile, tt.password)
			if tt.want == nil {
				switch {
				case err == nil:
					t.Fatalf("LoadCertificate() = %v, want error %q", got, tt.wantErr)
				case tt.exact && err.Error() != tt.wantErr:
					t.Fatalf("LoadCertificate() error = %q, want %q", err, tt.wantErr)
				case !strings.Contains(err.Error(), tt.wantErr):
					t.Fatalf("LoadCertificate() error = %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCertificate() error = %v", err)
			}
			if !got.Leaf.Equal(tt.want.X509) {
				t.Errorf("LoadCertificate() leaf = %s, want %s", got.Leaf.Subject, tt.want.X509.Subject)
			}
		})
	}
}

func TestLoadCertificateErrors(t *testing.T) {
	t.Parallel()
	server := testpki.Server(t)
	dir := t.TempDir()
	certFile := writeFile(t, dir, "server.cert", server.CertPEM())
	keyFile := writeFile(t, dir, "server.key", encryptedKeyPEM(t, server, "pw"))
	if _, err := LoadCertificate(certFile, keyFile, ""); !errors.Is(err, ErrPasswordRequired) {
		t.Errorf("LoadCertificate(no password) error = %v, want ErrPasswordRequired", err)
	}
	if _, err := LoadCertificate(filepath.Join(dir, "missing"), keyFile, "pw"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCertificate(missing cert) error = %v, want ErrNotExist", err)
	}
	if _, err := LoadCertificate(certFile, filepath.Join(dir, "missing"), "pw"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadCertificate(missing key) error = %v, want ErrNotExist", err)
	}
}

func TestLoadCAs(t *testing.T) {
	t.Parallel()
	ca1, ca2 := testpki.NewCA(t), testpki.NewCA(t)

	type file struct {
		name string
		data []byte
	}
	tests := []struct {
		name    string
		files   []file // written to a directory; a single file named "." is the path itself
		path    string // relative to the directory, "" for the directory
		want    []*testpki.CA
		wantErr string
	}{
		{name: "single file", files: []file{{"ca.pem", ca1.CertPEM()}}, path: "ca.pem", want: []*testpki.CA{ca1}},
		{name: "bundle", files: []file{{"ca.pem", concat(ca1.CertPEM(), ca2.CertPEM())}}, path: "ca.pem", want: []*testpki.CA{ca1, ca2}},
		{name: "directory", files: []file{{"b.pem", ca2.CertPEM()}, {"a.pem", ca1.CertPEM()}}, want: []*testpki.CA{ca1, ca2}},
		{name: "directory with subdirectory", files: []file{{"a.pem", ca1.CertPEM()}, {"sub/b.pem", ca2.CertPEM()}}, want: []*testpki.CA{ca1}},
		{name: "empty directory", files: nil, want: nil},
		{name: "file with private key", files: []file{{"ca.pem", concat(ca1.CertPEM(), ca1.KeyPEM(t))}}, path: "ca.pem", wantErr: "contains a private key"},
		{name: "directory with key file", files: []file{{"a.pem", ca1.CertPEM()}, {"ca.key", ca1.KeyPEM(t)}}, wantErr: "contains a private key"},
		{name: "directory with text file", files: []file{{"a.pem", ca1.CertPEM()}, {"README", []byte("hello")}}, wantErr: "no PEM-encoded certificate"},
		{name: "invalid certificate", files: []file{{"ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})}}, path: "ca.pem", wantErr: "x509:"},
		{name: "missing", path: "missing.pem", wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f.name)), 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, f.name, f.data)
			}
			got, err := LoadCAs(filepath.Join(dir, tt.path))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCAs() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCAs() error = %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("LoadCAs() returned %d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i].X509) {
					t.Errorf("LoadCAs()[%d] is not CA %d", i, i)
				}
			}
		})
	}
}

func TestLoadCertPool(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	leaf := ca.Issue(t, testpki.Options{CommonName: "client"})
	path := writeFile(t, t.TempDir(), "ca.pem", ca.CertPEM())

	pool, err := LoadCertPool(path)
	if err != nil {
		t.Fatalf("LoadCertPool() error = %v", err)
	}
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.X509.Verify(opts); err != nil {
		t.Errorf("Verify(leaf issued by the CA) error = %v", err)
	}
	stranger := testpki.NewCA(t).Issue(t, testpki.Options{CommonName: "stranger"})
	if _, err := stranger.X509.Verify(opts); err == nil {
		t.Error("Verify(leaf of another CA) succeeded, want error")
	}
	if _, err := LoadCertPool(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadCertPool(missing) succeeded, want error")
	}
}

// fakeClock is a settable time source for CertificateLoader.now.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// rotate replaces the files with new contents and moves their mtime
// forward, so the change is visible even on file systems with coarse
// timestamps.
func rotate(t *testing.T, certFile, keyFile string, cert, key []byte, mtime time.Time) {
	t.Helper()
	for _, f := range []struct {
		name string
		data []byte
	}{{certFile, cert}, {keyFile, key}} {
		if f.data == nil {
			continue
		}
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestLoader(t *testing.T, c *testpki.Cert) (l *CertificateLoader, clock *fakeClock, errs *[]error, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile = writeFile(t, dir, "server.cert", c.CertPEM())
	keyFile = writeFile(t, dir, "server.key", c.KeyPEM(t))
	l, err := NewCertificateLoader(certFile, keyFile, "")
	if err != nil {
		t.Fatalf("NewCertificateLoader() error = %v", err)
	}
	clock = &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	l.now = clock.now
	var mu sync.Mutex
	errs = new([]error)
	l.OnError = func(err error) {
		mu.Lock()
		defer mu.Unlock()
		*errs = append(*errs, err)
	}
	return l, clock, errs, certFile, keyFile
}

func serving(t *testing.T, l *CertificateLoader) *x509.Certificate {
	t.Helper()
	c, err := l.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate() error = %v", err)
	}
	return c.Leaf
}

func TestCertificateLoader(t *testing.T) {
	t.Parallel()
	t.Run("reload", func(t *testing.T) {
		t.Parallel()
		old, next := testpki.Server(t), testpki.Server(t)
		l, _, _, certFile, keyFile := newTestLoader(t, old)
		l.CheckInterval = -1 // only Reload loads
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader does not serve the initial certificate")
		}
		rotate(t, certFile, keyFile, next.CertPEM(), next.KeyPEM(t), time.Now().Add(time.Hour))
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader switched certificates with checks disabled")
		}
		if err := l.Reload(); err != nil {
			t.Fatalf("Reload() error = %v", err)
		}
		if !serving(t, l).Equal(next.X509) {
			t.Error("loader does not serve the new certificate after Reload")
		}
	})
	t.Run("time-based check", func(t *testing.T) {
		t.Parallel()
		old, next := testpki.Server(t), testpki.Server(t)
		l, clock, errs, certFile, keyFile := newTestLoader(t, old)
		rotate(t, certFile, keyFile, next.CertPEM(), next.KeyPEM(t), time.Now().Add(time.Hour))
		clock.advance(DefaultCheckInterval / 2)
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader checked the files before the interval passed")
		}
		clock.advance(DefaultCheckInterval)
		if !serving(t, l).Equal(next.X509) {
			t.Error("loader does not serve the new certificate after the check interval")
		}
		if len(*errs) != 0 {
			t.Errorf("OnError called with %v", *errs)
		}
	})
	t.Run("broken rotation keeps the old certificate", func(t *testing.T) {
		t.Parallel()
		old, next := testpki.Server(t), testpki.Server(t)
		l, clock, errs, certFile, keyFile := newTestLoader(t, old)
		mtime := time.Now().Add(time.Hour)

		// The certificate is written before its key: a mismatch.
		rotate(t, certFile, keyFile, next.CertPEM(), nil, mtime)
		clock.advance(2 * DefaultCheckInterval)
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader switched to a certificate whose key is missing")
		}
		if len(*errs) != 1 || !strings.Contains((*errs)[0].Error(), "keeping the previous certificate") {
			t.Fatalf("OnError calls = %v, want one about keeping the previous certificate", *errs)
		}
		if err := l.Reload(); err == nil {
			t.Fatal("Reload() of mismatched files succeeded")
		}
		// Unchanged broken files are not parsed (or reported) again.
		clock.advance(2 * DefaultCheckInterval)
		serving(t, l)
		if len(*errs) != 1 {
			t.Fatalf("OnError called %d times for unchanged files, want 1", len(*errs))
		}
		// Garbage is not served either.
		rotate(t, certFile, keyFile, []byte("garbage"), nil, mtime.Add(time.Minute))
		clock.advance(2 * DefaultCheckInterval)
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader switched to a garbage certificate")
		}
		// Once the key arrives the new certificate is served.
		rotate(t, certFile, keyFile, next.CertPEM(), next.KeyPEM(t), mtime.Add(2*time.Minute))
		clock.advance(2 * DefaultCheckInterval)
		if !serving(t, l).Equal(next.X509) {
			t.Error("loader does not serve the repaired certificate")
		}
	})
	t.Run("removed files", func(t *testing.T) {
		t.Parallel()
		old := testpki.Server(t)
		l, clock, errs, certFile, _ := newTestLoader(t, old)
		if err := os.Remove(certFile); err != nil {
			t.Fatal(err)
		}
		clock.advance(2 * DefaultCheckInterval)
		if !serving(t, l).Equal(old.X509) {
			t.Fatal("loader stopped serving after the file was removed")
		}
		if len(*errs) != 1 {
			t.Errorf("OnError called %d times, want 1", len(*errs))
		}
	})
	t.Run("initial load fails", func(t *testing.T) {
		t.Parallel()
		noSAN := testpki.SelfSigned(t, testpki.Options{})
		dir := t.TempDir()
		_, err := NewCertificateLoader(writeFile(t, dir, "c", noSAN.CertPEM()), writeFile(t, dir, "k", noSAN.KeyPEM(t)), "")
		if !errors.Is(err, ErrNoSAN) {
			t.Errorf("NewCertificateLoader() error = %v, want ErrNoSAN", err)
		}
	})
	t.Run("client certificate without SAN", func(t *testing.T) {
		t.Parallel()
		noSAN := testpki.SelfSigned(t, testpki.Options{})
		dir := t.TempDir()
		l, err := NewClientCertificateLoader(writeFile(t, dir, "c", noSAN.CertPEM()), writeFile(t, dir, "k", noSAN.KeyPEM(t)), "")
		if err != nil {
			t.Fatalf("NewClientCertificateLoader() error = %v", err)
		}
		cert, err := l.GetClientCertificate(nil)
		if err != nil || !cert.Leaf.Equal(noSAN.X509) {
			t.Errorf("GetClientCertificate() = %v, want the loaded certificate", err)
		}
	})
}

// TestCertificateLoaderConcurrent is meant for -race: handshakes read the
// certificate while the files are rotated and reloaded.
func TestCertificateLoaderConcurrent(t *testing.T) {
	t.Parallel()
	certs := []*testpki.Cert{testpki.Server(t), testpki.Server(t)}
	l, clock, _, certFile, keyFile := newTestLoader(t, certs[0])
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				clock.advance(time.Second)
				c, err := l.GetCertificate(nil)
				if err != nil || c == nil {
					t.Errorf("GetCertificate() = %v, %v", c, err)
					return
				}
			}
		})
	}
	for i := range 20 {
		c := certs[i%2]
		rotate(t, certFile, keyFile, c.CertPEM(), c.KeyPEM(t), time.Now().Add(time.Duration(i+1)*time.Minute))
		_ = l.Reload() // may fail while the files are half written; the loader keeps serving
	}
	close(stop)
	wg.Wait()
}
