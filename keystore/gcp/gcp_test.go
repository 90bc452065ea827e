package gcp

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/gcp/gcptest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// fixture is a fake Secret Manager with TLS that requires access tokens
// from a fake token endpoint, and a service account known to it.
type fixture struct {
	sm *gcptest.Server
	ts *gcptest.TokenServer
	sa *gcptest.ServiceAccount
}

// newFixture starts the fakes; tokens live for lifetime.
func newFixture(t *testing.T, ts *gcptest.TokenServer, sa *gcptest.ServiceAccount) *fixture {
	t.Helper()
	return &fixture{sm: gcptest.New(t, gcptest.Options{TLS: true, Tokens: ts}), ts: ts, sa: sa}
}

// newTokens starts a token endpoint with one service account.
func newTokens(t *testing.T, lifetime time.Duration) (*gcptest.TokenServer, *gcptest.ServiceAccount) {
	t.Helper()
	ts := gcptest.NewTokenServer(t, lifetime)
	return ts, ts.NewServiceAccount(t, "kes")
}

// config returns the config of a store in the fixture's project.
func (f *fixture) config() *Config {
	return &Config{
		ProjectID:       f.sm.ProjectID(),
		Endpoint:        f.sm.Addr(),
		CredentialsJSON: keystore.NewSecret(string(f.sa.KeyFile())),
		Timeout:         2 * time.Second,
	}
}

// trust returns the client option that trusts the fake's certificate.
func (f *fixture) trust(t *testing.T) option.ClientOption {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.sm.CACertPEM()) {
		t.Fatal("cannot parse the fake's certificate")
	}
	return option.WithGRPCDialOption(grpc.WithTransportCredentials(grpccreds.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
}

// open returns a store of conf (default f.config()), closed when the
// test ends if closeAtEnd.
func (f *fixture) open(t *testing.T, conf *Config, log *slog.Logger) *Store {
	t.Helper()
	if conf == nil {
		conf = f.config()
	}
	s, err := New(t.Context(), conf, log, f.trust(t))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return s
}

// openStore starts a fixture whose tokens live for lifetime and opens a
// store in it that is closed when t ends.
func openStore(t *testing.T, lifetime time.Duration) (*fixture, *Store) {
	t.Helper()
	ts, sa := newTokens(t, lifetime)
	f := newFixture(t, ts, sa)
	s := f.open(t, nil, nil)
	mustClose(t, s)
	return f, s
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	ts, sa := newTokens(t, time.Hour)
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return newFixture(t, ts, sa).open(t, nil, nil)
	})
}

