package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openkes/openkes/config"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/seal"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// The fs store and the seal.vault KEK are registered as keystore/all
// registers them.
func init() {
	if _, ok := keystore.Lookup("fs"); !ok {
		keystore.Register("fs", fs.NewConfig)
	}
	if !slices.Contains(seal.KEKKinds(), "vault") {
		seal.RegisterKEK("vault", NewKEKConfig)
	}
}

// TestKEKConfig parses seal.vault sections of an fs store: the fields
// of keystore.vault and the transit key, with problems reported at their
// dotted paths.
func TestKEKConfig(t *testing.T) {
	const fsSeal = "keystore:\n  fs:\n    path: /tmp/keys\n    seal:\n      vault:\n"
	tests := []struct {
		name    string
		section string
		want    *KEKConfig
		wantErr []string
	}{
		{
			name:    "approle",
			section: "        endpoint: https://vault:8200\n        approle: {id: r, secret: s}\n        transit: {engine: t/e, key: kek}\n        status: {ping: 3s}\n",
			want: &KEKConfig{
				ClientConfig: ClientConfig{
					Endpoint: "https://vault:8200",
					AppRole:  AppRoleConfig{ID: "r", Secret: keystore.NewSecret("s")},
					Status:   StatusConfig{Ping: 3 * time.Second},
				},
				Transit: TransitConfig{Engine: "t/e", Key: "kek"},
			},
		},
		{
			name:    "incomplete",
			section: "        approle: {id: r}\n",
			wantErr: []string{
				"keystore.fs.seal.vault.endpoint: required",
				"keystore.fs.seal.vault.approle.secret: required",
				"keystore.fs.seal.vault.transit.key: required",
			},
		},
		{
			name:    "malformed",
			section: "        endpoint: [a, b]\n",
			wantErr: []string{"keystore.fs.seal.vault: line 8: cannot unmarshal !!seq into string"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse([]byte(adminTLS+fsSeal+tt.section), noEnv)
			if keystoretest.CheckErrLines(t, "Parse()", err, tt.wantErr, false) {
				return
			}
			c, ok := f.KeyStore.(*fs.Config)
			if !ok || c.Seal == nil || c.Seal.Vault == nil {
				t.Fatalf("KeyStore = %#v, want an fs config with seal.vault", f.KeyStore)
			}
			got, ok := c.Seal.Vault.KEKConfig.(*KEKConfig)
			if !ok {
				t.Fatalf("seal.vault decoded into %T, want *vault.KEKConfig", c.Seal.Vault.KEKConfig)
			}
			if diff := compareConfig(&Config{ClientConfig: tt.want.ClientConfig, Transit: tt.want.Transit}, &Config{ClientConfig: got.ClientConfig, Transit: got.Transit}); diff != "" {
				t.Errorf("seal.vault mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTransitKEK seals an fs store with a Vault transit key (Vault's API
// served by vaulttest): values are transit ciphertexts recorded with the
// transit key's ID, they read back, are bound to their name, and fail
// clearly while Vault is sealed.
func TestTransitKEK(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Options{})
	v.MountTransit("", "transit")
	v.AddAppRole("", "approle", vaulttest.AppRole{Name: "kes", RoleID: "role", SecretID: "secret", Token: vaulttest.TokenOptions{TTL: time.Hour}})
	dir := t.TempDir()
	ca := filepath.Join(dir, "vault-ca.pem")
	if err := os.WriteFile(ca, v.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := &fs.Config{Path: filepath.Join(dir, "keys"), Seal: &seal.Config{Vault: &seal.VaultConfig{KEKConfig: &KEKConfig{
		ClientConfig: ClientConfig{
			Endpoint: v.URL,
			AppRole:  AppRoleConfig{ID: "role", Secret: keystore.NewSecret("secret")},
			TLS:      TLSConfig{CA: ca},
		},
		Transit: TransitConfig{Key: "kes-kek"},
	}}}}
	if err := conf.Validate(); err != nil {
		t.Fatal(err)
	}
	st, err := conf.Connect(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	if err := st.Create(ctx, "k", []byte("the value")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "keys", "k"))
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := seal.SealedWith(raw); !ok || id != "vault-transit.transit.kes-kek" {
		t.Fatalf("sealed with %q (%t), want vault-transit.transit.kes-kek", id, ok)
	}
	if !bytes.Contains(raw, []byte(":vault:v1:")) || bytes.Contains(raw, []byte("the value")) {
		t.Fatalf("stored value %q is not a transit ciphertext", raw)
	}
	if got, err := st.Get(ctx, "k"); err != nil || string(got) != "the value" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// Moved to another name: refused.
	if err := os.WriteFile(filepath.Join(dir, "keys", "k2"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "k2"); !errors.Is(err, seal.ErrUnseal) {
		t.Fatalf("Get of a moved value = %v, want ErrUnseal", err)
	}
	// Sealed Vault: a clear, fast, unreachable error; then recovery.
	v.Seal()
	start := time.Now()
	_, err = st.Get(ctx, "k")
	if !keystore.IsUnreachable(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("Get while Vault is sealed = %v after %v, want an unreachable error", err, time.Since(start))
	}
	v.Unseal()
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = st.Get(ctx, "k"); err == nil {
			break
		}
	}
	if err != nil || string(got) != "the value" {
		t.Fatalf("Get after unseal = %q, %v", got, err)
	}
}

func TestTransitKEKID(t *testing.T) {
	tests := []struct {
		transit TransitConfig
		want    string
	}{
		{TransitConfig{Key: "kek"}, "vault-transit.transit.kek"},
		{TransitConfig{Engine: "/a/b/", Key: "k:1"}, "vault-transit.a.b.k_1"},
	}
	for _, tt := range tests {
		if got := transitKEKID(tt.transit); got != tt.want {
			t.Errorf("transitKEKID(%+v) = %q, want %q", tt.transit, got, tt.want)
		}
	}
}
