package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/azure/azuretest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// fakeConfig returns a config for the fake with client-secret
// credentials, reaching it through its transport.
func fakeConfig(f *azuretest.Server) *Config {
	o := f.Options()
	return &Config{
		Endpoint: f.URL(),
		Credentials: Credentials{
			TenantID: o.TenantID, ClientID: o.ClientID, ClientSecret: keystore.NewSecret(o.ClientSecret),
		},
		opts: options{transport: f.Transport(), authorityHost: f.AuthorityHost(), timeout: 5 * time.Second, backoffMax: 500 * time.Millisecond},
	}
}

// open connects a store for conf; its log goes to logs if not nil.
func open(t *testing.T, conf *Config, logs *keystoretest.LogBuffer) *Store {
	t.Helper()
	st, err := conf.Connect(t.Context(), keystoretest.Logger(logs))
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	return st.(*Store)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	keystoretest.RunWith(t, func(t *testing.T) keystore.Store {
		return open(t, fakeConfig(azuretest.New(t, azuretest.Options{PageSize: 2})), nil)
	}, keystoretest.Options{TextOnly: true})
}

// TestFixtures stores the original server's key files as Key Vault
// secrets named like the keys (the original's layout) and reads them
// back unchanged.
func TestFixtures(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{})
	want := keystoretest.Fixtures(t)
	for name, data := range want {
		f.AddVersion(name, string(data), time.Now().Add(-time.Hour))
	}
	st := open(t, fakeConfig(f), nil)
	for name, data := range want {
		got, err := st.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get(%q) = %q, %v; want the fixture", name, got, err)
		}
	}
	names, _, err := st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		t.Errorf("List() = %q, want the %d fixture names", names, len(want))
	}
}

// TestOldestVersion checks that Get reads the oldest version, across
// pages of versions, and that a Create racing on another server (a
// version set behind the store's back) loses.
func TestOldestVersion(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{PageSize: 2})
	base := time.Now().Add(-time.Hour)
	for i, v := range []string{"second", "third", "fourth", "first", "fifth"} {
		created := base.Add(time.Duration(i) * time.Minute)
		if v == "first" {
			created = base.Add(-time.Minute)
		}
		f.AddVersion("my-key", v, created)
	}
	st := open(t, fakeConfig(f), nil)
	got, err := st.Get(t.Context(), "my-key")
	if err != nil || string(got) != "first" {
		t.Fatalf("Get() = %q, %v; want %q", got, err, "first")
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, secret string
	}{
		{"my-key", "my-key"},
		{"minio-default-key", "minio-default-key"},
		{"0", "0"},
		{"MY-KEY", "kes---m-y-1-k-e-y"},
		{"my_app", "kes--my-0app"},
		{"_-", "kes---0-1"},
		{"kes--x", "kes--kes-1-1x"},
		{"Kes", "kes---kes"},
	}
	for _, tt := range tests {
		got, err := secretName(tt.name)
		if err != nil || got != tt.secret {
			t.Errorf("secretName(%q) = %q, %v; want %q", tt.name, got, err, tt.secret)
		}
		back, ok := keyName(got)
		if !ok || back != tt.name {
			t.Errorf("keyName(%q) = %q, %t; want %q", got, back, ok, tt.name)
		}
		if upper, ok := keyName(strings.ToUpper(got)); strings.HasPrefix(got, encodedPrefix) && (!ok || upper != tt.name) {
			t.Errorf("keyName(%q) = %q, %t; want %q (Key Vault names are case-insensitive)", strings.ToUpper(got), upper, ok, tt.name)
		}
	}
	for _, bad := range []string{"", "a/b", "a.b", "ä", strings.Repeat("_", 80)} {
		if got, err := secretName(bad); err == nil {
			t.Errorf("secretName(%q) = %q, nil; want an error", bad, got)
		}
	}
	for _, bad := range []string{"kes--", "kes---", "kes---2", "kes--a-", "kes--ä"} {
		if got, ok := keyName(bad); ok {
			t.Errorf("keyName(%q) = %q, true; want false", bad, got)
		}
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{"my-key", "MY-KEY", "my_app", "kes--x", "kes---m-y", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		sn, err := secretName(name)
		if err != nil {
			return
		}
		if len(sn) > maxSecretName || strings.ToLower(sn) != sn {
			t.Fatalf("secretName(%q) = %q: not a lower-case Key Vault name", name, sn)
		}
		back, ok := keyName(sn)
		if !ok || back != name {
			t.Fatalf("keyName(secretName(%q)) = %q, %t", name, back, ok)
		}
		// keyName must not panic on anything.
		keyName(name)
	})
}

