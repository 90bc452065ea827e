package interop

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/keystore/entrust/entrusttest"
	"github.com/openkes/openkes/keystore/fortanix/fortanixtest"
	"github.com/openkes/openkes/keystore/gemalto/gemaltotest"
)

// The REST key stores (Gemalto KeySecure, Fortanix SDKMS, Entrust
// KeyControl) against their fakes, through the kes binary and the
// upstream SDK, with configs in the original server's schema.

// restFake is what the tests need of a REST key service fake.
type restFake interface {
	// keyStore returns the keystore section in the original's schema;
	// the fake's certificate is trusted through tls.ca: rest-ca.pem.
	keyStore() string
	// caPEM is the fake's certificate.
	caPEM() []byte
	// put stores a key file as the original server stores it.
	put(t *testing.T, name string, data []byte)
	// stored returns the key file stored under name, decoded as the
	// original server reads it.
	stored(t *testing.T, name string) ([]byte, bool)
	setDown(down bool)
	// secrets returns the credentials of the config and every token the
	// fake issued: none may appear in the server's output.
	secrets() []string
	// logins counts successful logins (0 if the service has none).
	logins() int
	banner() string
	url() string
}

// restBackends are the REST stores under test; tokenTTL is the lifetime
// of the access tokens the fake issues.
// tokens tells whether the service issues expiring access tokens.
var restBackends = []struct {
	name   string
	tokens bool
	start  func(t *testing.T, tokenTTL time.Duration) restFake
}{
	{"gemalto", true, startGemalto},
	{"fortanix", false, startFortanix},
	{"entrust", true, startEntrust},
}

// gemaltoFake adapts gemaltotest.
type gemaltoFake struct{ *gemaltotest.Server }

const gemaltoRefreshToken = "interop-refresh-token-7f3a9c"

func startGemalto(t *testing.T, ttl time.Duration) restFake {
	return gemaltoFake{gemaltotest.New(t, gemaltotest.Options{RefreshToken: gemaltoRefreshToken, Domain: "kes", TokenDuration: ttl, PageSize: 2})}
}

func (f gemaltoFake) keyStore() string {
	return fmt.Sprintf("  gemalto:\n    keysecure:\n      endpoint: %s\n      credentials:\n        token: %s\n        domain: kes\n        retry: 15s\n      tls:\n        ca: rest-ca.pem\n", f.URL, gemaltoRefreshToken)
}
func (f gemaltoFake) caPEM() []byte                              { return f.CACertPEM() }
func (f gemaltoFake) put(t *testing.T, name string, data []byte) { f.Put(name, string(data)) }
func (f gemaltoFake) setDown(down bool)                          { f.SetDown(down) }
func (f gemaltoFake) logins() int                                { return f.Logins() }
func (f gemaltoFake) banner() string                             { return "Gemalto KeySecure: " + f.URL }
func (f gemaltoFake) url() string                                { return f.URL }
func (f gemaltoFake) secrets() []string                          { return append(f.JWTs(), gemaltoRefreshToken) }
func (f gemaltoFake) stored(t *testing.T, name string) ([]byte, bool) {
	m, ok := f.Material(name)
	return []byte(m), ok
}

// fortanixFake adapts fortanixtest.
type fortanixFake struct{ *fortanixtest.Server }

const (
	fortanixAPIKey  = "aW50ZXJvcC1hcHA6aW50ZXJvcC1zZWNyZXQtOWQ4ZQ=="
	fortanixGroupID = "5a1e0b4e-group"
)

func startFortanix(t *testing.T, _ time.Duration) restFake {
	return fortanixFake{fortanixtest.New(t, fortanixtest.Options{APIKey: fortanixAPIKey, PageSize: 2})}
}

