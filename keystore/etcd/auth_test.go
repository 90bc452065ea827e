package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/etcd/etcdtest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// TestAuth uses etcd's password authentication.
func TestAuth(t *testing.T) {
	t.Parallel()
	const password = "kes-Pa55word"
	c := etcdtest.Start(t, 1, etcdtest.WithAuth("root-Pa55word"))
	c.AddUser(t, "kes", password, "kesdata/")
	conf := Config{
		Endpoints: c.Endpoints(),
		Prefix:    "kesdata/",
		Username:  "kes",
		Password:  keystore.NewSecret(password),
	}
	var logs keystoretest.LogBuffer
	log := keystoretest.Logger(&logs)
	defer func() {
		if strings.Contains(logs.String(), password) {
			t.Errorf("the logs contain the password:\n%s", logs.String())
		}
	}()
	open := func(t *testing.T, conf Config) (*Store, error) {
		if conf.Timeout == 0 {
			conf.Timeout = testTimeout
		}
		s, err := New(t.Context(), &conf, log)
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}

	t.Run("Conformance", func(t *testing.T) { conformance(t, conf) })

	t.Run("Connect", func(t *testing.T) {
		t.Parallel()
		var kc keystore.Config = &conf
		st, err := kc.Connect(t.Context(), log)
		if err != nil {
			t.Fatalf("Connect() = %v, want nil", err)
		}
		defer st.Close()
		if _, err := st.Status(t.Context()); err != nil {
			t.Fatalf("Status() = %v, want nil", err)
		}
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(format, st); strings.Contains(s, password) || !strings.HasPrefix(s, "etcd: http://") {
				t.Errorf("Sprintf(%q, store) = %s, want the endpoints only", format, s)
			}
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		t.Parallel()
		bad := conf
		bad.Password = keystore.NewSecret("wrong-Pa55word")
		_, err := open(t, bad)
		if err == nil || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("New() with a wrong password = %v, want a plain authentication error", err)
		}
		if strings.Contains(err.Error(), "wrong-Pa55word") {
			t.Fatalf("New() = %q, reveals the password", err)
		}
		t.Logf("New() with a wrong password = %v", err)
	})

	t.Run("PermissionDenied", func(t *testing.T) {
		t.Parallel()
		other := conf
		other.Prefix = "elsewhere"
		s, err := open(t, other)
		if err != nil {
			t.Fatalf("New() = %v, want nil", err)
		}
		err = s.Create(t.Context(), "k", []byte("v"))
		if err == nil || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("Create() outside the user's keys = %v, want a plain permission error", err)
		}
		if _, err := s.Status(t.Context()); err == nil || keystore.IsUnreachable(err) {
			t.Fatalf("Status() outside the user's keys = %v, want a plain error", err)
		}
		// Watch keeps trying, and returns nil when told to stop.
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := s.Watch(ctx, func(name string) { t.Errorf("Watch reported %q, want nothing", name) }); err != nil {
			t.Fatalf("Watch() = %v, want nil", err)
		}
	})

	// Last: it stops the cluster.
	t.Run("DownAtStart", func(t *testing.T) {
		c.Stop()
		quick := conf
		quick.Prefix += uniquePrefix()
		quick.Timeout = time.Second
		start := time.Now()
		s, err := open(t, quick)
		if err != nil {
			t.Fatalf("New() while the cluster is down = %v, want nil", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("New() took %v, want about the timeout of 1s", d)
		}
		_, err = s.Get(t.Context(), "k")
		wantUnreachable(t, "Get()", err, "log in")
		if _, err := s.Status(t.Context()); !keystore.IsUnreachable(err) {
			t.Fatalf("Status() = %v, want an unreachable error", err)
		}

		c.Member(0).Restart()
		if err := c.WaitHealthy(t.Context()); err != nil {
			t.Fatal(err)
		}
		_, err = s.Get(t.Context(), "k")
		if !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Get() after the cluster came up = %v, want %v", err, keystore.ErrNotFound)
		}
		mustCreate(t, s, "k", "v")
		mustGet(t, s, "k", "v")
	})
}

