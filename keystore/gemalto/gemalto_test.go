package gemalto_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/gemalto"
	"github.com/openkes/openkes/keystore/gemalto/gemaltotest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

const refreshToken = "refresh-token-0123456789abcdef"

// connect opens a store on fake, trusting its certificate through a
// tls.ca file. Log records go to logs, if not nil.
func connect(t *testing.T, fake *gemaltotest.Server, logs *keystoretest.LogBuffer) *gemalto.Store {
	t.Helper()
	conf := &gemalto.Config{Endpoint: fake.URL, Credentials: gemalto.Credentials{Token: keystore.NewSecret(refreshToken), Domain: "kes"}}
	conf.TLS.CA = fake.CAFile(t)
	st, err := conf.Connect(t.Context(), keystoretest.Logger(logs))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return st.(*gemalto.Store)
}

func newFake(t *testing.T, opts gemaltotest.Options) *gemaltotest.Server {
	t.Helper()
	opts.RefreshToken, opts.Domain = refreshToken, "kes"
	return gemaltotest.New(t, opts)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// Pages of 3 names make every listing of the suite span pages.
	keystoretest.RunWith(t, func(t *testing.T) keystore.Store {
		return connect(t, newFake(t, gemaltotest.Options{PageSize: 3}), nil)
	}, keystoretest.Options{DeleteMissingOK: true, TextOnly: true})
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		conf gemalto.Config
	}{
		{"not a URL", gemalto.Config{Endpoint: "keysecure:443"}},
		{"missing CA file", gemalto.Config{Endpoint: "https://keysecure", TLS: struct {
			CA string `yaml:"ca"`
		}{CA: filepath.Join(t.TempDir(), "missing.pem")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.conf.Credentials.Token = keystore.NewSecret(refreshToken)
			if st, err := tt.conf.Connect(t.Context(), nil); err == nil {
				st.Close()
				t.Fatal("Connect = nil error, want an error")
			} else if strings.Contains(err.Error(), refreshToken) {
				t.Errorf("Connect error %q contains the token", err)
			}
		})
	}
}

// TestUpstreamLayout reads a secret as the original server stores it and
// checks that new keys are stored the same way.
func TestUpstreamLayout(t *testing.T) {
	t.Parallel()
	fake := newFake(t, gemaltotest.Options{})
	value := `{"bytes":"dGVzdA==","algorithm":"AES256-GCM_SHA256","created_at":"2024-01-01T00:00:00Z"}`
	fake.Put("upstream-key", value)
	st := connect(t, fake, nil)
	t.Cleanup(func() { st.Close() })
	got, err := st.Get(t.Context(), "upstream-key")
	if err != nil || string(got) != value {
		t.Fatalf("Get = %q, %v; want %q", got, err, value)
	}
	if err := st.Create(t.Context(), "new-key", []byte(value)); err != nil {
		t.Fatal(err)
	}
	if m, ok := fake.Material("new-key"); !ok || m != value {
		t.Errorf("material of new-key = %q, %t; want the value as it is", m, ok)
	}
	if got, want := st.String(), "Gemalto KeySecure: "+fake.URL; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestTokenRenewal uses JWTs that live for 2 s: requests over 4 s never
// fail and never send an expired JWT, because the store logs in again
// after half the lifetime.
func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	fake := newFake(t, gemaltotest.Options{TokenDuration: 2 * time.Second})
	logs := &keystoretest.LogBuffer{}
	st := connect(t, fake, logs)
	t.Cleanup(func() { st.Close() })
	keystoretest.CreateKeys(t, st, 40, 100*time.Millisecond)
	if n := fake.Logins(); n < 3 {
		t.Errorf("%d logins in 4 s with 2 s tokens, want at least 3", n)
	}
	if n := fake.Expired(); n != 0 {
		t.Errorf("%d requests with an expired JWT, want 0", n)
	}
	checkNoSecrets(t, fake, logs.String())
}

// checkNoSecrets fails if texts hold the refresh token or a JWT.
func checkNoSecrets(t *testing.T, fake *gemaltotest.Server, texts ...string) {
	t.Helper()
	keystoretest.CheckNoSecrets(t, texts, append(fake.JWTs(), refreshToken)...)
}

// TestOutage starts the store while the service is down, then throttles
// it: operations fail with an UnreachableError and work again afterwards
// without a new store.
func TestOutage(t *testing.T) {
	t.Parallel()
	fake := newFake(t, gemaltotest.Options{})
	texts := keystoretest.CheckOutage(t, fake, func(logs *keystoretest.LogBuffer) keystore.Store { return connect(t, fake, logs) })
	checkNoSecrets(t, fake, texts...)
	for _, e := range texts[:len(texts)-1] { // the errors, not the logs
		if strings.Contains(e, `"v"`) {
			t.Errorf("an error contains the value: %q", e)
		}
	}
}

// TestBadCredentials: a wrong refresh token is not an outage.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	fake := gemaltotest.New(t, gemaltotest.Options{RefreshToken: "another-token"})
	st := connect(t, fake, nil)
	t.Cleanup(func() { st.Close() })
	_, err := st.Get(t.Context(), "k")
	var re *gemalto.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || keystore.IsUnreachable(err) {
		t.Fatalf("Get with a wrong token = %v, want a 401 ResponseError", err)
	}
	checkNoSecrets(t, fake, err.Error())
}

// TestRealService runs the conformance suite against a real KeySecure /
// CipherTrust Manager when KES_TEST_GEMALTO_ENDPOINT and
// KES_TEST_GEMALTO_TOKEN are set (KES_TEST_GEMALTO_DOMAIN and
// KES_TEST_GEMALTO_CA optional). It creates and deletes secrets named
// kes-test-*.
func TestRealService(t *testing.T) {
	env := keystoretest.RealEnv(t, "KES_TEST_GEMALTO_ENDPOINT", "KES_TEST_GEMALTO_TOKEN")
	endpoint, token := env[0], env[1]
	conf := &gemalto.Config{Endpoint: endpoint, Credentials: gemalto.Credentials{Token: keystore.NewSecret(token), Domain: os.Getenv("KES_TEST_GEMALTO_DOMAIN")}}
	conf.TLS.CA = os.Getenv("KES_TEST_GEMALTO_CA")
	keystoretest.CheckLive(t, conf)
}
