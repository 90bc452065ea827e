package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

// FuzzIdentify builds arbitrary client certificate chains, from a pool of
// CA and leaf certificates and from fuzzed DER, and checks that identify
// never yields an identity other than that of the first certificate and
// never accepts a CA certificate as the first one.
func FuzzIdentify(f *testing.F) {
	ca := testpki.NewCA(f)
	pool := []*x509.Certificate{
		ca.X509,
		testpki.NewCA(f).X509,
		ca.Issue(f, testpki.Options{CommonName: "intermediate", IsCA: true}).X509,
		ca.Issue(f, testpki.Options{}).X509,
		testpki.SelfSigned(f, testpki.Options{}).X509,
		testpki.SelfSigned(f, testpki.Options{Key: testpki.Ed25519Key(make([]byte, 32))}).X509,
		testpki.SelfSigned(f, testpki.Options{NotAfter: time.Now().Add(-time.Minute), NotBefore: time.Now().Add(-time.Hour)}).X509,
	}
	// Selector bytes: i%(len(pool)+1) picks pool[i], or the fuzzed DER.
	f.Add([]byte{0, 3}, []byte{})
	f.Add([]byte{3, 0}, []byte{})
	f.Add([]byte{4, 3}, []byte{})
	f.Add([]byte{2, 4, 0}, []byte{})
	f.Add([]byte{7}, pool[4].Raw)
	f.Add([]byte{1, 7, 1}, pool[3].Raw)
	f.Fuzz(func(t *testing.T, sel []byte, der []byte) {
		if len(sel) > 16 {
			sel = sel[:16]
		}
		fuzzed, _ := x509.ParseCertificate(der)
		var certs []*x509.Certificate
		for _, b := range sel {
			i := int(b) % (len(pool) + 1)
			switch {
			case i < len(pool):
				certs = append(certs, pool[i])
			case fuzzed != nil:
				certs = append(certs, fuzzed)
			}
		}
		id, err := identify(&tls.ConnectionState{PeerCertificates: certs})
		if len(certs) > 0 && certs[0].IsCA && err == nil {
			t.Fatalf("identify accepted a chain whose first certificate is a CA: %q", id)
		}
		if err != nil {
			if id != "" {
				t.Fatalf("identify returned %q with error %v", id, err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatalf("identify = %q for an empty chain", id)
		}
		sum := sha256.Sum256(certs[0].RawSubjectPublicKeyInfo)
		if want := hex.EncodeToString(sum[:]); id != want {
			t.Fatalf("identify = %q, want the first certificate's identity %q", id, want)
		}
	})
}
