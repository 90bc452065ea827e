package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/server"
)

// TestRejectedCertificate checks that a client certificate the server
// refuses in the handshake (auth on, a CA that did not issue it) gives
// one clear error with a hint, every time, over HTTP/2 (what the CLI
// uses) as well: with TLS 1.3 the refusal reaches the client only after
// its side of the handshake, and the HTTP/2 transport reports it as
// "client conn could not be established" or a reset connection.
// Not parallel: it sets the environment.
func TestRejectedCertificate(t *testing.T) {
	srvCert := testpki.Server(t)
	ca := testpki.NewCA(t)
	tlsConf := tlsConfig(srvCert)
	tlsConf.VerifyClients = true
	tlsConf.ClientCAs = ca.Pool()
	addr := startServer(t, &server.Config{Admin: ca.Issue(t, testpki.Options{}).Identity(), Store: mem.New(), TLS: tlsConf})

	dir := t.TempDir()
	stranger := testpki.SelfSigned(t, testpki.Options{})
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("KES_SERVER", addr)
	t.Setenv("KES_API_KEY", "")
	t.Setenv("KES_CA", write("ca.pem", srvCert.CertPEM()))
	t.Setenv("KES_CLIENT_CERT", write("client.crt", stranger.CertPEM()))
	t.Setenv("KES_CLIENT_KEY", write("client.key", stranger.KeyPEM(t)))

	const want = "kes: hint: the server does not accept the client certificate"
	for i := range 20 {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), []string{"key", "ls"}, strings.NewReader(""), &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "kes: error:") != 1 {
			t.Fatalf("attempt %d: exit code %d, stderr:\n%s\nwant 1 and one error with %q", i, code, &stderr, want)
		}
	}
}

// listFailingStore is a key store whose List fails with a plain error, as an
// fs store whose directory cannot be read does.
type listFailingStore struct{ keystore.Store }

func (listFailingStore) List(context.Context, string, int) ([]string, string, error) {
	return nil, "", errors.New("fs: cannot list keys: permission denied")
}

// TestStoreFailureOnce checks that the CLI prints the server's 502 once
// ("failed to list keys", not "failed to list keys: failed to list
// keys"), with a hint where to look. Not parallel: it sets the
// environment.
func TestStoreFailureOnce(t *testing.T) {
	startAdminServer(t, listFailingStore{mem.New()})
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), []string{"key", "ls"}, strings.NewReader(""), &stdout, &stderr)
	want := "kes: error: failed to list keys\nkes: hint: the server could not use its key store; its error log says why (kes log --error)\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("kes key ls: exit code %d, stderr %q; want 1 and %q", code, &stderr, want)
	}
}
