package aws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/aws/awstest"
	"github.com/openkes/openkes/keystore/keystoretest"
)

// fakeConfig returns a config for fake with its static credentials.
func fakeConfig(fake *awstest.Server) *Config {
	return &Config{
		Endpoint: fake.URL,
		Region:   fake.Region(),
		Credentials: Credentials{
			AccessKey: awstest.AccessKeyID,
			SecretKey: keystore.NewSecret(awstest.SecretAccessKey),
		},
	}
}

// open connects to fake with conf, closing the store when t ends.
func open(t *testing.T, conf *Config, log *slog.Logger) *Store {
	t.Helper()
	s, err := New(t.Context(), conf, log)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the conformance suite on a fake whose ListSecrets
// pages hold 3 secrets, so that List has to follow NextToken.
func TestConformance(t *testing.T) {
	t.Parallel()
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		fake := awstest.New(t, awstest.Options{PageSize: 3})
		s, err := New(t.Context(), fakeConfig(fake), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceKMSKey runs the suite with a kmskey, over HTTPS-less
// fakes in another region.
func TestConformanceKMSKey(t *testing.T) {
	t.Parallel()
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		fake := awstest.New(t, awstest.Options{PageSize: 2, Region: "eu-central-1"})
		fake.AddKMSKey("1234abcd-12ab-34cd-56ef-1234567890ab", "kes")
		conf := fakeConfig(fake)
		conf.KMSKey = "alias/kes"
		s, err := New(t.Context(), conf, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestListPages(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{PageSize: 3})
	s := open(t, fakeConfig(fake), nil)
	var want []string
	for i := range 10 {
		name := fmt.Sprintf("key-%02d", 9-i) // created in reverse order
		want = append(want, name)
		if err := s.Create(t.Context(), name, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	fake.PutString("other", "not a KES key") // listed: the account's secrets are all listed
	slices.Sort(want)

	names, next, err := s.List(t.Context(), "key-", -1)
	if err != nil || next != "" {
		t.Fatalf("List(key-) = _, %q, %v; want no error", next, err)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("List(key-) mismatch (-want +got):\n%s", diff)
	}
	if got, want := fake.Count("ListSecrets"), 4; got != want { // 10 names in pages of 3
		t.Errorf("ListSecrets calls = %d, want %d", got, want)
	}
	all, _, err := s.List(t.Context(), "", -1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(slices.Clone(want), "other"), all); diff != "" {
		t.Errorf("List() mismatch (-want +got):\n%s", diff)
	}
}

// TestOriginalLayout reads secrets as the original server writes them
// (SecretString = the key file's content, secret name = key name), and
// checks that new keys are written the same way.
func TestOriginalLayout(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	files := keystoretest.Fixtures(t)
	for name, data := range files {
		fake.PutString(name, string(data))
	}
	fake.PutBinary("binary-key", []byte(`{"bytes":"AAAA"}`))
	s := open(t, fakeConfig(fake), nil)
	for name, want := range files {
		got, err := s.Get(t.Context(), name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get(%q) = %q, %v; want the fixture file", name, got, err)
		}
	}
	if got, err := s.Get(t.Context(), "binary-key"); err != nil || string(got) != `{"bytes":"AAAA"}` {
		t.Errorf("Get(binary-key) = %q, %v; want the SecretBinary", got, err)
	}

	if err := s.Create(t.Context(), "new-key", files["fixture-generated"]); err != nil {
		t.Fatal(err)
	}
	sec, ok := fake.Lookup("new-key")
	if !ok || sec.String == nil || *sec.String != string(files["fixture-generated"]) || sec.Binary != nil || sec.KMSKeyID != "" {
		t.Errorf("stored secret = %+v, want a SecretString with the value and the default KMS key", sec)
	}
	if err := s.Create(t.Context(), "bin", []byte{0xff, 0}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := fake.Lookup("bin"); sec.String != nil || !bytes.Equal(sec.Binary, []byte{0xff, 0}) {
		t.Errorf("stored non-UTF-8 secret = %+v, want a SecretBinary", sec)
	}
}

func TestKMSKey(t *testing.T) {
	t.Parallel()
	const keyID = "1234abcd-12ab-34cd-56ef-1234567890ab"
	tests := []struct {
		name    string
		kmsKey  string
		wantErr bool
	}{
		{name: "key-id", kmsKey: keyID},
		{name: "key-arn", kmsKey: "arn:aws:kms:us-east-1:" + awstest.AccountID + ":key/" + keyID},
		{name: "alias", kmsKey: "alias/kes"},
		{name: "alias-arn", kmsKey: "arn:aws:kms:us-east-1:" + awstest.AccountID + ":alias/kes"},
		{name: "unknown", kmsKey: "alias/nothing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awstest.New(t, awstest.Options{})
			fake.AddKMSKey(keyID, "kes")
			conf := fakeConfig(fake)
			conf.KMSKey = tt.kmsKey
			s := open(t, conf, nil)
			err := s.Create(t.Context(), "my-key", []byte("value"))
			if tt.wantErr {
				if err == nil || errors.Is(err, keystore.ErrExists) || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "EncryptionFailure") {
					t.Fatalf("Create() = %v, want the service's EncryptionFailure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create() = %v", err)
			}
			if sec, _ := fake.Lookup("my-key"); sec.KMSKeyID != keyID {
				t.Errorf("secret encrypted with KMS key %q, want %q", sec.KMSKeyID, keyID)
			}

			// A disabled key makes the secret unreadable: an error, not a
			// missing key and not an outage.
			fake.SetKMSKeyEnabled(keyID, false)
			_, err = s.Get(t.Context(), "my-key")
			if err == nil || errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "DecryptionFailure") {
				t.Errorf("Get() with a disabled KMS key = %v, want the service's DecryptionFailure", err)
			}
			if err := s.Create(t.Context(), "other", []byte("v")); err == nil {
				t.Errorf("Create() with a disabled KMS key = nil, want an error")
			}
		})
	}
}

// wantUnreachable checks that err wraps *keystore.UnreachableError.
func wantUnreachable(t *testing.T, what string, err error) {
	t.Helper()
	if !keystore.IsUnreachable(err) {
		t.Errorf("%s = %v, want an error wrapping *keystore.UnreachableError", what, err)
	}
}

// TestOutage takes the service down and brings it back: operations fail
// with UnreachableError meanwhile and work again afterwards with the
// same Store.
func TestOutage(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	s := open(t, fakeConfig(fake), nil)
	ctx := t.Context()
	if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
		t.Fatal(err)
	}

	fake.Stop()
	err := s.Create(ctx, "other", []byte("v"))
	wantUnreachable(t, "Create while down", err)
	_, err = s.Get(ctx, "my-key")
	wantUnreachable(t, "Get while down", err)
	wantUnreachable(t, "Delete while down", s.Delete(ctx, "my-key"))
	_, _, err = s.List(ctx, "", -1)
	wantUnreachable(t, "List while down", err)
	_, err = s.Status(ctx)
	wantUnreachable(t, "Status while down", err)

	fake.Start(t)
	if _, err := s.Status(ctx); err != nil {
		t.Fatalf("Status after restart = %v", err)
	}
	if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != "v" {
		t.Fatalf("Get after restart = %q, %v", got, err)
	}
	if err := s.Create(ctx, "other", []byte("v")); err != nil {
		t.Fatalf("Create after restart = %v", err)
	}
}

// TestDownAtConnect connects while the service is down: Connect works,
// Status reports the outage, and the store works once the service is up.
func TestDownAtConnect(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	fake.Stop()
	s := open(t, fakeConfig(fake), nil)
	_, err := s.Status(t.Context())
	wantUnreachable(t, "Status", err)
	fake.Start(t)
	if _, err := s.Status(t.Context()); err != nil {
		t.Fatalf("Status after start = %v", err)
	}
	if err := s.Create(t.Context(), "my-key", []byte("v")); err != nil {
		t.Fatalf("Create after start = %v", err)
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	s := open(t, fakeConfig(fake), nil)
	fake.SetThrottle(true)
	_, err := s.Get(t.Context(), "my-key")
	wantUnreachable(t, "Get while throttled", err)
	if n := fake.Count("GetSecretValue"); n < 2 {
		t.Errorf("GetSecretValue calls while throttled = %d, want the SDK to retry", n)
	}
	fake.SetThrottle(false)
	if _, err := s.Get(t.Context(), "my-key"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get after throttling = %v, want %v", err, keystore.ErrNotFound)
	}
}

// TestPermanentErrors checks that a service that answers with an error
// that is not about its availability is not reported as unreachable.
func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	tests := []struct {
		name string
		conf func(*Config)
		code string
	}{
		{name: "wrong-secret-key", conf: func(c *Config) { c.Credentials.SecretKey = keystore.NewSecret("wrong-secret-key-0000") }, code: "InvalidSignatureException"},
		{name: "unknown-access-key", conf: func(c *Config) { c.Credentials.AccessKey = "AKIAUNKNOWN000000000" }, code: "UnrecognizedClientException"},
		{name: "wrong-region", conf: func(c *Config) { c.Region = "us-west-2" }, code: "InvalidSignatureException"},
		{name: "token-with-long-term-key", conf: func(c *Config) { c.Credentials.Token = keystore.NewSecret("some-session-token") }, code: "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conf := fakeConfig(fake)
			tt.conf(conf)
			s := open(t, conf, nil)
			_, err := s.Get(t.Context(), "my-key")
			if err == nil || keystore.IsUnreachable(err) || errors.Is(err, keystore.ErrNotFound) || !strings.Contains(err.Error(), tt.code) {
				t.Fatalf("Get() = %v, want the permanent error %s", err, tt.code)
			}
			for _, secret := range []string{conf.Credentials.SecretKey.Reveal(), conf.Credentials.Token.Reveal()} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("the error contains a credential: %v", err)
				}
			}
		})
	}
}

// TestScheduledDeletion checks a secret that someone deleted with a
// recovery window: it is a missing key for Get and List, its name cannot
// be created again, and Delete removes it for good.
func TestScheduledDeletion(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	fake.PutString("my-key", "v")
	fake.ScheduleDeletion("my-key")
	s := open(t, fakeConfig(fake), nil)
	if _, err := s.Get(t.Context(), "my-key"); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Get() = %v, want %v", err, keystore.ErrNotFound)
	}
	if names, _, err := s.List(t.Context(), "", -1); err != nil || len(names) != 0 {
		t.Errorf("List() = %q, %v; want no names", names, err)
	}
	if err := s.Create(t.Context(), "my-key", []byte("v")); err == nil || errors.Is(err, keystore.ErrExists) || keystore.IsUnreachable(err) {
		t.Errorf("Create() = %v, want the service's InvalidRequestException", err)
	}
	if err := s.Delete(t.Context(), "my-key"); err != nil {
		t.Errorf("Delete() = %v, want nil", err)
	}
	if err := s.Create(t.Context(), "my-key", []byte("v2")); err != nil {
		t.Errorf("Create() after Delete = %v", err)
	}
}

