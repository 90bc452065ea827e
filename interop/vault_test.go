package interop

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// The Vault key store against keystore/vault/vaulttest, a fake of Vault's HTTP
// API, through the kes binary and the upstream SDK.

const (
	vaultRoleID   = "kes-interop-role"
	vaultSecretID = "kes-interop-secret"
	vaultPrefix   = "kes/tenant-1"
)

// startVault starts a fake Vault with a K/V mount "kv" of the given
// version, a transit mount and an AppRole whose tokens live for ttl. It
// returns the fake, the keystore section for startServer and the files
// (the fake's CA) to put next to the config.
func startVault(t *testing.T, version int, ttl time.Duration) (*vaulttest.Server, string, map[string][]byte) {
	t.Helper()
	v := vaulttest.New(t, vaulttest.Options{})
	v.MountKV("", "kv", version)
	v.MountTransit("", "transit")
	v.AddAppRole("", "approle", vaulttest.AppRole{Name: "kes", RoleID: vaultRoleID, SecretID: vaultSecretID, Token: vaulttest.TokenOptions{TTL: ttl}})
	keyStore := fmt.Sprintf("  vault:\n    endpoint: %s\n    engine: kv\n    version: v%d\n    prefix: %s\n"+
		"    approle:\n      id: %s\n      secret: %s\n      retry: 15s\n    tls:\n      ca: vault-ca.pem\n    status:\n      ping: 1s\n",
		v.URL, version, vaultPrefix, vaultRoleID, vaultSecretID)
	return v, keyStore, map[string][]byte{"vault-ca.pem": v.CACertPEM()}
}

// TestVaultFixtures stores the key files written by the original server
// in Vault entries of the original's layout (K/V v1 and v2, with a
// prefix) and checks that the server reads them unchanged: every
// recorded ciphertext decrypts, every HMAC is reproduced, the keys are
// listed and serve new requests, and no entry is rewritten. Keys it
// creates get the same layout.
func TestVaultFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("kv-v%d", version), func(t *testing.T) {
			t.Parallel()
			v, keyStore, vaultFiles := startVault(t, version, time.Hour)
			for name, data := range files {
				// The original writes {"<name>": "<value>"}; on v2 as
				// version 1 (created with cas 0).
				v.WriteKV("", "kv", vaultPrefix+"/"+name, map[string]any{name: string(data)})
			}
			srv, c := startAdminServer(t, serverOptions{KeyStore: keyStore, Files: vaultFiles})
			ctx := t.Context()
			checkStoredFixtures(t, c, fx)

			// Reading never rewrites the original's entries.
			for name, data := range files {
				got, ok := v.ReadKV("", "kv", vaultPrefix+"/"+name)
				if !ok || len(got) != 1 || got[name] != string(data) {
					t.Errorf("entry %s changed after use: %v", name, got)
				}
			}

			// A new key gets the same layout, and can be deleted.
			if err := c.CreateKey(ctx, "new-key"); err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			got, ok := v.ReadKV("", "kv", vaultPrefix+"/new-key")
			if value, _ := got["new-key"].(string); !ok || len(got) != 1 || value == "" {
				t.Errorf("entry of a new key = %v, want one field named like the key", got)
			}
			if err := roundTrip(t.Context(), c, c, "new-key"); err != nil {
				t.Error(err)
			}
			if err := c.DeleteKey(ctx, "new-key"); err != nil {
				t.Fatalf("DeleteKey: %v", err)
			}
			if paths := v.KVPaths("", "kv"); slices.Contains(paths, vaultPrefix+"/new-key") {
				t.Errorf("the deleted key's entry is still there: %q", paths)
			}
			if !strings.Contains(srv.Stdout.String(), "Hashicorp Vault: "+v.URL) {
				t.Errorf("the banner does not name the key store:\n%s", srv.Stdout)
			}
		})
	}
}

// eventually polls f until it returns nil; it fails the test with f's
// last error after d.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	if _, err := within(d, f); err != nil {
		t.Fatalf("after %v: %v", d, err)
	}
}

// TestVaultOutage checks the server on a Vault whose tokens live for 2 s
// and which is sealed for a while: keys are created without a single
// error while the token is renewed; while sealed, key operations fail
// fast with 504 and /v1/ready says 504; after unsealing everything works
// again without restarting kes.
func TestVaultOutage(t *testing.T) {
	t.Parallel()
	v, keyStore, vaultFiles := startVault(t, 2, 2*time.Second)
	srv, c := startAdminServer(t, serverOptions{KeyStore: keyStore, Files: vaultFiles})
	ctx := t.Context()

	// Creates always reach the store; the token is renewed meanwhile.
	for i := range 40 {
		if err := c.CreateKey(ctx, fmt.Sprintf("key-%02d", i)); err != nil {
			t.Fatalf("CreateKey(key-%02d): %v", i, err)
		}
		time.Sleep(75 * time.Millisecond)
	}
	if n := v.Count(vaulttest.CountRenewSelf); n == 0 {
		t.Errorf("no token renewal in 3 s with a 2 s token")
	}
	if ready, err := c.IsReady(ctx); !ready || err != nil {
		t.Fatalf("IsReady = %t, %v; want true", ready, err)
	}

	v.Seal()
	for i := range 5 {
		start := time.Now()
		err := c.CreateKey(ctx, fmt.Sprintf("sealed-%d", i))
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("CreateKey while sealed took %v, want it to fail fast", took)
		}
		if status(err) != http.StatusGatewayTimeout {
			t.Errorf("CreateKey while sealed = %v, want 504", err)
		}
	}
	if ready, err := c.IsReady(ctx); ready || status(err) != http.StatusGatewayTimeout {
		t.Errorf("IsReady while sealed = %t, %v; want false, 504", ready, err)
	}
	if !strings.Contains(srv.Stderr.String()+srv.Stdout.String(), "sealed") {
		t.Errorf("the error log does not mention the seal:\nstdout:\n%s\nstderr:\n%s", srv.Stdout, srv.Stderr)
	}

	v.Unseal()
	eventually(t, 15*time.Second, func() error { return c.CreateKey(ctx, "after-unseal") })
	waitReady(t, c, 25*time.Second)
	if err := roundTrip(t.Context(), c, c, "after-unseal"); err != nil {
		t.Error(err)
	}
	for _, tok := range v.Tokens() {
		if strings.Contains(srv.Stdout.String()+srv.Stderr.String(), tok) {
			t.Errorf("the server's output contains a Vault token")
		}
	}
	if strings.Contains(srv.Stdout.String()+srv.Stderr.String(), vaultSecretID) {
		t.Errorf("the server's output contains the AppRole secret ID")
	}
}
