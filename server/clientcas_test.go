package server

import (
	"crypto/x509"
	"sync/atomic"
	"testing"

	"github.com/openkes/openkes/internal/testpki"
)

// TestGetClientCAs checks that with auth on the client CAs come from
// TLSConfig.GetClientCAs on every handshake, so that a rotated tls.ca
// takes effect without a reload.
func TestGetClientCAs(t *testing.T) {
	t.Parallel()
	oldCA, newCA := testpki.NewCA(t), testpki.NewCA(t)
	admin := oldCA.Issue(t, testpki.Options{CommonName: "admin"})
	// The same key, reissued by the new CA: the same identity.
	reissued := newCA.Issue(t, testpki.Options{CommonName: "admin", Key: admin.Key})
	var pool atomic.Pointer[x509.CertPool]
	pool.Store(oldCA.Pool())
	e := newEnv(t, func(c *Config) {
		c.Admin = admin.Identity()
		c.TLS.VerifyClients = true
		c.TLS.GetClientCAs = pool.Load
	})
	if handshakeFails(t, e, admin) {
		t.Fatal("certificate of the current CA refused")
	}
	if !handshakeFails(t, e, reissued) {
		t.Fatal("certificate of a CA not in the pool accepted")
	}
	both := oldCA.Pool()
	both.AddCert(newCA.X509)
	pool.Store(both)
	if handshakeFails(t, e, reissued) {
		t.Fatal("certificate of the rotated-in CA refused")
	}
	do(t, e.client(t, reissued), "GET", e.url("/v1/key/list/"), "").want(t, 200)
	pool.Store(newCA.Pool())
	if !handshakeFails(t, e, admin) {
		t.Fatal("certificate of the rotated-out CA accepted")
	}
}