// TestListPaging stores more secrets than several pages of the fake hold
// (3 per page) and checks that all are listed, with the project's other
// secrets too.
func TestListPaging(t *testing.T) {
	t.Parallel()
	f, s := openStore(t, time.Hour)
	var want []string
	for i := range 11 {
		name := fmt.Sprintf("key-%02d", i)
		want = append(want, name)
		if err := s.Create(t.Context(), name, []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	f.sm.Put("not-kes", []byte("other"))
	names, next, err := s.List(t.Context(), "key-", 0)
	if err != nil || next != "" || !equal(names, want) {
		t.Fatalf("List(key-) = %q, %q, %v; want %q", names, next, err, want)
	}
	if got, min := f.sm.Calls("ListSecrets"), 4; got < min {
		t.Errorf("ListSecrets calls = %d, want >= %d (paging)", got, min)
	}
	names, _, err = s.List(t.Context(), "", 0)
	if err != nil || len(names) != 12 || names[11] != "not-kes" {
		t.Errorf("List() = %q, %v; want 12 names ending with not-kes", names, err)
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestLayout checks the secrets as the original server writes and reads
// them: secret ID = key name, value = version 1.
func TestLayout(t *testing.T) {
	t.Parallel()
	f, s := openStore(t, time.Hour)
	ctx := t.Context()

	value := []byte("CiA7/7m8Sx8dEq0y9m0xvdGxRxu2R2sGOmzQ6U3A3qzwkRIgAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err := s.Create(ctx, "my-key", value); err != nil {
		t.Fatal(err)
	}
	versions, ok := f.sm.Versions("my-key")
	if !ok || len(versions) != 1 || !bytes.Equal(versions[0], value) {
		t.Fatalf("secret my-key = %q, %t; want one version holding the value", versions, ok)
	}

	// Written by another client; later versions are ignored.
	f.sm.Put("theirs", []byte("version-1"))
	f.sm.Put("theirs", []byte("version-2"))
	got, err := s.Get(ctx, "theirs")
	if err != nil || string(got) != "version-1" {
		t.Errorf("Get(theirs) = %q, %v; want version-1", got, err)
	}

	// A secret without versions is a missing key that cannot be created.
	f.sm.Put("empty", nil)
	f.sm.DestroyVersion("empty", 1)
	if _, err := s.Get(ctx, "empty"); err == nil || errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get of a destroyed version 1 = %v, want an error other than not found", err)
	}

	if err := s.Delete(ctx, "my-key"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.sm.Versions("my-key"); ok {
		t.Errorf("secret my-key exists after Delete")
	}
	if got := s.String(); got != "GCP SecretManager: Project=openkes-test" {
		t.Errorf("String() = %q", got)
	}
}

// TestCreateCleanup checks that a Create whose AddSecretVersion fails
// leaves no empty secret behind, so it can be retried.
func TestCreateCleanup(t *testing.T) {
	t.Parallel()
	f, s := openStore(t, time.Hour)
	ctx := t.Context()

	f.sm.Fail("AddSecretVersion", codes.PermissionDenied)
	if err := s.Create(ctx, "my-key", []byte("v")); err == nil {
		t.Fatal("Create with a failing AddSecretVersion = nil, want an error")
	}
	if ids := f.sm.IDs(); len(ids) != 0 {
		t.Errorf("secrets after a failed Create = %q, want none", ids)
	}
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Errorf("Create after a failed Create = %v, want nil", err)
	}
}

func TestBadNames(t *testing.T) {
	t.Parallel()
	_, s := openStore(t, time.Hour)
	for _, name := range []string{"", "a/b", "../x", "a.b", strings.Repeat("a", 256), "ü"} {
		if err := s.Create(t.Context(), name, []byte("v")); err == nil || errors.Is(err, keystore.ErrExists) {
			t.Errorf("Create(%q) = %v, want an invalid name error", name, err)
		}
		if _, err := s.Get(t.Context(), name); err == nil || errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want an invalid name error", name, err)
		}
	}
}

// TestOutage stops Secret Manager while the store is in use, and starts
// the store while it is down.
func TestOutage(t *testing.T) {
	t.Parallel()
	ts, sa := newTokens(t, time.Hour)
	f := newFixture(t, ts, sa)
	ctx := t.Context()

	f.sm.Stop()
	s := f.open(t, nil, nil) // must not need the service
	mustClose(t, s)
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
		t.Errorf("Status() while down = %v, want an UnreachableError", err)
	}
	f.sm.Start(t)
	keystoretest.Eventually(t, 15*time.Second, func() error { return s.Create(ctx, "my-key", []byte("v1")) })

	f.sm.Stop()
	checks := map[string]func() error{
		"Get":    func() error { _, err := s.Get(ctx, "my-key"); return err },
		"Create": func() error { return s.Create(ctx, "other", []byte("v")) },
		"Delete": func() error { return s.Delete(ctx, "my-key") },
		"List":   func() error { _, _, err := s.List(ctx, "", 0); return err },
		"Status": func() error { _, err := s.Status(ctx); return err },
	}
	for name, fn := range checks {
		if err := fn(); !keystore.IsUnreachable(err) {
			t.Errorf("%s while down = %v, want an UnreachableError", name, err)
		}
	}
	f.sm.Start(t)
	keystoretest.Eventually(t, 15*time.Second, func() error { _, err := s.Status(ctx); return err })
	if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != "v1" {
		t.Errorf("Get after the outage = %q, %v; want v1", got, err)
	}
}

// TestErrorCodes checks the mapping of the service's status codes.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	ts, sa := newTokens(t, time.Hour)
	tests := []struct {
		code        codes.Code
		unreachable bool
	}{
		{codes.ResourceExhausted, true},
		{codes.Unavailable, true},
		{codes.DeadlineExceeded, true},
		{codes.PermissionDenied, false},
		{codes.Internal, false},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, ts, sa)
			s := f.open(t, nil, nil)
			mustClose(t, s)
			// CreateSecret and DeleteSecret are not retried by the SDK.
			f.sm.Fail("", tt.code)
			err := s.Create(t.Context(), "my-key", []byte("v"))
			if err == nil || keystore.IsUnreachable(err) != tt.unreachable || errors.Is(err, keystore.ErrExists) {
				t.Errorf("Create failing with %v = %v, want unreachable %t", tt.code, err, tt.unreachable)
			}
			f.sm.Fail("", tt.code)
			err = s.Delete(t.Context(), "my-key")
			if err == nil || keystore.IsUnreachable(err) != tt.unreachable || errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("Delete failing with %v = %v, want unreachable %t", tt.code, err, tt.unreachable)
			}
			if err := s.Create(t.Context(), "my-key", []byte("v")); err != nil {
				t.Errorf("Create after the failure = %v", err)
			}
		})
	}
}

