package interop

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/keystore/aws/awstest"
)

// The AWS Secrets Manager key store against keystore/aws/awstest, a fake
// of the service's JSON API that checks SigV4 signatures, through the kes
// binary and the upstream SDK. The fake serves HTTPS; the kes process
// trusts its certificate through SSL_CERT_FILE (Go's roots, for the
// status probe) and AWS_CA_BUNDLE (the SDK's), so these tests set
// environment variables and do not run in parallel.

// startAWS starts a TLS fake and makes child processes trust it.
func startAWS(t *testing.T, opts awstest.Options) *awstest.Server {
	t.Helper()
	opts.TLS = true
	fake := awstest.New(t, opts)
	ca := filepath.Join(t.TempDir(), "aws-ca.pem")
	if err := os.WriteFile(ca, fake.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", ca)
	t.Setenv("AWS_CA_BUNDLE", ca) // the SDK's own CA setting, which replaces the system roots
	// Keep the SDK's default chain away from this machine's credentials.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("KES_TEST_FAKE_AWS_SECRET", awstest.SecretAccessKey)
	return fake
}

// awsKeyStore returns the keystore section of the original server for
// fake. The endpoint has no scheme, as in the original's documentation.
func awsKeyStore(fake *awstest.Server, static bool) string {
	s := fmt.Sprintf("  aws:\n    secretsmanager:\n      endpoint: %s\n      region: %s\n      kmskey: \"\"\n",
		strings.TrimPrefix(fake.URL, "https://"), fake.Region())
	if static {
		// The secret key comes from the environment (see startAWS).
		s += fmt.Sprintf("      credentials:\n        accesskey: %s\n        secretkey: ${KES_TEST_FAKE_AWS_SECRET}\n        token: \"\"\n", awstest.AccessKeyID)
	} else {
		s += "      credentials:\n        accesskey: \"\"\n        secretkey: \"\"\n        token: \"\"\n"
	}
	return s
}

// checkNoLeak fails if the server's output contains any of secrets.
func checkNoLeak(t *testing.T, srv *kesServer, secrets ...string) {
	t.Helper()
	out := srv.Stdout.String() + srv.Stderr.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("the server's output contains a secret (%d bytes)", len(s))
		}
	}
}

// TestAWSFixtures stores the original server's key files as secrets in
// the original's layout (name = key name, SecretString = file content)
// and checks that the server started with the original's config section
// reads them unchanged, decrypts the recorded ciphertexts, lists them,
// and writes new keys in the same layout.
func TestAWSFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	fake := startAWS(t, awstest.Options{PageSize: 3})
	for name, data := range files {
		fake.PutString(name, string(data))
	}
	srv, c := startAdminServer(t, serverOptions{KeyStore: awsKeyStore(fake, true)})
	ctx := t.Context()
	checkStoredFixtures(t, c, fx)
	for name, data := range files { // reading never rewrites a secret
		if sec, ok := fake.Lookup(name); !ok || sec.String == nil || *sec.String != string(data) {
			t.Errorf("secret %s changed after use", name)
		}
	}

	if err := c.CreateKey(ctx, "new-key"); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if err := c.CreateKey(ctx, "new-key"); !errors.Is(err, kes.ErrKeyExists) {
		t.Errorf("second CreateKey = %v, want %v", err, kes.ErrKeyExists)
	}
	sec, ok := fake.Lookup("new-key")
	if !ok || sec.String == nil || sec.Binary != nil {
		t.Fatalf("secret of a new key = %+v, want a SecretString", sec)
	}
	if _, err := base64.StdEncoding.DecodeString(*sec.String); err != nil || len(*sec.String) < 32 {
		t.Errorf("SecretString of a new key is not the serialised key (base64, like the fixture files): %v", err)
	}
	if err := roundTrip(ctx, c, c, "new-key"); err != nil {
		t.Error(err)
	}
	if err := c.DeleteKey(ctx, "new-key"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if err := c.DeleteKey(ctx, "new-key"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Errorf("second DeleteKey = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if _, ok := fake.Lookup("new-key"); ok {
		t.Errorf("the deleted key's secret is still there")
	}
	if !strings.Contains(srv.Stdout.String(), "AWS SecretsManager: "+strings.TrimPrefix(fake.URL, "https://")) {
		t.Errorf("the banner does not name the key store:\n%s", srv.Stdout)
	}
	secrets := []string{awstest.SecretAccessKey}
	for _, data := range files { // the serialised keys, holding the key bytes
		secrets = append(secrets, string(data))
	}
	checkNoLeak(t, srv, secrets...)
}

// TestAWSOutage starts the server while Secrets Manager is down: it
// starts, is not ready and serves once the service is up, without a
// restart. Then the service goes away again: cached keys keep working
// (cache.expiry.offline), the rest fails with 504, and everything
// recovers when it is back.
func TestAWSOutage(t *testing.T) {
	fake := startAWS(t, awstest.Options{})
	fake.Stop()
	srv, c := startAdminServer(t, serverOptions{
		Config:   "cache:\n  expiry:\n    any: 5m\n    unused: 5m\n    offline: 1h\n",
		KeyStore: awsKeyStore(fake, true),
	})
	ctx := t.Context()

	checkStartedDown(t, c, "my-key")

	fake.Start(t)
	// The server probes the store every 10 s.
	waitReady(t, c, 25*time.Second)
	if err := c.CreateKey(ctx, "my-key"); err != nil {
		t.Fatalf("CreateKey after the service started: %v", err)
	}
	dek, err := c.GenerateKey(ctx, "my-key", nil) // now cached
	if err != nil {
		t.Fatal(err)
	}

	fake.Stop()
	waitUnready(t, c, 25*time.Second)
	pt, err := c.Decrypt(ctx, "my-key", dek.Ciphertext, nil)
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Errorf("Decrypt with a cached key while offline = %v, want the plaintext", err)
	}
	if _, err := c.GenerateKey(ctx, "my-key", nil); err != nil {
		t.Errorf("GenerateKey with a cached key while offline = %v", err)
	}
	if err := c.CreateKey(ctx, "other"); status(err) != http.StatusGatewayTimeout {
		t.Errorf("CreateKey while offline = %v, want 504", err)
	}

	fake.Start(t)
	waitReady(t, c, 25*time.Second)
	eventually(t, 10*time.Second, func() error { return c.CreateKey(ctx, "other") })
	if err := roundTrip(ctx, c, c, "other"); err != nil {
		t.Error(err)
	}
	checkNoLeak(t, srv, awstest.SecretAccessKey)
}

