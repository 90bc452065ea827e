package kes

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// apiKeyVectors are the API keys and identities of the KES API reference
// (section 4.2).
var apiKeyVectors = []struct {
	key      string
	identity Identity
}{
	{"kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"},
	{"kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs", "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6"},
	{"kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw", "0426fa9a04bc2756b92fbe8a97e1a1e07b53ecf04ed33da22c33e5c9faeb8cbb"},
	{"kes:v1:AMxvd2uV1l5dDSRwuKZxSjuM5BDemlr+685+JAHA1TuJ", "ab785e3b95d80d72cc9c27cb9fde886a0bf9068a69d40e3bd08a54e68c3f2bf7"},
}

func mustParseAPIKey(tb testing.TB, s string) APIKey {
	tb.Helper()
	key, err := ParseAPIKey(s)
	if err != nil {
		tb.Fatalf("ParseAPIKey(%q) = %v", s, err)
	}
	return key
}

func TestParseAPIKeyVectors(t *testing.T) {
	t.Parallel()
	for _, v := range apiKeyVectors {
		t.Run(v.key, func(t *testing.T) {
			t.Parallel()
			key := mustParseAPIKey(t, v.key)
			if got := key.Identity(); got != v.identity {
				t.Errorf("Identity() = %q, want %q", got, v.identity)
			}
			if got := key.String(); got != v.key {
				t.Errorf("String() = %q, want %q", got, v.key)
			}
			// Without the prefix, the same key.
			bare := mustParseAPIKey(t, strings.TrimPrefix(v.key, "kes:v1:"))
			if got := bare.String(); got != v.key {
				t.Errorf("ParseAPIKey(bare).String() = %q, want %q", got, v.key)
			}
			// The identity equals that of the standard SPKI encoding.
			spki, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if got := IdentityOf(&x509.Certificate{RawSubjectPublicKeyInfo: spki}); got != v.identity {
				t.Errorf("IdentityOf(SPKI) = %q, want %q", got, v.identity)
			}
		})
	}
}

func TestParseAPIKeyInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     string
		wantErr string
	}{
		{"empty", "", "kes: invalid API key: invalid length"},
		{"prefix only", "kes:v1:", "kes: invalid API key: invalid length"},
		{"wrong version prefix", "v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "kes: invalid API key: illegal base64 data at input byte 2"},
		{"partial prefix", "kes:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "kes: invalid API key: illegal base64 data at input byte 3"},
		{"unsupported type", "kes:v1:AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f", "kes: invalid API key: unsupported type"},
		{"seed without type", "kes:v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "kes: invalid API key: invalid length"},
		{"too short", "kes:v1:AAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4=", "kes: invalid API key: invalid length"},
		{"url-safe base64", "kes:v1:AD9E7FSYWrMD-VjhI6q545cYT9YOyFxZb7UnjEepYDRc", "kes: invalid API key: illegal base64 data at input byte 12"},
		{"trailing space", "kes:v1:AD9E7FSYWrMD+VjhI6q545cYT9YOyFxZb7UnjEepYDRc ", "kes: invalid API key: illegal base64 data at input byte 44"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := ParseAPIKey(tt.key)
			if err == nil {
				t.Fatalf("ParseAPIKey(%q) = %v, want error %q", tt.key, key.Identity(), tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("ParseAPIKey(%q) error = %q, want %q", tt.key, err, tt.wantErr)
			}
		})
	}
}

func TestGenerateAPIKey(t *testing.T) {
	t.Parallel()
	seed := bytes.Repeat([]byte{7}, 32)
	key, err := GenerateAPIKey(bytes.NewReader(seed))
	if err != nil {
		t.Fatal(err)
	}
	want := ed25519.NewKeyFromSeed(seed)
	if got := key.Private().(ed25519.PrivateKey); !got.Equal(want) {
		t.Errorf("Private() = %x, want %x", got, want)
	}
	if got := key.Public().(ed25519.PublicKey); !got.Equal(want.Public()) {
		t.Errorf("Public() = %x, want %x", got, want.Public())
	}
	again := mustParseAPIKey(t, key.String())
	if again.Identity() != key.Identity() {
		t.Errorf("ParseAPIKey(String()).Identity() = %q, want %q", again.Identity(), key.Identity())
	}
	if n := len(key.String()); n != 51 {
		t.Errorf("len(String()) = %d, want 51", n)
	}

	if _, err := GenerateAPIKey(bytes.NewReader(seed[:31])); err == nil {
		t.Error("GenerateAPIKey(short reader) succeeded, want error")
	}

	a, err := GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateAPIKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Identity() == b.Identity() {
		t.Error("GenerateAPIKey(nil) returned the same key twice")
	}
}

func TestAPIKeyZero(t *testing.T) {
	t.Parallel()
	var key APIKey
	if got := key.String(); got != "" {
		t.Errorf("String() = %q, want empty", got)
	}
	if got := key.Identity(); !got.IsUnknown() {
		t.Errorf("Identity() = %q, want unknown", got)
	}
	if key.Public() != nil || key.Private() != nil {
		t.Error("Public() or Private() of the zero APIKey is not nil")
	}
	if _, err := GenerateCertificate(key); err == nil {
		t.Error("GenerateCertificate(zero key) succeeded, want error")
	}
}

func TestAPIKeyDoesNotLeak(t *testing.T) {
	t.Parallel()
	v := apiKeyVectors[0]
	key := mustParseAPIKey(t, v.key)
	secret := strings.TrimPrefix(v.key, "kes:v1:")

	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("msg", "key", key)

	tests := []struct {
		name string
		out  string
	}{
		{"GoString", fmt.Sprintf("%#v", key)},
		{"slog", logged.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if strings.Contains(tt.out, secret) {
				t.Errorf("output %q contains the key", tt.out)
			}
			if !strings.Contains(tt.out, string(v.identity)) {
				t.Errorf("output %q does not contain the identity", tt.out)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	if !Identity("").IsUnknown() {
		t.Error(`Identity("").IsUnknown() = false`)
	}
	if Identity("x").IsUnknown() {
		t.Error(`Identity("x").IsUnknown() = true`)
	}
	if got := IdentityOf(nil); got != "" {
		t.Errorf("IdentityOf(nil) = %q, want empty", got)
	}
}

func TestGenerateCertificate(t *testing.T) {
	t.Parallel()
	key := mustParseAPIKey(t, apiKeyVectors[1].key)
	before := time.Now().UTC().Truncate(time.Second)
	cert, err := GenerateCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	if len(cert.Certificate) != 1 {
		t.Fatalf("len(Certificate) = %d, want 1", len(cert.Certificate))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(cert.Leaf) {
		t.Error("Leaf differs from Certificate[0]")
	}
	if priv, ok := cert.PrivateKey.(ed25519.PrivateKey); !ok || !priv.Equal(key.Private()) {
		t.Errorf("PrivateKey = %T, want the API key", cert.PrivateKey)
	}

	id := string(key.Identity())
	sigErr := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature)
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"version 3", leaf.Version == 3, leaf.Version},
		{"serial in [0, 2^128)", leaf.SerialNumber.Sign() >= 0 && leaf.SerialNumber.Cmp(limit) < 0, leaf.SerialNumber},
		{"subject CN is identity", leaf.Subject.CommonName == id, leaf.Subject},
		{"subject has only a CN", len(leaf.Subject.Names) == 1, leaf.Subject.Names},
		{"self-issued", bytes.Equal(leaf.RawIssuer, leaf.RawSubject), leaf.Issuer},
		{"signed by the key", sigErr == nil, sigErr},
		{"Ed25519", leaf.SignatureAlgorithm == x509.PureEd25519, leaf.SignatureAlgorithm},
		{"NotBefore is now", !leaf.NotBefore.Before(before) && !leaf.NotBefore.After(after), leaf.NotBefore},
		{"NotBefore in UTC", leaf.NotBefore.Location() == time.UTC, leaf.NotBefore.Location()},
		{"valid 90 days", leaf.NotAfter.Sub(leaf.NotBefore) == 90*24*time.Hour, leaf.NotAfter.Sub(leaf.NotBefore)},
		{"key usage digitalSignature", leaf.KeyUsage == x509.KeyUsageDigitalSignature, leaf.KeyUsage},
		{"EKU clientAuth", cmp.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}), leaf.ExtKeyUsage},
		{"basic constraints, not a CA", leaf.BasicConstraintsValid && !leaf.IsCA, leaf.IsCA},
		{"no SANs", len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) == 0, leaf.DNSNames},
		{"IdentityOf equals the key's identity", IdentityOf(leaf) == key.Identity(), IdentityOf(leaf)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: got %v", c.name, c.got)
		}
	}

	// Serial numbers are random.
	other, err := GenerateCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates have the same serial number")
	}
}

func TestGenerateCertificateOptions(t *testing.T) {
	t.Parallel()
	key := mustParseAPIKey(t, apiKeyVectors[2].key)
	ips := []net.IP{net.ParseIP("127.0.0.1").To4(), net.ParseIP("::1")}
	cert, err := GenerateCertificate(key,
		WithDNSNames("localhost", "kes.example.com"),
		WithIPAddresses(ips...),
		WithValidity(720*time.Hour),
		WithServerAuth(),
		WithServerAuth(), // idempotent
		WithCommonName("my-server"),
	)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if got, want := leaf.DNSNames, []string{"localhost", "kes.example.com"}; !cmp.Equal(got, want) {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(ips[0]) || !leaf.IPAddresses[1].Equal(ips[1]) {
		t.Errorf("IPAddresses = %v, want %v", leaf.IPAddresses, ips)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 720*time.Hour {
		t.Errorf("validity = %v, want 720h", got)
	}
	if got, want := leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}; !cmp.Equal(got, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", got, want)
	}
	if leaf.Subject.CommonName != "my-server" || leaf.Issuer.CommonName != "my-server" {
		t.Errorf("Subject = %v, Issuer = %v, want CN my-server", leaf.Subject, leaf.Issuer)
	}
	if got := IdentityOf(leaf); got != key.Identity() {
		t.Errorf("IdentityOf = %q, want %q", got, key.Identity())
	}
	// A server certificate made this way verifies for its names.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pool}); err != nil {
		t.Errorf("Verify(localhost) = %v", err)
	}

	if _, err := GenerateCertificate(key, WithValidity(-time.Hour)); err == nil {
		t.Error("GenerateCertificate(negative validity) succeeded, want error")
	}
}
