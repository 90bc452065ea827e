package entrust_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/entrust"
	"github.com/openkes/openkes/keystore/entrust/entrusttest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

const (
	vaultID  = "8a1c2f0e-vault"
	boxID    = "3b9d7e21-box"
	username = "kes"
	password = "entrust-password-4f7d9e"
)

func newFake(t *testing.T, opts entrusttest.Options) *entrusttest.Server {
	t.Helper()
	opts.VaultID, opts.BoxID, opts.Username, opts.Password = vaultID, boxID, username, password
	return entrusttest.New(t, opts)
}

func newConfig(url string) *entrust.Config {
	conf := &entrust.Config{Endpoint: url, VaultID: vaultID, BoxID: boxID}
	conf.Credentials.Username = username
	conf.Credentials.Password = keystore.NewSecret(password)
	return conf
}

func connect(t *testing.T, fake *entrusttest.Server, logs *keystoretest.LogBuffer) *entrust.Store {
	t.Helper()
	conf := newConfig(fake.URL)
	conf.TLS.CA = fake.CAFile(t)
	st, err := conf.Connect(t.Context(), keystoretest.Logger(logs))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return st.(*entrust.Store)
}

// checkNoSecrets fails if texts hold the password or a token.
func checkNoSecrets(t *testing.T, fake *entrusttest.Server, texts ...string) {
	t.Helper()
	keystoretest.CheckNoSecrets(t, texts, append(fake.Tokens(), password)...)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	// Pages of 3 names make every listing of the suite span pages.
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return connect(t, newFake(t, entrusttest.Options{PageSize: 3}), nil)
	})
}

// TestUpstreamLayout reads a secret as the original server stores it,
// checks that new keys are stored the same way, and that listing skips
// expired secrets and returns no empty names (the original returned one
// empty name per secret first).
func TestUpstreamLayout(t *testing.T) {
	t.Parallel()
	fake := newFake(t, entrusttest.Options{PageSize: 2})
	value := []byte(`{"bytes":"dGVzdA==","algorithm":"AES256-GCM_SHA256"}`)
	fake.Put("upstream-key", value, time.Time{})
	fake.Put("expired-key", value, time.Now().Add(-time.Hour))
	st := connect(t, fake, nil)
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	if got, err := st.Get(ctx, "upstream-key"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get = %q, %v; want %q", got, err, value)
	}
	if err := st.Create(ctx, "new-key", value); err != nil {
		t.Fatal(err)
	}
	if d, ok := fake.SecretData("new-key"); !ok || d != base64.StdEncoding.EncodeToString(value) {
		t.Errorf("secret_data of new-key = %q, %t; want the base64 of the value", d, ok)
	}
	names, next, err := st.List(ctx, "", 0)
	if want := []string{"new-key", "upstream-key"}; err != nil || next != "" || !slices.Equal(names, want) {
		t.Errorf("List = %q, %q, %v; want %q", names, next, err, want)
	}
	if got, want := st.String(), "Entrust KeyControl: "+fake.URL; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestTokenRenewal uses tokens that live for 2 s: requests over 4 s
// never fail and never send an expired token, with renewal and with the
// fallback to a new login when renewal is refused.
func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	for _, noRenew := range []bool{false, true} {
		t.Run(fmt.Sprint("noRenew=", noRenew), func(t *testing.T) {
			t.Parallel()
			fake := newFake(t, entrusttest.Options{TokenLifetime: 2 * time.Second, NoRenew: noRenew})
			logs := &keystoretest.LogBuffer{}
			st := connect(t, fake, logs)
			t.Cleanup(func() { st.Close() })
			keystoretest.CreateKeys(t, st, 40, 100*time.Millisecond)
			logins, renews, expired := fake.Counts()
			if noRenew && logins < 3 {
				t.Errorf("%d logins in 4 s with 2 s tokens and no renewal, want at least 3", logins)
			}
			if !noRenew && (renews < 2 || logins != 1) {
				t.Errorf("%d logins and %d renewals in 4 s with 2 s tokens, want 1 login and at least 2 renewals", logins, renews)
			}
			if expired != 0 {
				t.Errorf("%d requests with an expired token, want 0", expired)
			}
			checkNoSecrets(t, fake, logs.String())
		})
	}
}

// TestNoExpiry: a login answer without expires_at is good for 5 min.
func TestNoExpiry(t *testing.T) {
	t.Parallel()
	fake := newFake(t, entrusttest.Options{NoExpiry: true})
	st := connect(t, fake, nil)
	t.Cleanup(func() { st.Close() })
	if _, err := st.Status(t.Context()); err != nil {
		t.Fatalf("Status = %v", err)
	}
	if logins, renews, _ := fake.Counts(); logins != 1 || renews != 0 {
		t.Errorf("logins, renewals = %d, %d; want 1, 0", logins, renews)
	}
}

// TestOutage starts the store while KeyControl is down, then throttles
// it: operations fail with an UnreachableError and work again afterwards.
func TestOutage(t *testing.T) {
	t.Parallel()
	fake := newFake(t, entrusttest.Options{})
	texts := keystoretest.CheckOutage(t, fake, func(logs *keystoretest.LogBuffer) keystore.Store { return connect(t, fake, logs) })
	checkNoSecrets(t, fake, texts...)
}

// TestBadCredentials: a wrong password is not an outage.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	fake := entrusttest.New(t, entrusttest.Options{VaultID: vaultID, BoxID: boxID, Username: username, Password: "other"})
	st := connect(t, fake, nil)
	t.Cleanup(func() { st.Close() })
	_, err := st.Status(t.Context())
	var re *entrust.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || keystore.IsUnreachable(err) {
		t.Fatalf("Status with a wrong password = %v, want a 401 ResponseError", err)
	}
	checkNoSecrets(t, fake, err.Error())
}

// TestRealService runs against a real KeyControl when
// KES_TEST_ENTRUST_ENDPOINT, KES_TEST_ENTRUST_VAULT_ID,
// KES_TEST_ENTRUST_BOX_ID, KES_TEST_ENTRUST_USERNAME and
// KES_TEST_ENTRUST_PASSWORD are set (KES_TEST_ENTRUST_CA optional). It
// creates and deletes a secret named kes-test-<n>.
func TestRealService(t *testing.T) {
	conf := &entrust.Config{
		Endpoint: os.Getenv("KES_TEST_ENTRUST_ENDPOINT"),
		VaultID:  os.Getenv("KES_TEST_ENTRUST_VAULT_ID"),
		BoxID:    os.Getenv("KES_TEST_ENTRUST_BOX_ID"),
	}
	conf.Credentials.Username = os.Getenv("KES_TEST_ENTRUST_USERNAME")
	conf.Credentials.Password = keystore.NewSecret(os.Getenv("KES_TEST_ENTRUST_PASSWORD"))
	conf.TLS.CA = os.Getenv("KES_TEST_ENTRUST_CA")
	if conf.Validate() != nil {
		t.Skip("KES_TEST_ENTRUST_{ENDPOINT,VAULT_ID,BOX_ID,USERNAME,PASSWORD} are not all set")
	}
	keystoretest.CheckLive(t, conf)
}
