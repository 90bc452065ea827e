package azure

import (
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
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
	endpoint := keystoretest.RealEnv(t, "KES_TEST_AZURE_ENDPOINT")[0]
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
	prefix, names := keystoretest.LiveNames(t, st, "kes-test", "a", "B_c")
	keystoretest.CheckCreateGet(t, st, names, func(n string) []byte { return []byte("value-" + n) })
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
