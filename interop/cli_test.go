//go:build unix

package interop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
	"github.com/openkes/openkes/internal/testpki"
)

// Black-box tests of 'kes server': flags, --dev, SIGHUP reload,
// certificate rotation, start-up errors and shutdown, all through the
// binary built by TestMain.

const (
	upLine      = "=> Server is up and running..."
	reloadedMsg = "=> Reloading configuration after SIGHUP signal completed."
	reloadErr   = "failed to reload server config"
	certErr     = "failed to reload TLS certificate"
	goodbyeLine = "=> Stopping server... Goodbye."
)

// runKes runs kes with args in dir to completion, for at most 15 s, and
// returns its output and exit code.
func runKes(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBinary(t, kesBinary, dir, args...)
}

// runBinary is runKes with another kes binary.
func runBinary(t *testing.T, bin, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	default:
		t.Fatalf("kes %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &out, &errOut)
	}
	return out.String(), errOut.String(), code
}

// waitFor polls cond every 50 ms until it holds; it fails the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOutput waits until the process printed want on stdout.
func (s *kesServer) waitOutput(t *testing.T, want string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%q on stdout", want), func() bool {
		return strings.Contains(s.Stdout.String(), want)
	})
}

// signal sends sig to the server process.
func (s *kesServer) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// reload sends SIGHUP and waits until the server reports the outcome. It
// returns whether the reload succeeded and, if not, what the server
// printed on stderr about it.
func (s *kesServer) reload(t *testing.T) (ok bool, stderr string) {
	t.Helper()
	okBefore := strings.Count(s.Stdout.String(), reloadedMsg)
	errOut := s.Stderr.String()
	errBefore := strings.Count(errOut, reloadErr)
	s.signal(t, syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the outcome of SIGHUP", func() bool {
		return strings.Count(s.Stdout.String(), reloadedMsg) > okBefore ||
			strings.Count(s.Stderr.String(), reloadErr) > errBefore
	})
	if strings.Count(s.Stdout.String(), reloadedMsg) > okBefore {
		return true, ""
	}
	// Let the rest of a multi-line error arrive.
	time.Sleep(50 * time.Millisecond)
	return false, s.Stderr.String()[len(errOut):]
}

// peerCertificate connects to addr with a fresh connection, presenting
// a self-signed client certificate and trusting any server certificate,
// and returns the server's leaf certificate.
func peerCertificate(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	cert, err := kes.GenerateCertificate(newAPIKey(t))
	if err != nil {
		t.Fatal(err)
	}
	d := tls.Dialer{Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// requestWith sends GET /version over a fresh TLS connection presenting
// cert and returns the error, if any. With TLS 1.3 the server's verdict
// on the client certificate arrives after the client finished its side
// of the handshake, so the request is written and a response byte read.
func requestWith(t *testing.T, addr string, cert tls.Certificate) error {
	t.Helper()
	d := tls.Dialer{Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
		NextProtos:         []string{"http/1.1"},
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("unexpected response %q", buf)
	}
	return nil
}

// isHandshakeRefusal reports whether err is a TLS alert sent by the server.
func isHandshakeRefusal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "remote error: tls:")
}

// samePublicKey reports whether a and b have the same public key.
func samePublicKey(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}

var (
	bannerAPIKey = regexp.MustCompile(`(?m)^API Key +(kes:v1:\S+)$`)
	bannerAdmin  = regexp.MustCompile(`(?m)^Admin +(\S+)$`)
)

// startDev starts 'kes server --dev' with the extra args and waits until
// it has printed its banner.
func startDev(t *testing.T, addr string, args ...string) *kesServer {
	t.Helper()
	srv := &kesServer{Addr: addr, URL: "https://" + addr, Dir: t.TempDir()}
	srv.launch(t, append([]string{"server", "--dev"}, args...))
	srv.waitListening(t, 20*time.Second)
	srv.waitOutput(t, upLine)
	return srv
}