func (f fortanixFake) keyStore() string {
	return fmt.Sprintf("  fortanix:\n    sdkms:\n      endpoint: %s\n      group_id: %s\n      credentials:\n        key: %s\n      tls:\n        ca: rest-ca.pem\n", f.URL, fortanixGroupID, fortanixAPIKey)
}
func (f fortanixFake) caPEM() []byte     { return f.CACertPEM() }
func (f fortanixFake) setDown(down bool) { f.SetDown(down) }
func (f fortanixFake) logins() int       { return 0 }
func (f fortanixFake) banner() string    { return "Fortanix SDKMS: " + f.URL }
func (f fortanixFake) url() string       { return f.URL }
func (f fortanixFake) secrets() []string { return []string{fortanixAPIKey} }
func (f fortanixFake) put(t *testing.T, name string, data []byte) {
	f.Put(name, fortanixGroupID, data)
}
func (f fortanixFake) stored(t *testing.T, name string) ([]byte, bool) {
	o, ok := f.Object(name)
	if !ok {
		return nil, false
	}
	if o.GroupID != fortanixGroupID || o.ObjType != "OPAQUE" || !o.Enabled {
		t.Errorf("object %s = %+v, want an enabled OPAQUE object in group %s", name, o, fortanixGroupID)
	}
	v, err := base64.StdEncoding.DecodeString(o.Value)
	if err != nil {
		t.Errorf("object %s: the value is not base64", name)
	}
	return v, true
}

// entrustFake adapts entrusttest.
type entrustFake struct{ *entrusttest.Server }

const (
	entrustVaultID  = "0c5e9a71-vault"
	entrustBoxID    = "77d1b3f2-box"
	entrustUser     = "kes"
	entrustPassword = "interop-entrust-password-1b6c"
)

func startEntrust(t *testing.T, ttl time.Duration) restFake {
	return entrustFake{entrusttest.New(t, entrusttest.Options{VaultID: entrustVaultID, BoxID: entrustBoxID, Username: entrustUser, Password: entrustPassword, TokenLifetime: ttl, PageSize: 2})}
}

func (f entrustFake) keyStore() string {
	return fmt.Sprintf("  entrust:\n    keycontrol:\n      endpoint: %s\n      vault_id: %s\n      box_id: %s\n      credentials:\n        username: %s\n        password: %s\n      tls:\n        ca: rest-ca.pem\n",
		f.URL, entrustVaultID, entrustBoxID, entrustUser, entrustPassword)
}
func (f entrustFake) caPEM() []byte     { return f.CACertPEM() }
func (f entrustFake) setDown(down bool) { f.SetDown(down) }
func (f entrustFake) banner() string    { return "Entrust KeyControl: " + f.URL }
func (f entrustFake) url() string       { return f.URL }
func (f entrustFake) secrets() []string { return append(f.Tokens(), entrustPassword) }
func (f entrustFake) logins() int {
	logins, renews, _ := f.Counts()
	return logins + renews
}
func (f entrustFake) put(t *testing.T, name string, data []byte) { f.Put(name, data, time.Time{}) }
func (f entrustFake) stored(t *testing.T, name string) ([]byte, bool) {
	d, ok := f.SecretData(name)
	if !ok {
		return nil, false
	}
	v, err := base64.StdEncoding.DecodeString(d)
	if err != nil {
		t.Errorf("secret %s: secret_data is not base64", name)
	}
	return v, true
}

// forEachREST runs test for each of restBackends in a parallel subtest,
// on a fake whose tokens live for an hour.
func forEachREST(t *testing.T, test func(t *testing.T, f restFake)) {
	t.Helper()
	for _, b := range restBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.start(t, time.Hour))
		})
	}
}

// startRESTServer starts kes on f with the extra config.
func startRESTServer(t *testing.T, f restFake, config string) (*kesServer, *kes.Client) {
	t.Helper()
	return startAdminServer(t, serverOptions{
		Config:   config,
		KeyStore: f.keyStore(),
		Files:    map[string][]byte{"rest-ca.pem": f.caPEM()},
	})
}

