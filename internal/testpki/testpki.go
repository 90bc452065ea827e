// Package testpki mints throwaway certificates for tests. Nothing it
// produces is ever written to the repository.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// Options describes a certificate to mint. Zero values get sensible
// defaults: valid from an hour ago for a day, ECDSA P-256 key.
type Options struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	NotBefore  time.Time
	NotAfter   time.Time
	IsCA       bool
	// ExtKeyUsage defaults to clientAuth and serverAuth.
	ExtKeyUsage []x509.ExtKeyUsage
	// Key, if set, is the certificate's private key (e.g. an Ed25519 key
	// from an API key). Otherwise a fresh ECDSA P-256 key is generated.
	Key crypto.Signer
}

// Cert is a minted certificate with its key.
type Cert struct {
	TLS  tls.Certificate
	X509 *x509.Certificate
	Key  crypto.Signer
}

// Identity returns the KES identity: hex SHA-256 of the SubjectPublicKeyInfo.
func (c *Cert) Identity() string {
	sum := sha256.Sum256(c.X509.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// CertPEM returns the certificate as a PEM block.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.X509.Raw})
}

// KeyPEM returns the private key as a PKCS#8 PEM block.
func (c *Cert) KeyPEM(tb testing.TB) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		tb.Fatalf("testpki: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// CA is a throwaway certificate authority.
type CA struct {
	Cert
}

// NewCA creates a self-signed root CA.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	c := mint(tb, Options{CommonName: "OpenKES test CA", IsCA: true}, nil)
	return &CA{Cert: *c}
}

// Pool returns a pool containing only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.X509)
	return p
}

// Issue mints a leaf certificate signed by the CA.
func (ca *CA) Issue(tb testing.TB, opts Options) *Cert {
	tb.Helper()
	return mint(tb, opts, &ca.Cert)
}

// SelfSigned mints a self-signed leaf certificate.
func SelfSigned(tb testing.TB, opts Options) *Cert {
	tb.Helper()
	return mint(tb, opts, nil)
}

// Server mints a self-signed server certificate for localhost, 127.0.0.1
// and ::1.
func Server(tb testing.TB) *Cert {
	tb.Helper()
	return mint(tb, Options{
		CommonName:  "localhost",
		DNSNames:    []string{"localhost"},
		IPs:         []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, nil)
}

// Ed25519Key derives the Ed25519 private key from a 32-byte seed.
func Ed25519Key(seed []byte) crypto.Signer {
	return ed25519.NewKeyFromSeed(seed)
}

func mint(tb testing.TB, opts Options, parent *Cert) *Cert {
	tb.Helper()
	key := opts.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatalf("testpki: generate key: %v", err)
		}
		key = k
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatalf("testpki: serial: %v", err)
	}
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(24 * time.Hour)
	}
	if opts.CommonName == "" {
		opts.CommonName = "openkes-test"
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		DNSNames:              opts.DNSNames,
		IPAddresses:           opts.IPs,
		BasicConstraintsValid: true,
		IsCA:                  opts.IsCA,
	}
	if opts.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = opts.ExtKeyUsage
		if tmpl.ExtKeyUsage == nil {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
		}
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.X509, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		tb.Fatalf("testpki: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testpki: parse certificate: %v", err)
	}
	chain := [][]byte{der}
	return &Cert{
		TLS:  tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: cert},
		X509: cert,
		Key:  key,
	}
}