// devClient returns an SDK client for a dev server with the API key from
// its banner. The dev certificate is self-signed: it is not verified.
func devClient(t *testing.T, srv *kesServer) (*kes.Client, kes.APIKey) {
	t.Helper()
	out := srv.Stdout.String()
	m := bannerAPIKey.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no 'API Key' line in the banner:\n%s", out)
	}
	key, err := kes.ParseAPIKey(m[1])
	if err != nil {
		t.Fatalf("API key %q from the banner: %v", m[1], err)
	}
	client, err := kes.NewClient(srv.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	client.HTTPClient.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	return client, key
}

// TestDevMode checks 'kes server --dev': the banner's API key is the
// admin of an in-memory server with a self-signed ECDSA P-256 certificate.
func TestDevMode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	addr := freeAddr(t)
	srv := startDev(t, addr, "--addr", addr)
	out := srv.Stdout.String()
	for _, want := range []string{"KMS        In Memory", "API        · https://" + addr} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}

	client, key := devClient(t, srv)
	m := bannerAdmin.FindStringSubmatch(out)
	if m == nil || m[1] != key.Identity().String() {
		t.Errorf("banner Admin line = %q, want the identity of the API key %s", m, key.Identity())
	}
	self, _, err := client.DescribeSelf(ctx)
	if err != nil {
		t.Fatalf("DescribeSelf: %v", err)
	}
	if !self.IsAdmin || self.Identity != key.Identity() {
		t.Errorf("DescribeSelf = %+v, want the admin %s", self, key.Identity())
	}
	if err := client.CreateKey(ctx, "dev-key"); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	dek, err := client.GenerateKey(ctx, "dev-key", []byte("context"))
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	pt, err := client.Decrypt(ctx, "dev-key", dek.Ciphertext, []byte("context"))
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Fatalf("Decrypt = %x, %v, want %x", pt, err, dek.Plaintext)
	}

	// The dev certificate.
	leaf := peerCertificate(t, addr)
	if leaf.Subject.CommonName != "localhost" {
		t.Errorf("certificate CN = %q, want localhost", leaf.Subject.CommonName)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("certificate key is a %T, want ECDSA P-256", leaf.PublicKey)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate is not valid for 127.0.0.1: %v (IP SANs %v)", err, leaf.IPAddresses)
	}
	seen := map[string]bool{}
	for _, ip := range leaf.IPAddresses {
		if seen[ip.String()] {
			t.Errorf("certificate lists IP SAN %s twice: %v", ip, leaf.IPAddresses)
		}
		seen[ip.String()] = true
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("certificate ExtKeyUsage = %v, want [serverAuth]", leaf.ExtKeyUsage)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}

	// A SIGHUP has nothing to reload in dev mode and must not stop it.
	srv.signal(t, syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the dev server to ignore SIGHUP", func() bool {
		return strings.Contains(srv.Stderr.String(), "SIGHUP ignored")
	})
	if _, err := client.DescribeKey(ctx, "dev-key"); err != nil {
		t.Fatalf("DescribeKey after SIGHUP: %v", err)
	}

	// The banner names a file with the dev certificate: with KES_CA the
	// CLI verifies the server instead of skipping verification (-k).
	caLine := regexp.MustCompile(`(?m)^ +export KES_CA=(\S+)$`).FindStringSubmatch(out)
	if caLine == nil {
		t.Fatalf("banner lacks an 'export KES_CA=' line:\n%s", out)
	}
	if pem, err := os.ReadFile(caLine[1]); err != nil || !bytes.Contains(pem, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("KES_CA file %s: %v", caLine[1], err)
	}
	cli := exec.CommandContext(ctx, kesBinary, "key", "info", "dev-key", "--json")
	cli.Env = append(os.Environ(), "KES_SERVER="+addr, "KES_API_KEY="+key.String(), "KES_CA="+caLine[1])
	if b, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(b), `"name":"dev-key"`) {
		t.Errorf("kes key info with KES_CA of the dev server: %v\n%s", err, b)
	}

	t.Run("with-config", func(t *testing.T) {
		t.Parallel()
		_, stderr, code := runKes(t, t.TempDir(), "server", "--dev", "--config", "x")
		if code != 2 || !strings.Contains(stderr, "'--config' flag is not supported in development mode") {
			t.Errorf("kes server --dev --config x: exit code %d, stderr %q; want 2 and the --config message", code, stderr)
		}
	})

	t.Run("default-address", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runKes(t, t.TempDir(), "server", "--help")
		if code != 0 && code != 2 || !strings.Contains(stdout, "(127.0.0.1:7373 with --dev)") {
			t.Errorf("kes server --help: exit code %d, usage does not name 127.0.0.1:7373 as the --dev default:\n%s", code, stdout)
		}

		const defaultAddr = "127.0.0.1:7373"
		ln, err := net.Listen("tcp", defaultAddr)
		if err != nil {
			t.Logf("port 7373 is busy (%v): not starting a dev server without --addr", err)
			return
		}
		ln.Close()
		srv := &kesServer{Addr: defaultAddr, URL: "https://" + defaultAddr, Dir: t.TempDir()}
		srv.launch(t, []string{"server", "--dev"})
		// Wait for our banner, not just for the port: someone else may
		// have taken the port in the meantime.
		waitFor(t, 10*time.Second, "the dev server to start or fail", func() bool {
			select {
			case <-srv.done:
				return true
			default:
				return strings.Contains(srv.Stdout.String(), upLine)
			}
		})
		if exited, err := srv.wait(0); exited {
			if strings.Contains(srv.Stderr.String(), "address already in use") {
				t.Logf("port 7373 was taken by another process meanwhile: skipping the default-address check")
				return
			}
			t.Fatalf("kes server --dev exited: %v\nstderr:\n%s", err, srv.Stderr)
		}
		if out := srv.Stdout.String(); !strings.Contains(out, "API        · https://"+defaultAddr) {
			t.Errorf("banner of 'kes server --dev' does not show %s:\n%s", defaultAddr, out)
		}
		client, _ := devClient(t, srv)
		if _, err := client.Version(t.Context()); err != nil {
			t.Errorf("Version on %s: %v", defaultAddr, err)
		}
	})
}