// checkNoSecrets fails if the server's output holds a credential, a
// token or key material.
func checkNoSecrets(t *testing.T, srv *kesServer, f restFake, values ...[]byte) {
	t.Helper()
	out := srv.Stdout.String() + srv.Stderr.String()
	for _, s := range f.secrets() {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("the server's output contains a credential or token")
		}
	}
	for _, v := range values {
		if len(v) > 0 && bytes.Contains([]byte(out), v) {
			t.Errorf("the server's output contains a stored value")
		}
	}
}

// TestRESTStoreFixtures stores the original server's key files in each
// service's layout, checks that every recorded ciphertext decrypts and
// every HMAC is reproduced, that listing pages through the service, and
// that new keys get the original's layout.
func TestRESTStoreFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	forEachREST(t, func(t *testing.T, f restFake) {
		var values [][]byte
		for name, data := range files {
			f.put(t, name, data)
			values = append(values, data)
		}
		srv, c := startRESTServer(t, f, "")
		ctx := t.Context()
		checkStoredFixtures(t, c, fx)
		for name, data := range files {
			if got, ok := f.stored(t, name); !ok || !bytes.Equal(got, data) {
				t.Errorf("key %s changed after use", name)
			}
		}

		if err := c.CreateKey(ctx, "new-key"); err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		got, ok := f.stored(t, "new-key")
		if !ok || len(got) == 0 {
			t.Errorf("new-key is not stored")
		}
		values = append(values, got)
		if err := roundTrip(ctx, c, c, "new-key"); err != nil {
			t.Error(err)
		}
		if err := c.DeleteKey(ctx, "new-key"); err != nil {
			t.Fatalf("DeleteKey: %v", err)
		}
		if _, ok := f.stored(t, "new-key"); ok {
			t.Errorf("new-key is still stored after DeleteKey")
		}
		if !strings.Contains(srv.Stdout.String(), f.banner()) {
			t.Errorf("the banner does not name the key store:\n%s", srv.Stdout)
		}
		checkNoSecrets(t, srv, f, values...)
	})
}

// TestRESTStoreDownAtStart starts kes while the service is down: it
// starts, is not ready (504), and serves once the service is back.
func TestRESTStoreDownAtStart(t *testing.T) {
	forEachREST(t, func(t *testing.T, f restFake) {
		f.setDown(true)
		srv, c := startRESTServer(t, f, "")
		ctx := t.Context()
		checkStartedDown(t, c, "k")
		f.setDown(false)
		waitReady(t, c, 40*time.Second)
		eventually(t, 40*time.Second, func() error { return c.CreateKey(ctx, "k") })
		if err := roundTrip(ctx, c, c, "k"); err != nil {
			t.Fatal(err)
		}
		checkNoSecrets(t, srv, f)
	})
}