// TestLegacyUpperCaseName checks a key with upper-case letters that the
// original server stored under its own name.
func TestLegacyUpperCaseName(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{})
	f.AddVersion("MinIO-Key", "legacy-value", time.Now().Add(-time.Hour))
	st := open(t, fakeConfig(f), nil)
	ctx := t.Context()

	got, err := st.Get(ctx, "MinIO-Key")
	if err != nil || string(got) != "legacy-value" {
		t.Fatalf("Get(MinIO-Key) = %q, %v; want the legacy value", got, err)
	}
	// Names that differ only in case are other keys.
	if _, err := st.Get(ctx, "MINIO-KEY"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get(MINIO-KEY) = %v, want ErrNotFound", err)
	}
	if err := st.Create(ctx, "MinIO-Key", []byte("v")); !errors.Is(err, keystore.ErrExists) {
		t.Errorf("Create(MinIO-Key) = %v, want ErrExists", err)
	}
	if err := st.Create(ctx, "minio-key", []byte("v")); err == nil || errors.Is(err, keystore.ErrExists) {
		t.Errorf("Create(minio-key) = %v, want an error about the case", err)
	}
	names, _, err := st.List(ctx, "", 0)
	if err != nil || !cmp.Equal(names, []string{"MinIO-Key"}) {
		t.Errorf("List() = %q, %v; want [MinIO-Key]", names, err)
	}
	if err := st.Delete(ctx, "MinIO-Key"); err != nil {
		t.Fatalf("Delete(MinIO-Key) = %v", err)
	}
	if got := f.Names(); len(got) != 0 {
		t.Errorf("secrets after Delete = %q, want none", got)
	}
}

// createDelete creates the key name in st and deletes it again.
func createDelete(t *testing.T, st keystore.Store, name string) {
	t.Helper()
	if err := st.Create(t.Context(), name, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), name); err != nil {
		t.Fatalf("Delete() = %v", err)
	}
}

// TestSoftDelete checks that a deleted key is purged and that its name
// can be reused, also when the purge had to wait.
func TestSoftDelete(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{DeletingRequests: 3})
	st := open(t, fakeConfig(f), nil)
	ctx := t.Context()
	createDelete(t, st, "my-key")
	if f.IsDeleted("my-key") {
		t.Errorf("the deleted secret was not purged")
	}
	if err := st.Create(ctx, "my-key", []byte("two")); err != nil {
		t.Fatalf("Create() after Delete = %v", err)
	}
	if n := f.Requests("DELETE /deletedsecrets/{name}"); n < 2 {
		t.Errorf("%d purge requests, want retries while the secret is being deleted", n)
	}
}

// TestSoftDeletedByOthers checks Create of a name that someone else
// deleted without purging, with and without purge protection.
func TestSoftDeletedByOthers(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		t.Run(fmt.Sprint("purge-protection=", protected), func(t *testing.T) {
			t.Parallel()
			f := azuretest.New(t, azuretest.Options{PurgeProtection: protected})
			logs := new(keystoretest.LogBuffer)
			st := open(t, fakeConfig(f), logs)
			ctx := t.Context()
			// Delete with a failing purge leaves the secret soft-deleted.
			createDelete(t, st, "my-key")
			if got := f.IsDeleted("my-key"); got != protected {
				t.Fatalf("IsDeleted() = %t, want %t", got, protected)
			}
			err := st.Create(ctx, "my-key", []byte("two"))
			if !protected {
				if err != nil {
					t.Fatalf("Create() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "does not allow purging") || !strings.Contains(err.Error(), "ForbiddenByPolicy") {
				t.Fatalf("Create() of a protected deleted secret = %v, want an error about the purge", err)
			}
			if !strings.Contains(logs.String(), "could not be purged") {
				t.Errorf("the failed purge of Delete was not logged:\n%s", logs)
			}
		})
	}
}

// TestUnreachable checks that an outage and throttling are
// UnreachableErrors and that the store recovers by itself, and that
// Connect works while the service is down.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{})
	f.SetDown(true)
	logs := new(keystoretest.LogBuffer)
	st := open(t, fakeConfig(f), logs)
	ctx := t.Context()

	check := func(what string) {
		t.Helper()
		if _, err := st.Status(ctx); !keystore.IsUnreachable(err) {
			t.Errorf("%s: Status() = %v, want an UnreachableError", what, err)
		}
		if _, err := st.Get(ctx, "my-key"); !keystore.IsUnreachable(err) {
			t.Errorf("%s: Get() = %v, want an UnreachableError", what, err)
		}
		if err := st.Create(ctx, "my-key", []byte("v")); !keystore.IsUnreachable(err) {
			t.Errorf("%s: Create() = %v, want an UnreachableError", what, err)
		}
	}
	check("down at start")

	f.SetDown(false)
	keystoretest.Eventually(t, 20*time.Second, func() error { _, err := st.Status(ctx); return err })
	if err := st.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatalf("Create() after recovery = %v", err)
	}

	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		f.SetStatus(status)
		if _, err := st.Get(ctx, "my-key"); !keystore.IsUnreachable(err) {
			t.Errorf("Get() while answering %d = %v, want an UnreachableError", status, err)
		}
		if _, err := st.Status(ctx); !keystore.IsUnreachable(err) {
			t.Errorf("Status() while answering %d = %v, want an UnreachableError", status, err)
		}
	}
	f.SetStatus(0)
	f.SetDown(true)
	check("down while running")
	f.SetDown(false)
	keystoretest.Eventually(t, 20*time.Second, func() error { _, err := st.Get(ctx, "my-key"); return err })
	checkNoSecrets(t, f, logs.String())
}