// TestTLS uses a cluster that requires client certificates.
func TestTLS(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1, etcdtest.WithTLS())
	files := c.TLSFiles()
	conf := Config{
		Endpoints: c.Endpoints(),
		TLS:       TLSConfig{CA: files.CA, Cert: files.Cert, Key: files.Key},
	}
	t.Run("Conformance", func(t *testing.T) { conformance(t, conf) })

	fails := []struct {
		name string
		tls  TLSConfig
	}{
		{"NoClientCertificate", TLSConfig{CA: files.CA}},
		{"UnknownCA", TLSConfig{Cert: files.Cert, Key: files.Key}},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, &Config{Endpoints: c.Endpoints(), TLS: tt.tls, Timeout: 500 * time.Millisecond})
			_, err := s.Status(t.Context())
			if err == nil {
				t.Fatal("Status() = nil, want an error")
			}
			t.Logf("Status() = %v", err)
		})
	}
}

func TestZapLogger(t *testing.T) {
	t.Parallel()
	var buf keystoretest.LogBuffer
	log := keystoretest.Logger(&buf)
	lg := newZapLogger(log).Named("etcd-client").With(zap.String("target", "etcd"))
	lg.Warn("retrying", zap.Int("attempt", 2), zap.Error(errors.New("boom")))
	got := buf.String()
	for _, want := range []string{"level=DEBUG", `msg="etcd client (etcd-client): retrying"`, "etcd_level=warn", "attempt=2", "error=boom", "target=etcd"} {
		if !strings.Contains(got, want) {
			t.Errorf("log = %q, want it to contain %q", got, want)
		}
	}

	// Above debug level nothing is even formatted.
	var quiet keystoretest.LogBuffer
	lg = newZapLogger(slog.New(slog.NewTextHandler(&quiet, nil)))
	if lg.Core().Enabled(zap.ErrorLevel) {
		t.Error("Enabled(error) = true with an info-level slog logger, want false")
	}
	lg.Error("not logged")
	if quiet.String() != "" {
		t.Errorf("log = %q, want nothing", quiet.String())
	}
}

// TestClientCertRotation replaces the client certificate files and checks
// that the next handshake uses the new certificate, and that a broken
// replacement keeps the old one.
func TestClientCertRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	ca := testpki.NewCA(t)
	write := func(c *testpki.Cert) {
		t.Helper()
		if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, c.KeyPEM(t), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	first := ca.Issue(t, testpki.Options{CommonName: "first"})
	write(first)
	conf, err := clientTLS(&TLSConfig{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatalf("clientTLS() = %v, want nil", err)
	}
	leaf := func() string {
		t.Helper()
		c, err := conf.GetClientCertificate(nil)
		if err != nil {
			t.Fatalf("GetClientCertificate() = %v, want nil", err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := leaf(); got != "first" {
		t.Fatalf("certificate = %q, want %q", got, "first")
	}

	second := ca.Issue(t, testpki.Options{CommonName: "second-cert"})
	write(second)
	if got := leaf(); got != "second-cert" {
		t.Fatalf("certificate after rotation = %q, want %q", got, "second-cert")
	}

	// A certificate whose key is not there yet is not used.
	third := ca.Issue(t, testpki.Options{CommonName: "third"})
	if err := os.WriteFile(certFile, third.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := leaf(); got != "second-cert" {
		t.Fatalf("certificate with a mismatched key = %q, want the previous %q", got, "second-cert")
	}
	write(third)
	if got := leaf(); got != "third" {
		t.Fatalf("certificate after the key arrived = %q, want %q", got, "third")
	}

	if _, err := clientTLS(&TLSConfig{Cert: certFile, Key: filepath.Join(dir, "missing.key")}); err == nil || !strings.Contains(err.Error(), "tls.cert") {
		t.Fatalf("clientTLS() with a missing key = %v, want an error", err)
	}
}