// TestRESTStoreOutage takes the service down while kes runs with
// cache.expiry.offline: cached keys keep working past cache.expiry.any,
// uncached ones fail with 504, /v1/ready says 504, and everything works
// again once the service is back.
func TestRESTStoreOutage(t *testing.T) {
	const cache = "cache:\n  expiry:\n    any: 2s\n    unused: 2s\n    offline: 1h\n"
	forEachREST(t, func(t *testing.T, f restFake) {
		srv, c := startRESTServer(t, f, cache)
		ctx := t.Context()
		for _, name := range []string{"cached", "uncached"} {
			if err := c.CreateKey(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		dek, err := c.GenerateKey(ctx, "cached", nil)
		if err != nil {
			t.Fatal(err)
		}
		f.setDown(true)
		// The server notices within its 10 s status interval.
		waitUnready(t, c, 30*time.Second)
		time.Sleep(3 * time.Second) // past cache.expiry.any
		for range 3 {
			pt, err := c.Decrypt(ctx, "cached", dek.Ciphertext, nil)
			if err != nil || !bytes.Equal(pt, dek.Plaintext) {
				t.Fatalf("Decrypt of a cached key while down = %v", err)
			}
			if _, err := c.GenerateKey(ctx, "cached", nil); err != nil {
				t.Fatalf("GenerateKey of a cached key while down = %v", err)
			}
		}
		if _, err := c.GenerateKey(ctx, "uncached", nil); status(err) != http.StatusGatewayTimeout {
			t.Errorf("GenerateKey of an uncached key while down = %v, want 504", err)
		}
		f.setDown(false)
		eventually(t, 40*time.Second, func() error { return roundTrip(ctx, c, c, "uncached") })
		waitReady(t, c, 30*time.Second)
		checkNoSecrets(t, srv, f)
	})
}

// TestRESTStoreTokenExpiry uses access tokens that live for 2 s: no
// request fails while the server replaces them.
func TestRESTStoreTokenExpiry(t *testing.T) {
	for _, b := range restBackends {
		if !b.tokens {
			continue // an API key does not expire
		}
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f := b.start(t, 2*time.Second)
			srv, c := startRESTServer(t, f, "")
			ctx := t.Context()
			before := f.logins()
			for i := range 40 {
				if err := c.CreateKey(ctx, fmt.Sprintf("key-%02d", i)); err != nil {
					t.Fatalf("CreateKey(key-%02d): %v", i, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n := f.logins() - before; n < 2 {
				t.Errorf("%d new logins in 4 s with 2 s tokens, want at least 2", n)
			}
			checkNoSecrets(t, srv, f)
		})
	}
}

// TestExampleRESTStores runs examples/config/<name>.yml of each REST
// store against its fake, with the credentials in the environment
// variables the example names.
func TestExampleRESTStores(t *testing.T) {
	examples := map[string]struct {
		endpoint string // the example's endpoint, replaced by the fake's
		caFile   string // the file the example's tls.ca names
		env      map[string]string
	}{
		"gemalto":  {"https://keysecure.example.net", "keysecure-ca.pem", map[string]string{"KES_KEYSECURE_REFRESH_TOKEN": gemaltoRefreshToken}},
		"fortanix": {"https://sdkms.example.net", "fortanix-ca.pem", map[string]string{"KES_FORTANIX_API_KEY": fortanixAPIKey, "KES_FORTANIX_GROUP_ID": fortanixGroupID}},
		"entrust": {"https://keycontrol.example.net", "keycontrol-ca.pem", map[string]string{
			"KES_KEYCONTROL_VAULT_ID": entrustVaultID, "KES_KEYCONTROL_BOX_ID": entrustBoxID,
			"KES_KEYCONTROL_USERNAME": entrustUser, "KES_KEYCONTROL_PASSWORD": entrustPassword,
		}},
	}
	for _, b := range restBackends {
		t.Run(b.name, func(t *testing.T) { // not parallel: t.Setenv
			ex := examples[b.name]
			f := b.start(t, time.Hour)
			for k, v := range ex.env {
				t.Setenv(k, v)
			}
			_, minio := exampleIdentities(t)
			config := exampleConfig(t, b.name+".yml", ex.endpoint, f.url())
			srv := startServer(t, serverOptions{RawConfig: config, Files: map[string][]byte{ex.caFile: f.caPEM()}})
			minioStartup(t, srv, minio)
			if _, ok := f.stored(t, "minio-default"); !ok {
				t.Fatal("no key minio-default in the store")
			}
			checkNoSecrets(t, srv, f)
		})
	}
}

// TestRESTStoreMigrate runs kes migrate from an fs store with the
// original server's key files into each REST store and back into another
// fs store: every key arrives in the service's layout and comes back byte
// for byte.
func TestRESTStoreMigrate(t *testing.T) {
	_, files := readFixtures(t)
	forEachREST(t, func(t *testing.T, f restFake) {
		checkMigrate(t, files, f.keyStore(), map[string][]byte{"rest-ca.pem": f.caPEM()},
			func(name string) ([]byte, bool) { return f.stored(t, name) },
			func(out string) {
				for _, s := range f.secrets() {
					if s != "" && strings.Contains(out, s) {
						t.Errorf("kes migrate printed a credential or token")
					}
				}
			})
	})
}