// checkNoSecrets fails if text holds the client secret or a token.
func checkNoSecrets(t *testing.T, f *azuretest.Server, text string) {
	t.Helper()
	keystoretest.CheckNoSecrets(t, []string{text}, append(f.Tokens(), f.Options().ClientSecret)...)
}

// TestTokenExpiry lets the fake issue tokens that live for 1 s and
// reject expired ones: requests over several lifetimes never fail.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{TokenTTL: time.Second})
	logs := new(keystoretest.LogBuffer)
	st := open(t, fakeConfig(f), logs)
	ctx := t.Context()
	var errs []string
	if err := st.Create(ctx, "my-key", []byte("v")); err != nil {
		errs = append(errs, err.Error())
	}
	for range 16 {
		if _, err := st.Get(ctx, "my-key"); err != nil {
			errs = append(errs, err.Error())
		}
		if _, _, err := st.List(ctx, "", 0); err != nil {
			errs = append(errs, err.Error())
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, e := range errs {
		t.Errorf("request failed: %s", e)
	}
	if n := len(f.Tokens()); n < 3 {
		t.Errorf("%d tokens issued in 4 s of 1 s tokens, want them renewed", n)
	}
	checkNoSecrets(t, f, logs.String()+strings.Join(errs, "\n"))
}

// TestBadCredentials checks that a wrong client secret is a plain error
// (not an outage), is retried with backoff, and never shows the secret.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	f := azuretest.New(t, azuretest.Options{})
	conf := fakeConfig(f)
	conf.Credentials.ClientSecret = keystore.NewSecret("wrong-secret-value")
	logs := new(keystoretest.LogBuffer)
	st := open(t, conf, logs)
	var errText []string
	for range 5 {
		_, err := st.Status(t.Context())
		if err == nil || keystore.IsUnreachable(err) {
			t.Fatalf("Status() with a wrong secret = %v, want a login error", err)
		}
		errText = append(errText, err.Error())
	}
	if !strings.Contains(errText[0], "invalid_client") {
		t.Errorf("Status() = %s, want the provider's error code", errText[0])
	}
	if n := f.Requests("token"); n >= 5 {
		t.Errorf("%d token requests for 5 calls, want backoff", n)
	}
	all := logs.String() + strings.Join(errText, "\n")
	if strings.Contains(all, "wrong-secret-value") {
		t.Errorf("the client secret appears in the logs or errors:\n%s", all)
	}
	if fmt.Sprintf("%v %+v %#v", conf, conf, conf) != "" && strings.Contains(fmt.Sprintf("%v %+v %#v", *conf, *conf, *conf), "wrong-secret-value") {
		t.Errorf("printing the config shows the client secret")
	}
}

// TestTimeout checks that a call to a vault that never answers ends
// within the store's timeout, as an UnreachableError.
func TestTimeout(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv := newHangingServer(t, hang)
	f := azuretest.New(t, azuretest.Options{})
	conf := fakeConfig(f)
	conf.opts.timeout = 500 * time.Millisecond
	conf.opts.transport = srv
	st := open(t, conf, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := st.Get(ctx, "my-key")
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Get() from a hanging vault = %v, want an UnreachableError", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Get() did not time out by itself")
	}
}

