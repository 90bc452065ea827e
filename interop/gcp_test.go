package interop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore/gcp/gcptest"
)

// The GCP Secret Manager key store against keystore/gcp/gcptest, a gRPC
// fake of Secret Manager with TLS that requires access tokens from a fake
// OAuth 2.0 token endpoint, through the kes binary and the upstream SDK.
// The binary finds its service account through Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS names a key file whose
// token_uri is the fake) and trusts the fake's certificate through
// SSL_CERT_FILE. Both are set with t.Setenv, so these tests do not run in
// parallel.

// gcpEnv is a fake Secret Manager and token endpoint for one test.
type gcpEnv struct {
	sm *gcptest.Server
	ts *gcptest.TokenServer
	sa *gcptest.ServiceAccount
}

// startGCP starts the fakes, with access tokens living for lifetime, and
// points the environment of kes processes started later at them.
func startGCP(t *testing.T, lifetime time.Duration) *gcpEnv {
	t.Helper()
	ts := gcptest.NewTokenServer(t, lifetime)
	e := &gcpEnv{
		sm: gcptest.New(t, gcptest.Options{TLS: true, Tokens: ts}),
		ts: ts,
		sa: ts.NewServiceAccount(t, "kes"),
	}
	dir := t.TempDir()
	writeFile(t, dir, "sa.json", e.sa.KeyFile())
	writeFile(t, dir, "ca.pem", e.sm.CACertPEM())
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "sa.json"))
	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "ca.pem"))
	return e
}

// keyStore returns the keystore section in the original's schema, with
// empty credentials (Application Default Credentials).
func (e *gcpEnv) keyStore() string {
	return fmt.Sprintf("  gcp:\n    secretmanager:\n      project_id: %s\n      endpoint: %s\n"+
		"      scopes:\n      - https://www.googleapis.com/auth/cloud-platform\n"+
		"      credentials:\n        client_email: \"\"\n        client_id: \"\"\n        private_key_id: \"\"\n        private_key: \"\"\n",
		e.sm.ProjectID(), e.sm.Addr())
}

// checkNoSecrets fails the test if the server's output contains an access
// token or a line of the service account's private key.
func (e *gcpEnv) checkNoSecrets(t *testing.T, srv *kesServer, extra ...string) {
	t.Helper()
	out := srv.Stdout.String() + srv.Stderr.String()
	secrets := append(e.ts.Tokens(), extra...)
	for _, line := range strings.Split(e.sa.PrivateKeyPEM, "\n") {
		if len(line) > 20 {
			secrets = append(secrets, line)
		}
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the server's output contains a secret (%.10q...)", s)
		}
	}
}

// createWhileRenewing creates the keys key-000, key-001, ... through c,
// at least n of them and until the token server has issued three tokens:
// every create must succeed, and Secret Manager must not have rejected
// any call for its token.
func (e *gcpEnv) createWhileRenewing(t *testing.T, c *kes.Client, n int) {
	t.Helper()
	for i := 0; i < n || e.ts.Issued() < 3; i++ {
		if i > 400 {
			t.Fatalf("only %d tokens issued in 30 s with 2 s tokens", e.ts.Issued())
		}
		if err := c.CreateKey(t.Context(), fmt.Sprintf("key-%03d", i)); err != nil {
			t.Fatalf("CreateKey(key-%03d) with %d tokens issued: %v", i, e.ts.Issued(), err)
		}
		time.Sleep(75 * time.Millisecond)
	}
	if n := e.sm.Rejected(); n != 0 {
		t.Errorf("Secret Manager rejected %d calls for an expired or unknown token, want 0", n)
	}
}

