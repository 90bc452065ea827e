package azure

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/openkes/openkes/keystore"
)

// TestRealService runs against a real Key Vault when KES_TEST_AZURE_ENDPOINT
// is set (e.g. https://my-vault.vault.azure.net). With
// KES_TEST_AZURE_TENANT_ID, KES_TEST_AZURE_CLIENT_ID and
// KES_TEST_AZURE_CLIENT_SECRET it logs in as that service principal, with
// KES_TEST_AZURE_MANAGED_IDENTITY as that managed identity, otherwise with
// Azure's default credential chain. The principal needs the secret
// permissions get, list, set, delete and purge. The test only touches
// secrets named kes-test-<random>-*, and deletes and purges them.
func TestRealService(t *testing.T) {
	endpoint := os.Getenv("KES_TEST_AZURE_ENDPOINT")
	if endpoint == "" {
		t.Skip("KES_TEST_AZURE_ENDPOINT is not set")
	}
	conf := &Config{
		Endpoint: endpoint,
		Credentials: Credentials{
			TenantID:     os.Getenv("KES_TEST_AZURE_TENANT_ID"),
			ClientID:     os.Getenv("KES_TEST_AZURE_CLIENT_ID"),
			ClientSecret: keystore.NewSecret(os.Getenv("KES_TEST_AZURE_CLIENT_SECRET")),
		},
		ManagedIdentity: ManagedIdentity{ClientID: os.Getenv("KES_TEST_AZURE_MANAGED_IDENTITY")},
	}
	st := open(t, conf, nil)
	ctx := t.Context()
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "kes-test-" + hex.EncodeToString(b) + "-"
	names := []string{prefix + "a", prefix + "B_c"}
	t.Cleanup(func() {
		for _, n := range names {
			st.Delete(t.Context(), n)
		}
	})
	if _, err := st.Status(ctx); err != nil {
		t.Fatalf("Status() = %v", err)
	}
	for _, n := range names {
		if err := st.Create(ctx, n, []byte("value-"+n)); err != nil {
			t.Fatalf("Create(%q) = %v", n, err)
		}
		if err := st.Create(ctx, n, []byte("other")); !errors.Is(err, keystore.ErrExists) {
			t.Errorf("second Create(%q) = %v, want ErrExists", n, err)
		}
		got, err := st.Get(ctx, n)
		if err != nil || string(got) != "value-"+n {
			t.Errorf("Get(%q) = %q, %v", n, got, err)
		}
	}
	listed, _, err := st.List(ctx, prefix, 0)
	if err != nil || !slices.Equal(listed, []string{prefix + "B_c", prefix + "a"}) {
		t.Errorf("List(%q) = %q, %v", prefix, listed, err)
	}
	for _, n := range names {
		if err := st.Delete(ctx, n); err != nil {
			t.Errorf("Delete(%q) = %v", n, err)
		}
		if _, err := st.Get(ctx, n); !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("Get(%q) after Delete = %v, want ErrNotFound", n, err)
		}
	}
	// The name can be reused at once: the deleted secret was purged, or
	// is purged by Create.
	if err := st.Create(ctx, names[0], []byte("again")); err != nil {
		t.Errorf("Create(%q) after Delete = %v", names[0], err)
	}
}