// TestAWSCredentialExpiry runs the server on the SDK's default credential
// chain with container credentials that live for two seconds, and the
// fake rejects expired ones: no client request fails while they are
// renewed, and none of them is logged.
func TestAWSCredentialExpiry(t *testing.T) {
	fake := startAWS(t, awstest.Options{CredentialTTL: 2 * time.Second})
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake.CredentialsURL())
	srv, c := startAdminServer(t, serverOptions{Config: "log:\n  error: debug\n", KeyStore: awsKeyStore(fake, false)})
	ctx := t.Context()
	deadline := time.Now().Add(4 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		name := fmt.Sprintf("key-%02d", i)
		if err := c.CreateKey(ctx, name); err != nil {
			t.Fatalf("CreateKey(%s): %v", name, err)
		}
		if _, err := c.DescribeKey(ctx, name); err != nil { // read from the store: Create does not cache
			t.Fatalf("DescribeKey(%s): %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := fake.Rejected("ExpiredTokenException"); got != 0 {
		t.Errorf("requests rejected with expired credentials = %d, want 0", got)
	}
	if got := fake.Issued(); got < 2 {
		t.Errorf("credentials fetched = %d, want them renewed", got)
	}
	checkNoLeak(t, srv, fake.IssuedSecrets()...)
}

// TestExampleAWS runs examples/config/aws.yml against the fake, with the
// default credential chain reading the credentials from the environment.
func TestExampleAWS(t *testing.T) {
	fake := startAWS(t, awstest.Options{Region: "us-east-2"})
	const keyID = "1234abcd-12ab-34cd-56ef-1234567890ab"
	fake.AddKMSKey(keyID, "kes")
	t.Setenv("AWS_ACCESS_KEY_ID", awstest.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awstest.SecretAccessKey)
	_, minio := exampleIdentities(t)
	config := exampleConfig(t, "aws.yml", "secretsmanager.us-east-2.amazonaws.com", fake.URL)
	srv := startServer(t, serverOptions{RawConfig: config})
	minioStartup(t, srv, minio)
	sec, ok := fake.Lookup("minio-default")
	if !ok || sec.String == nil || sec.KMSKeyID != keyID {
		t.Fatalf("secret minio-default = %+v, %t; want a SecretString encrypted with the KMS key of alias/kes", sec, ok)
	}
	checkNoLeak(t, srv, awstest.SecretAccessKey)
}

// TestAWSMigrate copies the original's key files from an fs key store
// into Secrets Manager with kes migrate, and back into another directory.
func TestAWSMigrate(t *testing.T) {
	fx, files := readFixtures(t)
	fake := startAWS(t, awstest.Options{PageSize: 2})
	checkMigrate(t, files, awsKeyStore(fake, true), nil, func(name string) ([]byte, bool) {
		sec, ok := fake.Lookup(name)
		if !ok || sec.String == nil {
			return nil, false
		}
		return []byte(*sec.String), true
	}, nil, "fixture-*")

	// The migrated keys are the original's: a server on them decrypts the
	// recorded ciphertexts.
	_, c := startAdminServer(t, serverOptions{KeyStore: awsKeyStore(fake, true)})
	checkFixtures(t, c, fx)
}