// policyConfig returns a config body with admin as the admin and one
// policy "app" for app with the given allow patterns.
func policyConfig(admin, app kes.Identity, allow ...string) string {
	return fmt.Sprintf("admin:\n  identity: %s\npolicy:\n  app:\n    allow: [%s]\n    identities: [%s]\n",
		admin, strings.Join(allow, ", "), app)
}

// TestReload checks SIGHUP: a valid new config replaces policies and
// admin; an invalid one keeps the running config and says why.
func TestReload(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	adminKey, appKey, newAdminKey := newAPIKey(t), newAPIKey(t), newAPIKey(t)
	srv := startServer(t, serverOptions{
		Config: policyConfig(adminKey.Identity(), appKey.Identity(), "/v1/key/describe/*"),
	})
	admin, app, newAdmin := srv.apiKeyClient(t, adminKey), srv.apiKeyClient(t, appKey), srv.apiKeyClient(t, newAdminKey)

	// A SIGHUP as soon as the port accepts connections, before the first
	// request, is a reload too: it must not kill the server.
	if ok, stderr := srv.reload(t); !ok {
		t.Fatalf("reload of the unchanged config failed:\n%s", stderr)
	}

	if err := app.CreateKey(ctx, "app-0"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("app: CreateKey before reload: err = %v, want %v", err, kes.ErrNotAllowed)
	}

	// A config that lets the app create keys.
	good := policyConfig(adminKey.Identity(), appKey.Identity(), "/v1/key/describe/*", "/v1/key/create/*")
	srv.rewriteConfig(t, good)
	if ok, stderr := srv.reload(t); !ok {
		t.Fatalf("reload of a valid config failed:\n%s", stderr)
	}
	// Every reload says what changed.
	waitFor(t, 5*time.Second, "the reload line naming the changed policy", func() bool {
		return strings.Contains(srv.Stdout.String(), "=> Reload: changed policies (changed app)")
	})
	n := 0
	createAsApp := func() error { n++; return app.CreateKey(ctx, fmt.Sprintf("app-%d", n)) }
	var err error
	waitFor(t, 5*time.Second, "the app to be allowed to create keys", func() bool {
		err = createAsApp()
		return err == nil
	})

	// Broken configs: the server keeps the running config and says why.
	for _, bad := range []struct {
		name, config string
		why          []string
	}{
		{
			name:   "invalid YAML",
			config: "admin: [\n  identity: x\n",
			why:    []string{"yaml:"},
		},
		{
			name: "identity in two policies",
			config: srv.renderConfig(good + fmt.Sprintf(
				"  other:\n    allow: [/v1/key/generate/*]\n    identities: [%s]\n", appKey.Identity())),
			why: []string{"policy.other.identities[0]", "assigned to both policy 'app' and policy 'other'"},
		},
		{
			name:   "missing certificate file",
			config: srv.renderConfig(good + "tls:\n  key: server.key\n  cert: missing.cert\n"),
			why:    []string{"missing.cert"},
		},
	} {
		writeFile(t, srv.Dir, "config.yml", []byte(bad.config))
		ok, stderr := srv.reload(t)
		if ok {
			t.Fatalf("%s: reload succeeded, want a failure", bad.name)
		}
		for _, why := range bad.why {
			if !strings.Contains(stderr, why) {
				t.Errorf("%s: the reload error does not mention %q:\n%s", bad.name, why, stderr)
			}
		}
		if err := createAsApp(); err != nil {
			t.Errorf("%s: app: CreateKey with the old config kept: %v", bad.name, err)
		}
		if _, err := admin.DescribeKey(ctx, "app-1"); err != nil {
			t.Errorf("%s: admin: DescribeKey with the old config kept: %v", bad.name, err)
		}
		if err := newAdmin.CreateKey(ctx, "not-yet"); !errors.Is(err, kes.ErrNotAllowed) {
			t.Errorf("%s: future admin: CreateKey: err = %v, want %v", bad.name, err, kes.ErrNotAllowed)
		}
	}

	// A valid config again, with another admin.
	srv.rewriteConfig(t, policyConfig(newAdminKey.Identity(), appKey.Identity(), "/v1/key/describe/*", "/v1/key/create/*"))
	if ok, stderr := srv.reload(t); !ok {
		t.Fatalf("reload of a valid config with a new admin failed:\n%s", stderr)
	}
	if err := newAdmin.DeleteKey(ctx, "app-1"); err != nil {
		t.Errorf("new admin: DeleteKey: %v", err)
	}
	if err := admin.CreateKey(ctx, "old-admin"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Errorf("old admin: CreateKey: err = %v, want %v", err, kes.ErrNotAllowed)
	}
	if err := createAsApp(); err != nil {
		t.Errorf("app: CreateKey after the admin changed: %v", err)
	}
	if !strings.Contains(srv.Stdout.String(), "Admin      "+newAdminKey.Identity().String()) {
		t.Errorf("no banner with the new admin after the reload:\n%s", srv.Stdout)
	}
}

