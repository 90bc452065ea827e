package kes

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"time"
)

// apiKeyPrefix is the literal prefix of the string form of an API key.
const apiKeyPrefix = "kes:v1:"

// apiKeyTypeEd25519 is the type byte of an Ed25519 API key.
const apiKeyTypeEd25519 = 0x00

// ed25519SPKIPrefix is the DER encoding of an Ed25519 SubjectPublicKeyInfo
// up to the 32 bytes of the public key: SEQUENCE { SEQUENCE { OID
// 1.3.101.112 }, BIT STRING }. Hashing it together with the public key
// gives the identity without going through an error-returning encoder.
var ed25519SPKIPrefix = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}

var (
	errAPIKeyLength = errors.New("kes: invalid API key: invalid length")
	errAPIKeyType   = errors.New("kes: invalid API key: unsupported type")
	errAPIKeyZero   = errors.New("kes: invalid API key: key is empty")
)

// APIKey is a KES API key: an Ed25519 private key that authenticates a
// client through a self-signed certificate (see [GenerateCertificate]).
//
// Its string form, returned by [APIKey.String], is the secret itself:
// "kes:v1:" followed by the standard base64 encoding of a type byte (0 for
// Ed25519) and the 32-byte Ed25519 seed. %#v and [log/slog] do not show the
// key. APIKey values cannot be compared with ==; compare their identities.
//
// The zero APIKey holds no key: String and Identity return empty strings,
// Public and Private return nil, and GenerateCertificate fails.
type APIKey struct {
	_   [0]func() // not comparable
	key ed25519.PrivateKey
}

// GenerateAPIKey returns a new Ed25519 API key whose 32-byte seed is read
// from random, or from [crypto/rand.Reader] if random is nil. It returns an
// error only if reading from random fails.
func GenerateAPIKey(random io.Reader) (APIKey, error) {
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return APIKey{}, fmt.Errorf("kes: generate API key: %w", err)
	}
	defer clear(seed)
	return APIKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParseAPIKey parses the string form of an API key. The "kes:v1:" prefix is
// optional: a bare base64 string is accepted, too.
//
// It returns an error that starts with "kes: invalid API key:" if s is not
// valid standard base64, if the decoded value is not 33 bytes long
// ("kes: invalid API key: invalid length") or if its type byte is not 0
// ("kes: invalid API key: unsupported type"). Errors never contain s.
func ParseAPIKey(s string) (APIKey, error) {
	s = strings.TrimPrefix(s, apiKeyPrefix)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// The base64 error only tells a byte offset, never the input.
		return APIKey{}, fmt.Errorf("kes: invalid API key: %w", err)
	}
	defer clear(b)
	if len(b) != 1+ed25519.SeedSize {
		return APIKey{}, errAPIKeyLength
	}
	if b[0] != apiKeyTypeEd25519 {
		return APIKey{}, errAPIKeyType
	}
	return APIKey{key: ed25519.NewKeyFromSeed(b[1:])}, nil
}

// String returns the API key in its "kes:v1:<base64>" form, which is the
// secret. It returns "" for the zero APIKey.
func (k APIKey) String() string {
	if len(k.key) == 0 {
		return ""
	}
	b := make([]byte, 1+ed25519.SeedSize)
	b[0] = apiKeyTypeEd25519
	copy(b[1:], k.key.Seed())
	defer clear(b)
	return apiKeyPrefix + base64.StdEncoding.EncodeToString(b)
}

// GoString implements [fmt.GoStringer] so that %#v, which would otherwise
// print the raw key bytes, shows only the identity.
func (k APIKey) GoString() string {
	return fmt.Sprintf("kes.APIKey{Identity: %q}", string(k.Identity()))
}

// LogValue implements [slog.LogValuer]: structured logs show the identity
// of the key, never the key.
func (k APIKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("identity", string(k.Identity())))
}

// Public returns the key's [ed25519.PublicKey], or nil for the zero APIKey.
func (k APIKey) Public() crypto.PublicKey {
	if len(k.key) == 0 {
		return nil
	}
	return k.key.Public()
}

// Private returns the key's [ed25519.PrivateKey], or nil for the zero
// APIKey. The returned key shares memory with k; callers must not modify it.
func (k APIKey) Private() crypto.PrivateKey {
	if len(k.key) == 0 {
		return nil
	}
	return k.key
}