// TestGCPFixtures stores the key files written by the original server
// as secrets of the original's layout (version 1 holds the value) and
// checks that the server reads them unchanged: every recorded ciphertext
// decrypts, every HMAC is reproduced, the keys are listed, and new keys
// get the same layout.
func TestGCPFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	e := startGCP(t, time.Hour)
	// The SDK would log every request and response, tokens and secret
	// payloads included, to stderr: kes must not let it.
	t.Setenv("GOOGLE_SDK_GO_LOGGING_LEVEL", "debug")
	for name, data := range files {
		e.sm.Put(name, data)
		e.sm.Put(name, []byte("a later version, which the original ignores"))
	}
	srv, c := startAdminServer(t, serverOptions{KeyStore: e.keyStore()})
	ctx := t.Context()
	checkStoredFixtures(t, c, fx)

	// Reading never rewrites the original's secrets.
	for name, data := range files {
		if v, ok := e.sm.Versions(name); !ok || len(v) != 2 || !bytes.Equal(v[0], data) {
			t.Errorf("secret %s changed after use", name)
		}
	}

	// A new key is a secret whose only version holds the stored key.
	if err := c.CreateKey(ctx, "new-key"); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if v, ok := e.sm.Versions("new-key"); !ok || len(v) != 1 || len(v[0]) == 0 {
		t.Errorf("secret new-key = %d versions (exists %t), want 1", len(v), ok)
	}
	if err := roundTrip(ctx, c, c, "new-key"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteKey(ctx, "new-key"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, ok := e.sm.Versions("new-key"); ok {
		t.Errorf("the deleted key's secret is still there")
	}
	if err := c.CreateKey(ctx, fx.Keys[0].Name); !errors.Is(err, kes.ErrKeyExists) {
		t.Errorf("CreateKey(%s) = %v, want %v", fx.Keys[0].Name, err, kes.ErrKeyExists)
	}
	if !strings.Contains(srv.Stdout.String(), "GCP SecretManager: Project="+e.sm.ProjectID()) {
		t.Errorf("the banner does not name the key store:\n%s", srv.Stdout)
	}
	var values []string
	for _, data := range files {
		values = append(values, string(data))
	}
	e.checkNoSecrets(t, srv, values...)
}

// TestGCPOutage runs the server with access tokens that live for 2 s and
// stops Secret Manager for a while: keys are used without a single error
// while tokens are renewed; during the outage cached keys keep working
// under cache.expiry.offline, uncached operations fail with 504 and
// /v1/ready says 504; afterwards everything works again without
// restarting kes.
func TestGCPOutage(t *testing.T) {
	e := startGCP(t, 2*time.Second)
	srv, c := startAdminServer(t, serverOptions{
		Config:   "cache:\n  expiry:\n    any: 10m\n    unused: 10m\n    offline: 10m\n",
		KeyStore: e.keyStore(),
	})
	ctx := t.Context()

	if err := c.CreateKey(ctx, "cached"); err != nil {
		t.Fatal(err)
	}
	// Creates always reach the store; tokens are renewed meanwhile.
	e.createWhileRenewing(t, c, 40)
	if err := roundTrip(ctx, c, c, "cached"); err != nil {
		t.Fatal(err)
	}

	e.sm.Stop()
	if err := c.CreateKey(ctx, "during-outage"); status(err) != http.StatusGatewayTimeout {
		t.Errorf("CreateKey during the outage = %v, want 504", err)
	}
	waitUnready(t, c, 15*time.Second)
	for range 5 {
		if err := roundTrip(ctx, c, c, "cached"); err != nil {
			t.Fatalf("cached key during the outage: %v", err)
		}
	}

	e.sm.Start(t)
	eventually(t, 20*time.Second, func() error { return c.CreateKey(ctx, "after-outage") })
	waitReady(t, c, 25*time.Second)
	if err := roundTrip(ctx, c, c, "after-outage"); err != nil {
		t.Error(err)
	}
	if st, err := c.Status(ctx); err != nil || !st.KeyStoreReachable {
		t.Errorf("Status = reachable %t, %v; want reachable", st.KeyStoreReachable, err)
	}
	e.checkNoSecrets(t, srv)
}

// TestGCPStartsWhileDown starts kes while Secret Manager is down: it
// starts, reports not ready, and serves once the service is up, without
// a restart.
func TestGCPStartsWhileDown(t *testing.T) {
	e := startGCP(t, time.Hour)
	e.sm.Stop()
	_, c := startAdminServer(t, serverOptions{KeyStore: e.keyStore()})
	ctx := t.Context()

	checkStartedDown(t, c, "k")
	e.sm.Start(t)
	waitReady(t, c, 20*time.Second)
	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(ctx, c, c, "k"); err != nil {
		t.Fatal(err)
	}
}

// TestGCPMigrate copies the original's key files from an fs key store
// into Secret Manager with `kes migrate`, and back into an empty fs key
// store, byte for byte.
func TestGCPMigrate(t *testing.T) {
	_, files := readFixtures(t)
	e := startGCP(t, time.Hour)
	checkMigrate(t, files, e.keyStore(), nil, func(name string) ([]byte, bool) {
		v, ok := e.sm.Versions(name)
		if !ok || len(v) != 1 {
			return nil, false
		}
		return v[0], true
	}, nil)
}

// TestExampleGCP runs examples/config/gcp.yml against the fakes.
func TestExampleGCP(t *testing.T) {
	e := startGCP(t, time.Hour)
	_, minio := exampleIdentities(t)
	config := exampleConfig(t, "gcp.yml",
		"my-project-id", e.sm.ProjectID(),
		"secretmanager.googleapis.com:443", e.sm.Addr())
	srv := startServer(t, serverOptions{RawConfig: config})
	minioStartup(t, srv, minio)
	if v, ok := e.sm.Versions("minio-default"); !ok || len(v) != 1 {
		t.Fatalf("secret minio-default = %d versions (exists %t), want 1", len(v), ok)
	}
	e.checkNoSecrets(t, srv)
}

// TestGCPConfigCredentials starts kes with the service account in the
// config file, exactly as an upstream config has it (the private key with
// literal \n sequences). Its key file names Google's token endpoint, so
// the test runs kes with HTTPS_PROXY pointing at a proxy that answers
// CONNECT oauth2.googleapis.com:443 with the fake token endpoint, under a
// certificate for that name from a CA that SSL_CERT_FILE adds. (gRPC to
// the fake on 127.0.0.1 does not use the proxy.)
func TestGCPConfigCredentials(t *testing.T) {
	_, files := readFixtures(t)
	e := startGCP(t, 2*time.Second)
	e.ts.AcceptAudience("https://oauth2.googleapis.com/token")
	ca := testpki.NewCA(t)
	googleCert := ca.Issue(t, testpki.Options{CommonName: "oauth2.googleapis.com", DNSNames: []string{"oauth2.googleapis.com"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", append(e.sm.CACertPEM(), ca.CertPEM()...))
	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "ca.pem"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "missing.json")) // must not be used
	t.Setenv("HTTPS_PROXY", "http://"+startTokenProxy(t, "oauth2.googleapis.com:443", googleCert.TLS, e.ts))
	for name, data := range files {
		e.sm.Put(name, data)
	}

	keyStore := fmt.Sprintf("  gcp:\n    secretmanager:\n      project_id: %s\n      endpoint: %s\n"+
		"      credentials:\n        client_email: %s\n        client_id: \"%s\"\n        private_key_id: %s\n        private_key: '%s'\n",
		e.sm.ProjectID(), e.sm.Addr(), e.sa.ClientEmail, e.sa.ClientID, e.sa.PrivateKeyID, strings.ReplaceAll(e.sa.PrivateKeyPEM, "\n", `\n`))
	srv, c := startAdminServer(t, serverOptions{KeyStore: keyStore})
	ctx := t.Context()
	names, _, err := c.ListKeys(ctx, "", 0)
	if err != nil || len(names) != len(files) {
		t.Fatalf("ListKeys = %q, %v; want the %d fixture keys", names, err, len(files))
	}
	e.createWhileRenewing(t, c, 20)
	if err := roundTrip(ctx, c, c, "key-000"); err != nil {
		t.Error(err)
	}
	e.checkNoSecrets(t, srv)
}

// startTokenProxy starts an HTTP proxy that accepts only CONNECT to
// target and serves h there over TLS with cert. It returns its address.
func startTokenProxy(t *testing.T, target string, cert tls.Certificate, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	serve := func(conn net.Conn) {
		defer conn.Close()
		br := bufio.NewReader(conn)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method != http.MethodConnect || req.Host != target {
			fmt.Fprint(conn, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
			return
		}
		fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		tr := bufio.NewReader(tc)
		for {
			req, err := http.ReadRequest(tr)
			if err != nil {
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			fmt.Fprintf(tc, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				rec.Code, http.StatusText(rec.Code), rec.Header().Get("Content-Type"), len(body))
			tc.Write(body)
		}
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()
	return ln.Addr().String()
}