// TestTokenRefresh uses access tokens that live for 2 s, which the fake
// rejects once expired: the store keeps working without one failed call
// while the tokens are renewed.
func TestTokenRefresh(t *testing.T) {
	t.Parallel()
	f, s := openStore(t, 2*time.Second)
	ts := f.ts
	ctx := t.Context()
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ts.Issued() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens issued in 30 s with 2 s tokens", ts.Issued())
		}
		if _, err := s.Get(ctx, "my-key"); err != nil {
			t.Fatalf("Get with %d tokens issued = %v, want nil", ts.Issued(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.sm.Rejected(); n != 0 {
		t.Errorf("the fake rejected %d calls for their token, want 0", n)
	}
}

// TestTokenEndpointDown checks that a token endpoint that is down makes
// the store unreachable, and that it recovers with backoff.
func TestTokenEndpointDown(t *testing.T) {
	t.Parallel()
	f, s := openStore(t, time.Hour)
	ts := f.ts
	ctx := t.Context()

	ts.SetDown(true)
	if _, err := s.Get(ctx, "my-key"); !keystore.IsUnreachable(err) {
		t.Errorf("Get without a token = %v, want an UnreachableError", err)
	}
	// Failed token requests are not repeated for every call: after one
	// failure the next calls fail at once until a backoff has passed.
	before := ts.Requests()
	for range 20 {
		if err := s.Create(ctx, "other", []byte("v")); !keystore.IsUnreachable(err) {
			t.Errorf("Create without a token = %v, want an UnreachableError", err)
		}
	}
	if got := ts.Requests() - before; got > 2 {
		t.Errorf("20 quick Creates sent %d token requests, want the backoff to hold them to at most 2", got)
	}
	if _, err := s.Status(ctx); !keystore.IsUnreachable(err) {
		t.Errorf("Status without a token = %v, want an UnreachableError", err)
	}
	ts.SetDown(false)
	keystoretest.Eventually(t, 15*time.Second, func() error { return s.Create(ctx, "my-key", []byte("v")) })
}

// TestUnknownServiceAccount checks that rejected credentials are not an
// outage.
func TestUnknownServiceAccount(t *testing.T) {
	t.Parallel()
	ts, sa := newTokens(t, time.Hour)
	f := newFixture(t, ts, sa)
	other := gcptest.NewTokenServer(t, time.Hour)
	stranger := other.NewServiceAccount(t, "stranger")
	conf := f.config()
	conf.CredentialsJSON = keystore.NewSecret(strings.ReplaceAll(string(stranger.KeyFile()), other.URL, ts.URL))
	s := f.open(t, conf, nil)
	mustClose(t, s)
	_, err := s.Get(t.Context(), "my-key")
	if err == nil || keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get with an unknown service account = %v, want a plain error", err)
	}
	if ts.Refused() == 0 {
		t.Errorf("the token endpoint refused no request")
	}
}

// TestNoSecretsLeak runs operations that fail in every way and checks
// that no log record and no error contains a private key, an access
// token or a stored value.
func TestNoSecretsLeak(t *testing.T) {
	t.Parallel()
	ts, sa := newTokens(t, 2*time.Second)
	f := newFixture(t, ts, sa)
	var logs keystoretest.LogBuffer
	log := keystoretest.Logger(&logs)
	conf := f.config()
	s := f.open(t, conf, log)
	mustClose(t, s)
	ctx := t.Context()

	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	value := []byte("c2VjcmV0LWtleS1tYXRlcmlhbC1zaG91bGQtbmV2ZXItbGVhaw==")
	record(s.Create(ctx, "my-key", value))
	record(s.Create(ctx, "my-key", value))
	_, err := s.Get(ctx, "missing")
	record(err)
	ts.SetDown(true)
	time.Sleep(2100 * time.Millisecond) // let the token expire
	_, err = s.Get(ctx, "my-key")
	record(err)
	ts.SetDown(false)
	f.sm.Stop()
	_, err = s.Status(ctx)
	record(err)
	record(s.Create(ctx, "x", value))
	f.sm.Start(t)
	f.sm.Fail("", codes.PermissionDenied)
	record(s.Delete(ctx, "my-key"))
	if len(errs) < 5 {
		t.Fatalf("only %d errors recorded", len(errs))
	}

	secrets := append(ts.Tokens(), string(value))
	for _, line := range strings.Split(sa.PrivateKeyPEM, "\n") {
		if len(line) > 20 {
			secrets = append(secrets, line)
		}
	}
	var out strings.Builder
	for _, err := range errs {
		out.WriteString(err.Error() + "\n")
	}
	out.WriteString(logs.String())
	out.WriteString(fmt.Sprintf("%v %+v %#v %s", conf, conf, conf, s))
	for _, secret := range secrets {
		if strings.Contains(out.String(), secret) {
			t.Errorf("errors or logs contain a secret %.12q...:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(logs.String(), "access token") {
		t.Errorf("the token endpoint outage was not logged:\n%s", logs.String())
	}
}