// Identity returns the identity a KES server computes for a client that
// authenticates with this key: the hex SHA-256 of the DER
// SubjectPublicKeyInfo of the Ed25519 public key. It returns "" for the
// zero APIKey.
func (k APIKey) Identity() Identity {
	if len(k.key) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write(ed25519SPKIPrefix)
	h.Write(k.key.Public().(ed25519.PublicKey))
	return Identity(hex.EncodeToString(h.Sum(nil)))
}

// Identity identifies a KES client: the lowercase hex SHA-256 of the DER
// SubjectPublicKeyInfo of its certificate. Servers compare identities as
// exact strings.
type Identity string

// IsUnknown reports whether the identity is empty.
func (id Identity) IsUnknown() bool { return id == "" }

// String returns the identity as a string.
func (id Identity) String() string { return string(id) }

// IdentityOf returns the identity of the certificate: the lowercase hex
// SHA-256 of its RawSubjectPublicKeyInfo. It works for every key type and
// returns "" if cert is nil.
func IdentityOf(cert *x509.Certificate) Identity {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return Identity(hex.EncodeToString(sum[:]))
}

// CertificateOption customises the certificate template that
// [GenerateCertificate] signs. Options run after the defaults are set, in
// order, and may change any field of the template.
type CertificateOption func(*x509.Certificate)

// WithDNSNames adds the names as DNS subject alternative names.
func WithDNSNames(names ...string) CertificateOption {
	return func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, names...) }
}

// WithIPAddresses adds the addresses as IP subject alternative names.
func WithIPAddresses(ips ...net.IP) CertificateOption {
	return func(c *x509.Certificate) { c.IPAddresses = append(c.IPAddresses, ips...) }
}

// WithValidity makes the certificate valid for d from its NotBefore time
// (by default the time of generation). GenerateCertificate fails if d is
// negative.
func WithValidity(d time.Duration) CertificateOption {
	return func(c *x509.Certificate) { c.NotAfter = c.NotBefore.Add(d) }
}

// WithServerAuth adds the serverAuth extended key usage, so the certificate
// can also serve as a TLS server certificate.
func WithServerAuth() CertificateOption {
	return func(c *x509.Certificate) {
		for _, u := range c.ExtKeyUsage {
			if u == x509.ExtKeyUsageServerAuth {
				return
			}
		}
		c.ExtKeyUsage = append(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
}

// WithCommonName sets the subject (and, the certificate being
// self-signed, issuer) common name. The default is the key's identity.
func WithCommonName(cn string) CertificateOption {
	return func(c *x509.Certificate) { c.Subject.CommonName = cn }
}

// defaultCertValidity is the validity of a certificate made from an API key.
const defaultCertValidity = 90 * 24 * time.Hour

// GenerateCertificate returns a self-signed X.509 v3 certificate for the
// API key, signed with the key itself, and the key as its private key. By
// default the certificate has a random serial number in [0, 2^128), the
// subject (and issuer) common name set to the key's identity, a validity
// of 90 days starting now (UTC), key usage digitalSignature, extended key
// usage clientAuth, basic constraints with CA=false and no subject
// alternative names. opts may change any of these.
//
// A KES server in its default mode ignores everything in the certificate
// but the public key, whose hash is the client's identity.
//
// It returns an error if key is the zero APIKey, if the options produce a
// NotAfter before NotBefore, or if the certificate cannot be created.
func GenerateCertificate(key APIKey, opts ...CertificateOption) (tls.Certificate, error) {
	if len(key.key) == 0 {
		return tls.Certificate{}, errAPIKeyZero
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("kes: generate certificate: %w", err)
	}
	now := time.Now().UTC()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: key.Identity().String()},
		NotBefore:             now,
		NotAfter:              now.Add(defaultCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	for _, opt := range opts {
		opt(template)
	}
	if template.NotAfter.Before(template.NotBefore) {
		return tls.Certificate{}, errors.New("kes: generate certificate: NotAfter is before NotBefore")
	}
	// Passing template as parent makes the certificate self-signed, with
	// issuer = subject.
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.key.Public(), key.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("kes: generate certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("kes: generate certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der},
		PrivateKey:  key.key,
		Leaf:        leaf,
	}, nil
}
