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
// state (spec 1.1, 1.2 and 14.1):
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
			return checkValidity(cs.PeerCertificates, now())
		}
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("server: tls session ticket key: %w", err)
	}
	conf.SetSessionTicketKeys([][32]byte{key})
	return conf, nil
}

// checkValidity rejects non-CA certificates that are not valid at now.
// VerifyConnection also runs on session resumption, unlike
// VerifyPeerCertificate.
func checkValidity(certs []*x509.Certificate, now time.Time) error {
	for _, c := range certs {
		if c.IsCA {
			continue
		}
		if now.Before(c.NotBefore) {
			return errors.New("tls: client certificate is not valid yet")
		}
		if now.After(c.NotAfter) {
			return errors.New("tls: client certificate has expired")
		}
	}
	return nil
}

// identify returns the KES identity of the TLS peer: the lowercase hex
// SHA-256 of the SubjectPublicKeyInfo of its single non-CA certificate.
// Errors are the API errors of spec 2.1 (all 400).
func identify(cs *tls.ConnectionState) (string, *api.Error) {
	if cs == nil {
		return "", api.ErrInsecure
	}
	var leaf *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if c.IsCA {
			continue
		}
		if leaf != nil {
			return "", api.ErrTooManyCerts
		}
		leaf = c
	}
	if leaf == nil {
		return "", api.ErrCertRequired
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), nil
}

// connInfo caches the identity of a connection: the peer certificates of
// a TLS connection never change, so it is computed once per connection
// instead of once per request.
type connInfo struct {
	once     sync.Once
	identity string
	err      *api.Error
}

type connKey struct{}

// requestIdentity returns the identity of r's client, cached per connection
// when r was received by Serve.
func requestIdentity(r *http.Request) (string, *api.Error) {
	if ci, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		ci.once.Do(func() { ci.identity, ci.err = identify(r.TLS) })
		return ci.identity, ci.err
	}
	return identify(r.TLS)
}
