package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

func TestHTTPVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name      string
		client    *http.Client
		wantProto int
	}{
		{"h2", e.client(t, e.admin), 2},
		{"http1.1", &http.Client{Transport: &http.Transport{TLSClientConfig: e.clientTLS(e.admin)}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := do(t, tt.client, "GET", e.url("/v1/status"), "").want(t, 200)
			if resp.proto != tt.wantProto {
				t.Errorf("ProtoMajor = %d, want %d", resp.proto, tt.wantProto)
			}
		})
	}
}

// handshakeFails reports whether a request presenting cert fails at the
// TLS level.
func handshakeFails(t *testing.T, e *env, cert *testpki.Cert) bool {
	t.Helper()
	conf := e.clientTLS(nil)
	if cert != nil {
		// Always send the certificate, even if it does not match the
		// advertised CAs (as MinIO does), so that the server decides.
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert.TLS, nil
		}
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(e.url("/version"))
	if err != nil {
		return true
	}
	resp.Body.Close()
	return false
}

// handshakeCase is a client certificate (nil for none) and whether the
// handshake must fail with it.
type handshakeCase struct {
	name     string
	cert     *testpki.Cert
	wantFail bool
}

// checkHandshakes runs each case against e in a parallel subtest.
func checkHandshakes(t *testing.T, e *env, tests []handshakeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := handshakeFails(t, e, tt.cert); got != tt.wantFail {
				t.Errorf("handshake failed = %v, want %v", got, tt.wantFail)
			}
		})
	}
}

func TestClientAuthOff(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	e := newEnv(t, func(c *Config) { c.TLS.ClientCAs = ca.Pool() })
	now := time.Now()
	checkHandshakes(t, e, []handshakeCase{
		{"no certificate", nil, true},
		{"self-signed", testpki.SelfSigned(t, testpki.Options{}), false},
		{"ca-signed", ca.Issue(t, testpki.Options{}), false},
		{"no client EKU", testpki.SelfSigned(t, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), false},
		{"expired", testpki.SelfSigned(t, testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}), true},
		{"not yet valid", testpki.SelfSigned(t, testpki.Options{NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}), true},
	})

	// With auth off no CA is advertised, even if ClientCAs is set (14.1).
	t.Run("no advertised CAs", func(t *testing.T) {
		t.Parallel()
		cert := testpki.SelfSigned(t, testpki.Options{})
		var acceptable [][]byte
		conf := e.clientTLS(nil)
		conf.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			acceptable = cri.AcceptableCAs
			return &cert.TLS, nil
		}
		conn, err := tls.Dial("tcp", e.addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if len(acceptable) != 0 {
			t.Errorf("%d acceptable CAs advertised, want 0", len(acceptable))
		}
	})
}

// newCAEnv starts a server like newEnv whose client CAs are a new CA
// and whose admin is a certificate issued by it; verify sets
// TLS.VerifyClients. modify may change the config further.
func newCAEnv(t *testing.T, verify bool, modify ...func(*Config)) (e *env, ca *testpki.CA, admin *testpki.Cert) {
	t.Helper()
	ca = testpki.NewCA(t)
	admin = ca.Issue(t, testpki.Options{CommonName: "admin"})
	e = newEnv(t, append([]func(*Config){func(c *Config) {
		c.Admin = admin.Identity()
		c.TLS.VerifyClients = verify
		c.TLS.ClientCAs = ca.Pool()
	}}, modify...)...)
	return e, ca, admin
}

func TestClientAuthOn(t *testing.T) {
	t.Parallel()
	e, ca, admin := newCAEnv(t, true)
	now := time.Now()
	checkHandshakes(t, e, []handshakeCase{
		{"no certificate", nil, true},
		{"ca-signed", admin, false},
		{"self-signed", testpki.SelfSigned(t, testpki.Options{}), true},
		{"other ca", testpki.NewCA(t).Issue(t, testpki.Options{}), true},
		{"expired", ca.Issue(t, testpki.Options{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}), true},
		{"server EKU only", ca.Issue(t, testpki.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), true},
	})
	t.Run("admin request", func(t *testing.T) {
		t.Parallel()
		do(t, e.client(t, admin), "GET", e.url("/v1/status"), "").want(t, 200)
	})
}

// TestSkipAuth checks the downgraded handshake: with a skip_auth route,
// clients without certificate are let in, reach the skip-auth routes and
// get 400 on every other route.
func TestSkipAuth(t *testing.T) {
	t.Parallel()
	for _, verify := range []bool{false, true} {
		name := "auth off"
		if verify {
			name = "auth on"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, _, admin := newCAEnv(t, verify, func(c *Config) {
				c.Routes = map[string]RouteConfig{"/v1/status": {SkipAuth: true}, "/v1/ready": {SkipAuth: true}}
			})
			anon := e.client(t, nil)
			do(t, anon, "GET", e.url("/v1/status"), "").want(t, 200)
			do(t, anon, "GET", e.url("/v1/ready"), "").want(t, 200)
			do(t, anon, "GET", e.url("/version"), "").want(t, 200)
			do(t, anon, "GET", e.url("/v1/key/list/"), "").wantError(t, 400, "tls: client certificate is required")
			do(t, anon, "GET", e.url("/v1/identity/self/describe"), "").wantError(t, 404, "identity does not exist")
			do(t, e.client(t, admin), "GET", e.url("/v1/key/list/"), "").want(t, 200)
			if verify {
				if !handshakeFails(t, e, testpki.SelfSigned(t, testpki.Options{})) {
					t.Error("self-signed certificate accepted with auth on")
				}
			}
		})
	}
}

// TestTLSSessionResumption: a client that offers a session from its
// cache resumes it on its next connection, and the resumed connection
// still carries the identity of the first: the admin is served, a
// stranger is still refused.
func TestTLSSessionResumption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name       string
		version    uint16
		cert       *testpki.Cert
		wantStatus int
	}{
		{"tls1.3/admin", tls.VersionTLS13, e.admin, 200},
		{"tls1.2/admin", tls.VersionTLS12, e.admin, 200},
		{"tls1.3/stranger", tls.VersionTLS13, e.stranger, 403},
		{"tls1.2/stranger", tls.VersionTLS12, e.stranger, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conf := e.clientTLS(tt.cert)
			conf.MaxVersion = tt.version
			conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			tr := &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			for i, wantResumed := range []bool{false, true, true} {
				resp, err := c.Get(e.url("/v1/status"))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				resp.Body.Close()
				if resp.TLS.DidResume != wantResumed {
					t.Errorf("request %d: DidResume = %v, want %v", i, resp.TLS.DidResume, wantResumed)
				}
				if resp.TLS.Version != tt.version {
					t.Errorf("request %d: TLS version %x, want %x", i, resp.TLS.Version, tt.version)
				}
				if resp.StatusCode != tt.wantStatus {
					t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, tt.wantStatus)
				}
			}
		})
	}
}
