package interop

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/keystore/azure/azuretest"
)

// The Azure Key Vault key store against keystore/azure/azuretest, a fake
// of the Key Vault secrets REST API and of the Entra ID token endpoint,
// through the kes binary and the upstream SDK.
//
// The kes process reaches the fake as a real deployment reaches Azure
// through a corporate proxy, with standard variables only: HTTPS_PROXY
// names the fake's CONNECT proxy (the fake's host names end in .test and
// resolve nowhere), SSL_CERT_FILE makes Go trust the fake's CA, and
// AZURE_AUTHORITY_HOST names the fake identity provider. Tests that set
// them use t.Setenv and so do not run in parallel with other tests.

// azureEnv starts a fake and points the environment of kes processes
// started afterwards at it.
func azureEnv(t *testing.T, opts azuretest.Options) *azuretest.Server {
	t.Helper()
	f := azuretest.New(t, opts)
	caFile := filepath.Join(t.TempDir(), "azure-ca.pem")
	if err := os.WriteFile(caFile, f.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", caFile)
	t.Setenv("HTTPS_PROXY", f.ProxyURL(t))
	t.Setenv("NO_PROXY", "localhost,127.0.0.1")
	t.Setenv("AZURE_AUTHORITY_HOST", f.AuthorityHost())
	return f
}

// azureKeyStore is the keystore section of the original server for the
// fake, with a service principal.
func azureKeyStore(f *azuretest.Server) string {
	o := f.Options()
	return fmt.Sprintf("  azure:\n    keyvault:\n      endpoint: %s\n      credentials:\n        tenant_id: %s\n        client_id: %s\n        client_secret: %s\n      managed_identity:\n        client_id: \"\"\n",
		f.URL(), o.TenantID, o.ClientID, o.ClientSecret)
}

// checkAzureOutput fails if the server's output holds the client secret
// or an access token.
func checkAzureOutput(t *testing.T, f *azuretest.Server, out string) {
	t.Helper()
	if strings.Contains(out, f.Options().ClientSecret) {
		t.Errorf("the server's output contains the client secret")
	}
	for _, tok := range f.Tokens() {
		if strings.Contains(out, tok) {
			t.Errorf("the server's output contains an access token")
		}
	}
}

// TestAzureFixtures stores the key files written by the original server
// as Key Vault secrets of the original's layout (named like the key,
// the value as its only version) and checks that the server reads them
// unchanged: every recorded ciphertext decrypts, every HMAC is
// reproduced, the keys are listed and serve new requests, and no secret
// is rewritten. Keys it creates get the same layout.
func TestAzureFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	f := azureEnv(t, azuretest.Options{PageSize: 2})
	created := time.Now().Add(-24 * time.Hour)
	for name, data := range files {
		f.AddVersion(name, string(data), created)
	}
	srv, c := startAdminServer(t, serverOptions{KeyStore: azureKeyStore(f)})
	ctx := t.Context()
	checkStoredFixtures(t, c, fx) // listed over pages of 2
	for name, data := range files {
		if v := f.Versions(name); len(v) != 1 || v[0].Value != string(data) {
			t.Errorf("secret %s changed after use: %d versions", name, len(v))
		}
	}

	// A new key gets the same layout, and is deleted and purged.
	if err := c.CreateKey(ctx, "new-key"); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if v := f.Versions("new-key"); len(v) != 1 || v[0].Value == "" {
		t.Errorf("secret of a new key has %d versions, want one", len(v))
	}
	if err := roundTrip(ctx, c, c, "new-key"); err != nil {
		t.Error(err)
	}
	if err := c.CreateKey(ctx, "new-key"); !errors.Is(err, kes.ErrKeyExists) {
		t.Errorf("second CreateKey = %v, want %v", err, kes.ErrKeyExists)
	}
	if err := c.DeleteKey(ctx, "new-key"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if slices.Contains(f.Names(), "new-key") || f.IsDeleted("new-key") {
		t.Errorf("the deleted key's secret is still there (or not purged)")
	}
	if !strings.Contains(srv.Stdout.String(), "Azure KeyVault: "+f.URL()) {
		t.Errorf("the banner does not name the key store:\n%s", srv.Stdout)
	}
	checkAzureOutput(t, f, srv.Stdout.String()+srv.Stderr.String())
}

// TestAzureOutage starts the server while Key Vault is unreachable, with
// tokens that live for 2 s: the server starts and is not ready, serves
// once Key Vault is back, renews its tokens without a failed request,
// keeps serving cached keys under cache.expiry.offline while Key Vault
// is down again, and recovers without a restart.
func TestAzureOutage(t *testing.T) {
	f := azureEnv(t, azuretest.Options{TokenTTL: 2 * time.Second})
	f.SetDown(true)
	srv, c := startAdminServer(t, serverOptions{
		Config:   "cache:\n  expiry:\n    any: 10m\n    unused: 10m\n    offline: 10m\n",
		KeyStore: azureKeyStore(f),
	})
	ctx := t.Context()

	waitUnready(t, c, 30*time.Second)
	if err := c.CreateKey(ctx, "early"); status(err) != http.StatusGatewayTimeout && status(err) != http.StatusBadGateway {
		t.Errorf("CreateKey while Key Vault is down = %v, want 502 or 504", err)
	}

	f.SetDown(false)
	eventually(t, 30*time.Second, func() error { return c.CreateKey(ctx, "shared") })
	waitReady(t, c, 30*time.Second)

	// Tokens expire every 2 s: requests over 4 s never fail.
	tokens := len(f.Tokens())
	for i := range 16 {
		if i%4 == 0 {
			name := fmt.Sprintf("key-%02d", i)
			if err := c.CreateKey(ctx, name); err != nil {
				t.Fatalf("CreateKey(%s) = %v", name, err)
			}
		}
		if _, _, err := c.ListKeys(ctx, "key", 0); err != nil {
			t.Fatalf("ListKeys = %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := len(f.Tokens()) - tokens; n < 1 {
		t.Errorf("no token was renewed in 4 s of 2 s tokens")
	}
	if err := roundTrip(ctx, c, c, "shared"); err != nil { // caches the key
		t.Fatal(err)
	}

	f.SetDown(true)
	waitUnready(t, c, 30*time.Second)
	for range 3 {
		if err := roundTrip(ctx, c, c, "shared"); err != nil {
			t.Fatalf("cached key while Key Vault is down: %v", err)
		}
	}
	if err := c.CreateKey(ctx, "during-outage"); status(err) != http.StatusGatewayTimeout && status(err) != http.StatusBadGateway {
		t.Errorf("CreateKey while Key Vault is down = %v, want 502 or 504", err)
	}

	f.SetDown(false)
	eventually(t, 30*time.Second, func() error { return c.CreateKey(ctx, "after-outage") })
	if err := roundTrip(ctx, c, c, "after-outage"); err != nil {
		t.Error(err)
	}
	checkAzureOutput(t, f, srv.Stdout.String()+srv.Stderr.String())
}

// TestExampleAzure runs examples/config/azure.yml against the fake.
func TestExampleAzure(t *testing.T) {
	f := azureEnv(t, azuretest.Options{})
	o := f.Options()
	t.Setenv("KES_AZURE_TENANT_ID", o.TenantID)
	t.Setenv("KES_AZURE_CLIENT_ID", o.ClientID)
	t.Setenv("KES_AZURE_CLIENT_SECRET", o.ClientSecret)
	_, minio := exampleIdentities(t)
	config := exampleConfig(t, "azure.yml", "https://kes-keys.vault.azure.net", f.URL())
	srv := startServer(t, serverOptions{RawConfig: config})
	minioStartup(t, srv, minio)
	if v := f.Versions("minio-default"); len(v) != 1 {
		t.Fatalf("secret minio-default has %d versions, want 1", len(v))
	}
	checkAzureOutput(t, f, srv.Stdout.String()+srv.Stderr.String())
}

// TestAzureMigrate copies keys from a directory into Key Vault and back
// with `kes migrate`.
func TestAzureMigrate(t *testing.T) {
	_, files := readFixtures(t)
	f := azureEnv(t, azuretest.Options{PageSize: 2})
	checkMigrate(t, files, azureKeyStore(f), nil, func(name string) ([]byte, bool) {
		v := f.Versions(name)
		if len(v) != 1 {
			return nil, false
		}
		return []byte(v[0].Value), true
	}, func(out string) { checkAzureOutput(t, f, out) })
}