// TestSDKLog checks that the SDK's own messages reach the store's
// logger, and not standard error.
func TestSDKLog(t *testing.T) {
	t.Parallel()
	var logs keystoretest.LogBuffer
	log := keystoretest.Logger(&logs)
	sdkLogger{log}.Logf("WARN", "shared credentials file %s is malformed", "x")
	sdkLogger{log}.Logf("DEBUG", "retrying")
	got := logs.String()
	for _, want := range []string{"level=WARN msg=\"aws: sdk: shared credentials file x is malformed\"", "level=DEBUG msg=\"aws: sdk: retrying\""} {
		if !strings.Contains(got, want) {
			t.Errorf("log = %q, want it to contain %q", got, want)
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	fake := awstest.New(t, awstest.Options{})
	s := open(t, fakeConfig(fake), nil)
	s.Close()
	if err := s.Create(t.Context(), "my-key", []byte("v")); !errors.Is(err, errClosed) {
		t.Errorf("Create after Close = %v, want %v", err, errClosed)
	}
	if _, err := s.Status(t.Context()); !errors.Is(err, errClosed) {
		t.Errorf("Status after Close = %v, want %v", err, errClosed)
	}
}

// chainEnv points the SDK's default credential chain at the fake's
// container-credentials endpoint, and away from anything on this
// machine.
func chainEnv(t *testing.T, fake *awstest.Server) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake.CredentialsURL())
}

