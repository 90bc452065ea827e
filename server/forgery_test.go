package server

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/kes"
)

// forgery is a client certificate chain that an attacker can build from
// a victim's public certificate alone, with a private key of its own.
type forgery struct {
	name string
	cert tls.Certificate
}

// forgeries returns every chain an attacker holding only victim's
// certificate (and, for auth on, a CA certificate issued by the trusted
// CA) can present.
func forgeries(t *testing.T, victim *x509.Certificate, trusted *testpki.CA) []forgery {
	t.Helper()
	attackerCA := testpki.NewCA(t)
	attackerLeaf := testpki.SelfSigned(t, testpki.Options{CommonName: "attacker"})
	chain := func(first *testpki.Cert, rest ...[]byte) tls.Certificate {
		return tls.Certificate{Certificate: append([][]byte{first.X509.Raw}, rest...), PrivateKey: first.Key}
	}
	fs := []forgery{
		// The attack of issue 8: a self-signed CA certificate, whose key
		// signs the handshake, followed by the victim's certificate.
		{"own CA then victim", chain(&attackerCA.Cert, victim.Raw)},
		{"own CA then victim then own CA", chain(&attackerCA.Cert, victim.Raw, attackerCA.X509.Raw)},
		{"own leaf then victim", chain(attackerLeaf, victim.Raw)},
		// The victim's certificate first, with a key that is not its own:
		// the handshake signature cannot verify.
		{"victim with own key", tls.Certificate{Certificate: [][]byte{victim.Raw}, PrivateKey: attackerLeaf.Key}},
		{"victim with own key then own CA", tls.Certificate{Certificate: [][]byte{victim.Raw, attackerCA.X509.Raw}, PrivateKey: attackerCA.Key}},
	}
	if trusted != nil {
		// A CA certificate issued by the trusted CA (an intermediate), as
		// anyone holding one could present it.
		inter := trusted.Issue(t, testpki.Options{CommonName: "intermediate", IsCA: true})
		fs = append(fs,
			forgery{"trusted intermediate then victim", chain(inter, victim.Raw)},
			forgery{"trusted intermediate then victim then root", chain(inter, victim.Raw, trusted.X509.Raw)},
		)
	}
	return fs
}

// forgeryClient returns a client for one protocol and TLS version that
// always presents cert, whatever the server asks for.
func forgeryClient(t *testing.T, e *env, cert tls.Certificate, proto string, version uint16) *http.Client {
	t.Helper()
	conf := e.clientTLS(nil)
	conf.MinVersion, conf.MaxVersion = version, version
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	tr := &http.Transport{TLSClientConfig: conf}
	switch proto {
	case "h2":
		tr.ForceAttemptHTTP2 = true
	default:
		conf.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return testpki.Client(t, tr, 10*time.Second)
}

// tryAs sends a request that only the victim may make and reports the
// outcome: "handshake" if no HTTP response came, else the status code.
func tryAs(t *testing.T, c *http.Client, e *env, path, wantProto string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "handshake"
	}
	defer resp.Body.Close()
	if got := fmt.Sprintf("h%d", resp.ProtoMajor); !strings.HasPrefix(wantProto, got) {
		t.Fatalf("answered over %s, want %s", got, wantProto)
	}
	return fmt.Sprint(resp.StatusCode)
}

// TestForgedChain checks that no chain built from a victim's public
// certificate gives the victim's access, in both client-auth modes, over
// both HTTP versions and both TLS versions, for the admin, an API-key
// admin and a policy identity. Each case first shows that the victim's
// own certificate does get access, so a server that refused everything
// would fail.
func TestForgedChain(t *testing.T) {
	t.Parallel()
	apiKey, err := kes.GenerateAPIKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	apiCert, err := kes.GenerateCertificate(apiKey)
	if err != nil {
		t.Fatal(err)
	}
	apiLeaf, err := x509.ParseCertificate(apiCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}

	type victim struct {
		name string
		cert tls.Certificate
		leaf *x509.Certificate
		path string // allowed for the victim only
	}
	modes := []struct {
		name    string
		verify  bool
		victims func(t *testing.T, e *env, ca *testpki.CA) []victim
	}{
		{"auth off", false, func(t *testing.T, e *env, _ *testpki.CA) []victim {
			return []victim{
				{"API-key admin", apiCert, apiLeaf, "/v1/key/list/"},
				{"certificate identity", e.admin.TLS, e.admin.X509, "/v1/key/list/"},
				{"policy identity", e.user.TLS, e.user.X509, "/v1/status"},
			}
		}},
		{"auth on", true, func(t *testing.T, e *env, _ *testpki.CA) []victim {
			return []victim{
				{"admin", e.admin.TLS, e.admin.X509, "/v1/key/list/"},
				{"policy identity", e.user.TLS, e.user.X509, "/v1/status"},
			}
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ca := testpki.NewCA(t)
			var admin, user *testpki.Cert
			if mode.verify {
				admin = ca.Issue(t, testpki.Options{CommonName: "admin"})
				user = ca.Issue(t, testpki.Options{CommonName: "user"})
			}
			e := newEnv(t, func(c *Config) {
				if mode.verify {
					c.Admin = admin.Identity()
					p := c.Policies["my-app"]
					p.Identities = []string{user.Identity()}
					c.Policies = map[string]Policy{"my-app": p}
					c.TLS.VerifyClients = true
					c.TLS.ClientCAs = ca.Pool()
				} else {
					// The admin is an API key; the admin certificate
					// of env gets a policy of its own.
					certAdmin := c.Admin
					c.Admin = string(kes.IdentityOf(apiLeaf))
					c.Policies["ops"] = Policy{Allow: []string{"/v1/key/list/*"}, Identities: []string{certAdmin}}
				}
			})
			if mode.verify {
				e.admin, e.user = admin, user
			}
			var trusted *testpki.CA
			if mode.verify {
				trusted = ca
			}
			for _, v := range mode.victims(t, e, ca) {
				forged := forgeries(t, v.leaf, trusted)
				for _, proto := range []string{"h1", "h2"} {
					for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
						name := fmt.Sprintf("%s/%s/%s", v.name, proto, tls.VersionName(version))
						t.Run(name, func(t *testing.T) {
							t.Parallel()
							own := forgeryClient(t, e, v.cert, proto, version)
							if got := tryAs(t, own, e, v.path, proto); got != "200" {
								t.Fatalf("victim's own certificate: %s, want 200", got)
							}
							for _, f := range forged {
								c := forgeryClient(t, e, f.cert, proto, version)
								switch got := tryAs(t, c, e, v.path, proto); got {
								case "handshake", "400", "403":
								default:
									t.Errorf("%s: %s, want a handshake error, 400 or 403", f.name, got)
								}
							}
						})
					}
				}
			}
		})
	}
}