// hangingTransport blocks every request until its request context ends.
type hangingTransport struct{ hang chan struct{} }

func (h hangingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	select {
	case <-r.Context().Done():
		return nil, r.Context().Err()
	case <-h.hang:
		return nil, errors.New("closed")
	}
}

func newHangingServer(t *testing.T, hang chan struct{}) http.RoundTripper {
	t.Helper()
	return hangingTransport{hang: hang}
}

// TestNoValuesInErrors checks that errors of every operation, for the
// answers and failures of the fake, never contain the stored value.
func TestNoValuesInErrors(t *testing.T) {
	t.Parallel()
	const value = "S2V5IGJ5dGVzIHRoYXQgbXVzdCBuZXZlciBiZSBsb2dnZWQ="
	f := azuretest.New(t, azuretest.Options{PurgeProtection: true})
	logs := new(keystoretest.LogBuffer)
	st := open(t, fakeConfig(f), logs)
	ctx := t.Context()
	var texts []string
	collect := func(err error) {
		if err != nil {
			texts = append(texts, err.Error())
		}
	}
	collect(st.Create(ctx, "my-key", []byte(value)))
	collect(st.Create(ctx, "my-key", []byte(value)))
	collect(st.Delete(ctx, "my-key"))
	collect(st.Create(ctx, "my-key", []byte(value))) // purge forbidden
	for _, status := range []int{0, http.StatusTooManyRequests, http.StatusInternalServerError} {
		f.SetStatus(status)
		collect(st.Create(ctx, "other", []byte(value)))
		_, err := st.Get(ctx, "other")
		collect(err)
	}
	f.SetStatus(0)
	f.SetDown(true)
	collect(st.Create(ctx, "down", []byte(value)))
	if len(texts) < 5 {
		t.Fatalf("only %d errors: %q", len(texts), texts)
	}
	all := strings.Join(texts, "\n") + logs.String()
	if strings.Contains(all, value) {
		t.Errorf("a stored value appears in an error or log line:\n%s", all)
	}
	checkNoSecrets(t, f, all)
}

// TestCreateRaceAcrossServers races Creates of one name on two stores
// (two servers) on one vault: at most one reports success, every other
// gets ErrExists, and the key readers see is the winner's.
func TestCreateRaceAcrossServers(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		f := azuretest.New(t, azuretest.Options{})
		stores := []*Store{open(t, fakeConfig(f), nil), open(t, fakeConfig(f), nil)}
		winner := keystoretest.RaceCreate(t, fmt.Sprint("round ", round), 8, func(i int) error {
			return stores[i%2].Create(t.Context(), "my-key", []byte(fmt.Sprint("value-", i)))
		})
		got, err := stores[0].Get(t.Context(), "my-key")
		if err != nil {
			t.Fatalf("round %d: Get() = %v", round, err)
		}
		if winner >= 0 && string(got) != fmt.Sprint("value-", winner) {
			t.Fatalf("round %d: Get() = %q, want the winner's value-%d", round, got, winner)
		}
	}
}

// TestConnect builds the store for every way of logging in, without
// contacting Azure.
func TestConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		conf    Config
		wantErr string
	}{
		{name: "client-secret", conf: Config{Endpoint: "https://kes.vault.azure.net", Credentials: Credentials{TenantID: "t", ClientID: "c", ClientSecret: keystore.NewSecret("s")}}},
		{name: "managed-identity", conf: Config{Endpoint: "https://kes.vault.azure.net", ManagedIdentity: ManagedIdentity{ClientID: "mi"}}},
		{name: "default-chain", conf: Config{Endpoint: "https://kes.vault.azure.net"}},
		{name: "private-authority", conf: Config{Endpoint: "https://kes.vault.azure.net", opts: options{authorityHost: "https://adfs.example.net/"}}},
		{name: "plain-http-authority", conf: Config{Endpoint: "https://kes.vault.azure.net", opts: options{authorityHost: "http://adfs.example.net/"}}, wantErr: "not an https URL"},
		{name: "invalid", conf: Config{}, wantErr: "endpoint: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := tt.conf.Connect(t.Context(), nil)
			if keystoretest.CheckErr(t, "Connect()", err, tt.wantErr) {
				return
			}
			if got, want := fmt.Sprint(st), "Azure KeyVault: https://kes.vault.azure.net"; got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if err := st.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
		})
	}
}