// TestCredentialRenewal uses temporary credentials from the default
// chain. Credentials that expire early are renewed without a failed
// operation; credentials that live shorter than the renewal window are
// renewed before every use, so the fake never sees an expired one.
// Nothing of them is logged.
func TestCredentialRenewal(t *testing.T) {
	// Not parallel: t.Setenv.
	var logs keystoretest.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	t.Run("expired-early", func(t *testing.T) {
		fake := awstest.New(t, awstest.Options{})
		chainEnv(t, fake)
		conf := fakeConfig(fake)
		conf.Credentials = Credentials{}
		s := open(t, conf, log)
		ctx := t.Context()
		if err := s.Create(ctx, "my-key", []byte("v")); err != nil {
			t.Fatalf("Create() = %v", err)
		}
		if _, err := s.Get(ctx, "my-key"); err != nil {
			t.Fatalf("Get() = %v", err)
		}
		if got := fake.Issued(); got != 1 {
			t.Fatalf("credentials fetched = %d, want 1 (cached)", got)
		}
		fake.ExpireCredentials()
		if got, err := s.Get(ctx, "my-key"); err != nil || string(got) != "v" {
			t.Fatalf("Get() after the credentials expired = %q, %v; want the value", got, err)
		}
		if got := fake.Rejected("ExpiredTokenException"); got != 1 {
			t.Errorf("requests rejected as expired = %d, want 1", got)
		}
		if got := fake.Issued(); got != 2 {
			t.Errorf("credentials fetched = %d, want 2", got)
		}
		checkNoSecrets(t, logs.String(), fake.IssuedSecrets())
	})

	t.Run("short-lived", func(t *testing.T) {
		fake := awstest.New(t, awstest.Options{CredentialTTL: CredentialExpiryWindow / 2})
		chainEnv(t, fake)
		conf := fakeConfig(fake)
		conf.Credentials = Credentials{}
		s := open(t, conf, log)
		var errs []string
		for i := range 5 {
			name := fmt.Sprintf("key-%d", i)
			if err := s.Create(t.Context(), name, []byte("v")); err != nil {
				t.Fatalf("Create(%q) = %v", name, err)
			}
			if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("Get(missing) = %v", err)
			}
			errs = append(errs, fmt.Sprint(s.Delete(t.Context(), "missing")))
		}
		if got := fake.Rejected("ExpiredTokenException"); got != 0 {
			t.Errorf("requests rejected as expired = %d, want 0", got)
		}
		if got := fake.Issued(); got < 2 {
			t.Errorf("credentials fetched = %d, want them renewed", got)
		}
		checkNoSecrets(t, logs.String()+strings.Join(errs, "\n"), fake.IssuedSecrets())
	})
}

