package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/openkes/openkes/internal/api"
)

// newTLSConfig returns the per-handshake TLS configuration of one server
// state (see docs/production.md, "Clients and identities"):
//
//   - VerifyClients false ("auth: off"): a client certificate is required
//     (only requested if some route skips authentication) but not chained to
//     any CA, and no CA is advertised in the CertificateRequest, so
//     self-signed API-key certificates work with every client style. A
//     certificate outside its validity period is still rejected.
//   - VerifyClients true ("auth: on"): the certificate must chain to
//     ClientCAs (system roots when nil) with EKU clientAuth; it is only
//     verified-if-given when some route skips authentication.
//
// In both modes only the first certificate names the client, because the
// handshake proves possession of its key alone (see identify).
//
// Each state gets fresh session ticket keys, so a TLS session can never be
// resumed across an Update that changed the client-auth settings.
func newTLSConfig(c *TLSConfig, skipAuth bool, now func() time.Time) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: c.GetCertificate,
		Time:           now,
	}
	if c.VerifyClients {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		if skipAuth {
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
		conf.ClientCAs = c.ClientCAs
	} else {
		conf.ClientAuth = tls.RequireAnyClientCert
		if skipAuth {
			conf.ClientAuth = tls.RequestClientCert
		}
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			return checkPeer(cs.PeerCertificates, now())
		}
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("server: tls session ticket key: %w", err)
	}
	conf.SetSessionTicketKeys([][32]byte{key})
	return conf, nil
}

// checkPeer refuses a client whose first certificate, the one that names
// it, is not valid at now. Only "auth: off" needs it: with "auth: on" Go
// verifies the chain, validity included. An empty chain passes: whether a
// certificate is required is the handshake's ClientAuth setting.
// VerifyConnection also runs on session resumption, unlike
// VerifyPeerCertificate.
func checkPeer(certs []*x509.Certificate, now time.Time) error {
	if len(certs) == 0 {
		return nil
	}
	leaf := certs[0]
	if now.Before(leaf.NotBefore) {
		return errors.New("tls: client certificate is not valid yet")
	}
	if now.After(leaf.NotAfter) {
		return errors.New("tls: client certificate has expired")
	}
	return nil
}

// identify returns the KES identity of the TLS peer: the lowercase hex
// SHA-256 of the SubjectPublicKeyInfo of its first certificate, the only
// one whose private key the handshake proved the client holds. With
// "auth: on" it is also the leaf of the verified chain.
//
// The certificates after the first do not take part in the identity. With
// "auth: on" they are the intermediates Go used to verify the chain; with
// "auth: off" nothing is verified and they are ignored, except that, as in
// the original server, a chain holding a second certificate that is not a
// CA certificate is refused ("received more than one client certificate").
// A first certificate with CA:TRUE never names a client: it is refused
// with "client certificate is required", the original server's answer for
// a chain without a leaf.
//
// Errors are the API errors of docs/production.md (all 400).
func identify(cs *tls.ConnectionState) (string, error) {
	if cs == nil {
		return "", api.ErrInsecure
	}
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].IsCA {
		return "", api.ErrCertRequired
	}
	for _, c := range cs.PeerCertificates[1:] {
		if !c.IsCA {
			return "", api.ErrTooManyCerts
		}
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), nil
}

// connInfo caches the identity of a connection: the peer certificates of
// a TLS connection never change, so it is computed once per connection
// instead of once per request.
type connInfo struct {
	once     sync.Once
	identity string
	err      error
	// streamTimeout is the write deadline every stream of the connection
	// starts with (its read deadline is 3/4 of it) when Serve's HTTP/2
	// server serves it, else 0.
	streamTimeout time.Duration
}

type connKey struct{}

// requestIdentity returns the identity of r's client, cached per connection
// when r was received by Serve.
func requestIdentity(r *http.Request) (string, error) {
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		ci.once.Do(func() { ci.identity, ci.err = identify(r.TLS) })
		return ci.identity, ci.err
	}
	return identify(r.TLS)
}