// TestCertificateRotation replaces the certificate files of a running
// server: a key that does not match the certificate is reported and the
// old certificate kept; once the files match, new connections get the
// new certificate, without SIGHUP or restart.
func TestCertificateRotation(t *testing.T) {
	t.Parallel()
	adminKey := newAPIKey(t)
	srv := startServer(t, serverOptions{Config: "admin:\n  identity: " + adminKey.Identity().String() + "\n"})
	old := peerCertificate(t, srv.Addr)
	next := testpki.Server(t)
	if samePublicKey(old, next.X509) {
		t.Fatal("test certificates share a key")
	}

	// The certificate without its key first, as a careless rotation
	// script might do.
	writeFile(t, srv.Dir, "server.cert", next.CertPEM())
	waitFor(t, 12*time.Second, "the server to report the mismatched certificate", func() bool {
		if !samePublicKey(peerCertificate(t, srv.Addr), old) {
			t.Fatal("the server serves a certificate whose key was not yet written")
		}
		return strings.Contains(srv.Stderr.String(), certErr)
	})

	writeFile(t, srv.Dir, "server.key", next.KeyPEM(t))
	waitFor(t, 12*time.Second, "new connections to get the new certificate", func() bool {
		return samePublicKey(peerCertificate(t, srv.Addr), next.X509)
	})

	// Clients that trust only the new certificate can use the server.
	srv.CA = x509.NewCertPool()
	srv.CA.AddCert(next.X509)
	if err := srv.apiKeyClient(t, adminKey).CreateKey(t.Context(), "after-rotation"); err != nil {
		t.Fatalf("CreateKey with the new certificate: %v", err)
	}
}