// checkNoSecrets fails if text contains any of secrets.
func checkNoSecrets(t *testing.T, text string, secrets []string) {
	t.Helper()
	keystoretest.CheckNoSecrets(t, []string{text}, secrets...)
}

// TestNoSecretsInLogsAndErrors runs successful and failing operations
// with debug logging and checks that neither the logs nor the errors
// contain the secret key, the token or a stored value.
func TestNoSecretsInLogsAndErrors(t *testing.T) {
	t.Parallel()
	var logs keystoretest.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := awstest.New(t, awstest.Options{})
	value := []byte(`{"bytes":"c2VjcmV0LWtleS1ieXRlcy1zZWNyZXQta2V5LWJ5dGU=","algorithm":"AES256-GCM_SHA256"}`)
	secrets := []string{awstest.SecretAccessKey, string(value), "c2VjcmV0LWtleS1ieXRlcy1zZWNyZXQta2V5LWJ5dGU="}

	good := open(t, fakeConfig(fake), log)
	bad := fakeConfig(fake)
	bad.Credentials.SecretKey = keystore.NewSecret("wrong/secret/key/value/000000")
	bad.Credentials.Token = keystore.NewSecret("session-token-value-0000")
	secrets = append(secrets, bad.Credentials.SecretKey.Reveal(), bad.Credentials.Token.Reveal())
	wrong := open(t, bad, log)

	var out []string
	record := func(err error) { out = append(out, fmt.Sprintf("%v %+v %#v", err, err, err)) }
	ctx := t.Context()
	record(good.Create(ctx, "my-key", value))
	record(good.Create(ctx, "my-key", value))
	_, err := good.Get(ctx, "missing")
	record(err)
	record(wrong.Create(ctx, "other", value))
	_, err = wrong.Get(ctx, "my-key")
	record(err)
	fake.Stop()
	record(good.Create(ctx, "down", value))
	fake.Start(t)
	out = append(out, fmt.Sprintf("%v %+v %#v", bad, bad, bad), good.String(), fmt.Sprintf("%#v", good))
	checkNoSecrets(t, logs.String()+strings.Join(out, "\n"), secrets)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		conf Config
		want []string
	}{
		{name: "static", conf: Config{Endpoint: "secretsmanager.us-east-2.amazonaws.com", Region: "us-east-2", Credentials: Credentials{AccessKey: "AKIA", SecretKey: keystore.NewSecret("s")}}},
		{name: "chain", conf: Config{Endpoint: "https://secretsmanager.us-east-2.amazonaws.com/", Region: "us-east-2", KMSKey: "alias/kes"}},
		{name: "empty", conf: Config{}, want: []string{
			"endpoint: required (kesconf: invalid AWS secretsmanager keystore: no endpoint specified)",
			"region: required (kesconf: invalid AWS secretsmanager keystore: no region specified)",
		}},
		{name: "no-region", conf: Config{Endpoint: "localhost:4566"}, want: []string{
			"region: required (kesconf: invalid AWS secretsmanager keystore: no region specified)",
		}},
		{name: "bad-endpoint", conf: Config{Endpoint: "ftp://host", Region: "r"}, want: []string{
			"endpoint: unsupported scheme 'ftp' in 'ftp://host' (use https)",
		}},
		{name: "endpoint-with-query", conf: Config{Endpoint: "https://host/?a=b", Region: "r"}, want: []string{
			"endpoint: 'https://host/?a=b' must not have a query or fragment",
		}},
		{name: "secret-without-access-key", conf: Config{Endpoint: "h", Region: "r", Credentials: Credentials{SecretKey: keystore.NewSecret("s")}}, want: []string{
			"credentials.accesskey: required when credentials are set (leave all credentials empty for the default credential chain)",
		}},
		{name: "token-only", conf: Config{Endpoint: "h", Region: "r", Credentials: Credentials{Token: keystore.NewSecret("t")}}, want: []string{
			"credentials.accesskey: required when credentials are set (leave all credentials empty for the default credential chain)",
			"credentials.secretkey: required when credentials are set (leave all credentials empty for the default credential chain)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keystoretest.CheckValidate(t, &tt.conf, tt.want)
			if _, err := New(context.Background(), &tt.conf, nil); (err != nil) != (len(tt.want) > 0) {
				t.Errorf("New() = %v, want an error iff Validate fails", err)
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"secretsmanager.us-east-2.amazonaws.com", "https://secretsmanager.us-east-2.amazonaws.com"},
		{"http://127.0.0.1:4566/", "http://127.0.0.1:4566"},
		{" https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com ", "https://vpce-1.secretsmanager.us-east-1.vpce.amazonaws.com"},
	}
	for _, tt := range tests {
		u, err := endpointURL(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("endpointURL(%q) = %v, %v; want %q", tt.in, u, err, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	s, err := New(t.Context(), &Config{Endpoint: "secretsmanager.us-east-2.amazonaws.com", Region: "us-east-2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "AWS SecretsManager: secretsmanager.us-east-2.amazonaws.com"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