// kesWithoutVault builds, once, a kes binary with the build tag
// kes_omit_vault, next to kesBinary.
var kesWithoutVault = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(kesBinary), "kes-omit-vault")
	build := exec.Command("go", "build", "-tags", "kes_omit_vault", "-o", bin, "./cmd/kes")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags kes_omit_vault: %v\n%s", err, out)
	}
	return bin, nil
})

// TestUnsupportedKeyStore checks that key store sections are validated by
// their backends and refused at start-up with the dotted path of the
// problem, that every problem of a file is reported, and that a backend
// left out of the binary by its build tag is named with the tag.
func TestUnsupportedKeyStore(t *testing.T) {
	t.Parallel()
	admin := newAPIKey(t).Identity()
	header := fmt.Sprintf("address: %s\nadmin:\n  identity: %s\ntls:\n  key: server.key\n  cert: server.cert\n", freeAddr(t), admin)
	for _, tc := range []struct {
		name, config string
		omitVault    bool // run a binary built with kes_omit_vault
		want         []string
	}{
		{
			name:      "vault left out",
			config:    header + "keystore:\n  vault:\n    endpoint: https://127.0.0.1:8200\n    approle:\n      id: kes-role\n      secret: kes-secret\n",
			omitVault: true,
			want:      []string{"keystore.vault: not built into this binary (kes_omit_vault)"},
		},
		{
			name:      "fs in a binary without vault",
			config:    header + "keystore:\n  fs:\n    path: keys\n    seal:\n      vault:\n        endpoint: https://127.0.0.1:8200\n",
			omitVault: true,
			want:      []string{"keystore.fs.seal.vault: not built into this binary (kes_omit_vault)"},
		},
		{
			name:   "aws without region",
			config: header + "keystore:\n  aws:\n    secretsmanager:\n      endpoint: secretsmanager.us-east-1.amazonaws.com\n",
			want:   []string{"keystore.aws.secretsmanager.region: required", "no region specified"},
		},
		{
			name:   "vault without endpoint",
			config: header + "keystore:\n  vault:\n    approle:\n      id: kes-role\n      secret: kes-secret\n",
			want:   []string{"keystore.vault.endpoint", "required"},
		},
		{
			name:   "two key stores",
			config: header + "keystore:\n  fs:\n    path: keys\n  vault:\n    endpoint: https://127.0.0.1:8200\n    approle:\n      id: kes-role\n      secret: kes-secret\n",
			want:   []string{"keystore", "more than one keystore", "fs", "vault"},
		},
		{
			name:   "several problems",
			config: "tls:\n  cert: server.cert\ncache:\n  expiry:\n    any: -1s\nkeystore:\n  vault:\n    approle:\n      id: kes-role\n",
			want:   []string{"admin.identity: required", "tls.key: required", "cache.expiry.any", "keystore.vault.endpoint: required", "keystore.vault.approle.secret: required"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, "config.yml", []byte(tc.config))
			start := time.Now()
			run := runKes
			if tc.omitVault {
				bin, err := kesWithoutVault()
				if err != nil {
					t.Fatal(err)
				}
				run = func(t *testing.T, dir string, args ...string) (string, string, int) {
					return runBinary(t, bin, dir, args...)
				}
			}
			stdout, stderr, code := run(t, dir, "server", "--config", "config.yml")
			if elapsed := time.Since(start); !tc.omitVault && elapsed > 5*time.Second {
				t.Errorf("kes took %v to refuse the config", elapsed)
			}
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, want := range tc.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not mention %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stdout, upLine) {
				t.Errorf("the server started:\n%s", stdout)
			}
		})
	}
}

// TestFlagOverrides checks that --root, --auth, --key/--cert and --addr
// win over the config file, and the legacy top-level root key.
func TestFlagOverrides(t *testing.T) {
	t.Parallel()

	t.Run("root", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		fileAdmin, flagAdmin := newAPIKey(t), newAPIKey(t)
		srv := startServer(t, serverOptions{
			Config: "admin:\n  identity: " + fileAdmin.Identity().String() + "\n",
			Args:   []string{"--root", flagAdmin.Identity().String()},
		})
		check := func(when string) {
			t.Helper()
			if err := srv.apiKeyClient(t, flagAdmin).CreateKey(ctx, "by-flag-admin-"+when); err != nil {
				t.Errorf("%s: --root identity: CreateKey: %v", when, err)
			}
			if err := srv.apiKeyClient(t, fileAdmin).CreateKey(ctx, "by-file-admin-"+when); !errors.Is(err, kes.ErrNotAllowed) {
				t.Errorf("%s: admin.identity of the file: CreateKey: err = %v, want %v", when, err, kes.ErrNotAllowed)
			}
		}
		check("start")
		if !strings.Contains(srv.Stdout.String(), "Admin      "+flagAdmin.Identity().String()) {
			t.Errorf("banner does not show the --root identity as admin:\n%s", srv.Stdout)
		}
		// The flag still wins after a reload.
		if ok, stderr := srv.reload(t); !ok {
			t.Fatalf("reload failed:\n%s", stderr)
		}
		check("reload")
	})

	t.Run("legacy-root", func(t *testing.T) {
		t.Parallel()
		root := newAPIKey(t)
		srv := startServer(t, serverOptions{Config: "root: " + root.Identity().String() + "\n"})
		if err := srv.apiKeyClient(t, root).CreateKey(t.Context(), "by-root"); err != nil {
			t.Errorf("root identity: CreateKey: %v", err)
		}
		if !strings.Contains(srv.Stderr.String(), "deprecated") {
			t.Errorf("no deprecation warning for the root key:\n%s", srv.Stderr)
		}
	})

	authConfig := func(admin kes.Identity, auth string) string {
		return fmt.Sprintf("admin:\n  identity: %s\ntls:\n  key: server.key\n  cert: server.cert\n  ca: ca.pem\n  auth: %s\n", admin, auth)
	}

	t.Run("auth-on", func(t *testing.T) {
		t.Parallel()
		ca := testpki.NewCA(t)
		client := ca.Issue(t, testpki.Options{CommonName: "client"})
		srv := startServer(t, serverOptions{
			Config: authConfig(kes.Identity(client.Identity()), "off"),
			Files:  map[string][]byte{"ca.pem": ca.CertPEM()},
			Args:   []string{"--auth", "on"},
		})
		if err := srv.certClient(client.TLS).CreateKey(t.Context(), "by-ca-cert"); err != nil {
			t.Errorf("CA-issued certificate: CreateKey: %v", err)
		}
		selfSigned, err := kes.GenerateCertificate(newAPIKey(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := requestWith(t, srv.Addr, selfSigned); !isHandshakeRefusal(err) {
			t.Errorf("API-key certificate with --auth on: err = %v, want a refusal in the TLS handshake", err)
		}
		if err := requestWith(t, srv.Addr, client.TLS); err != nil {
			t.Errorf("CA-issued certificate: GET /version: %v", err)
		}
	})

	t.Run("auth-off", func(t *testing.T) {
		t.Parallel()
		ca := testpki.NewCA(t)
		adminKey := newAPIKey(t)
		srv := startServer(t, serverOptions{
			Config: authConfig(adminKey.Identity(), "on"),
			Files:  map[string][]byte{"ca.pem": ca.CertPEM()},
			Args:   []string{"--auth", "off"},
		})
		if err := srv.apiKeyClient(t, adminKey).CreateKey(t.Context(), "by-api-key"); err != nil {
			t.Errorf("API key with --auth off: CreateKey: %v", err)
		}
	})

	t.Run("key-cert", func(t *testing.T) {
		t.Parallel()
		adminKey := newAPIKey(t)
		alt := testpki.Server(t)
		srv := startServer(t, serverOptions{
			Config: "admin:\n  identity: " + adminKey.Identity().String() + "\n",
			Files:  map[string][]byte{"alt.cert": alt.CertPEM(), "alt.key": alt.KeyPEM(t)},
			Args:   []string{"--key", "alt.key", "--cert", "alt.cert"},
		})
		if leaf := peerCertificate(t, srv.Addr); !samePublicKey(leaf, alt.X509) {
			t.Errorf("server certificate %v is not the one of --cert", leaf.Subject)
		}
		srv.CA = x509.NewCertPool()
		srv.CA.AddCert(alt.X509)
		if _, err := srv.apiKeyClient(t, adminKey).Version(t.Context()); err != nil {
			t.Errorf("Version, trusting the --cert certificate: %v", err)
		}
	})

	t.Run("addr", func(t *testing.T) {
		t.Parallel()
		adminKey := newAPIKey(t)
		listen := freeAddr(t)
		srv := startServer(t, serverOptions{
			Config:     "admin:\n  identity: " + adminKey.Identity().String() + "\n",
			Args:       []string{"--addr", listen},
			ListenAddr: listen,
		})
		if _, err := srv.apiKeyClient(t, adminKey).Version(t.Context()); err != nil {
			t.Errorf("Version on the --addr address: %v", err)
		}
		if !strings.Contains(srv.Stdout.String(), "https://"+listen) {
			t.Errorf("banner does not show the --addr address %s:\n%s", listen, srv.Stdout)
		}
		if srv.configAddr == listen {
			t.Logf("the config address and --addr got the same port: skipping the check that the config address is unused")
			return
		}
		if conn, err := net.DialTimeout("tcp", srv.configAddr, time.Second); err == nil {
			conn.Close()
			t.Errorf("something listens on the config file's address %s although --addr overrides it", srv.configAddr)
		}
	})

	t.Run("addr-hostname", func(t *testing.T) {
		t.Parallel()
		_, stderr, code := runKes(t, t.TempDir(), "server", "--config", "config.yml", "--addr", "localhost:7373")
		if code != 2 || !strings.Contains(stderr, "'localhost' is not a valid IP address") {
			t.Errorf("--addr localhost:7373: exit code %d, stderr %q; want 2 and an invalid IP message", code, stderr)
		}
	})
}

// TestGracefulShutdown checks that SIGTERM stops the server cleanly.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	adminKey := newAPIKey(t)
	srv := startServer(t, serverOptions{Config: "admin:\n  identity: " + adminKey.Identity().String() + "\n"})
	if _, err := srv.apiKeyClient(t, adminKey).Version(t.Context()); err != nil {
		t.Fatalf("Version: %v", err)
	}
	start := time.Now()
	srv.signal(t, syscall.SIGTERM)
	exited, err := srv.wait(5 * time.Second)
	if !exited {
		t.Fatal("kes did not exit within 5s of SIGTERM")
	}
	if err != nil {
		t.Errorf("kes exited with %v after SIGTERM, want exit code 0\nstderr:\n%s", err, srv.Stderr)
	}
	t.Logf("kes exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(srv.Stdout.String(), goodbyeLine) {
		t.Errorf("no goodbye line on stdout:\n%s", srv.Stdout)
	}
	if conn, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after the server exited", srv.Addr)
	}
}
