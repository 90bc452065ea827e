package seal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/keystore/seal"
	"github.com/openkes/openkes/keystore/vault"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

func newKEK(t *testing.T, b byte) *seal.LocalKEK {
	t.Helper()
	k, err := seal.NewLocalKEK(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestConformance(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		return seal.Wrap(mem.New(), newKEK(t, 1))
	})
}

func TestConformanceFS(t *testing.T) {
	keystoretest.Run(t, func(t *testing.T) keystore.Store {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return seal.Wrap(s, newKEK(t, 1))
	})
}

// TestSealedStoreRevealsNothing writes real serialised keys through a
// sealed fs store and scans every stored byte for the key material in
// raw, hex and base64 form.
func TestSealedStoreRevealsNothing(t *testing.T) {
	dir := t.TempDir()
	inner, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := seal.Wrap(inner, newKEK(t, 7))
	ctx := t.Context()

	var secrets [][]byte
	for i := range 20 {
		// The key version draws its key and HMAC key from this stream.
		stream := bytes.Repeat([]byte{byte(i + 1), 0xA5, byte(i * 3), 0x5A}, 16)
		v, err := crypto.GenerateKeyVersion(crypto.AES256, time.Now().UTC(), "creator", bytes.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		text, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		name := "key-" + string(rune('a'+i))
		if err := st.Create(ctx, name, text); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(ctx, name)
		if err != nil || !bytes.Equal(got, text) {
			t.Fatalf("Get(%s) = %q, %v; want the created value", name, got, err)
		}
		secrets = append(secrets, stream[:32], stream[32:64], text)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 {
		t.Fatalf("found %d files, want 20", len(entries))
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !seal.IsSealed(data) {
			t.Errorf("%s is not sealed: %.40q", e.Name(), data)
		}
		for _, s := range secrets {
			for _, form := range [][]byte{s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s))} {
				if bytes.Contains(data, form[:min(len(form), 24)]) {
					t.Fatalf("%s contains key material in the clear", e.Name())
				}
			}
		}
	}
}

func TestUnsealedValuesStillRead(t *testing.T) {
	inner := mem.New()
	ctx := t.Context()
	plain := []byte("eyJieXRlcyI6IkFBQUEifQ==")
	if err := inner.Create(ctx, "old", plain); err != nil {
		t.Fatal(err)
	}
	st := seal.Wrap(inner, newKEK(t, 1)).(*seal.Store)
	got, err := st.Get(ctx, "old")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Get(old) = %q, %v; want the unsealed value as stored", got, err)
	}
	if need, err := st.NeedsReseal(ctx, "old"); err != nil || !need {
		t.Errorf("NeedsReseal(old) = %t, %v; want true", need, err)
	}
	if err := st.Create(ctx, "new", plain); err != nil {
		t.Fatal(err)
	}
	if need, err := st.NeedsReseal(ctx, "new"); err != nil || need {
		t.Errorf("NeedsReseal(new) = %t, %v; want false", need, err)
	}
}

func TestKEKRotationAndMismatch(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	k1, k2 := newKEK(t, 1), newKEK(t, 2)
	if k1.ID() == k2.ID() || !strings.HasPrefix(k1.ID(), "local-") {
		t.Fatalf("KEK IDs %q and %q", k1.ID(), k2.ID())
	}
	if err := seal.Wrap(inner, k1).Create(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.Get(ctx, "k")
	if id, ok := seal.SealedWith(raw); !ok || id != k1.ID() {
		t.Fatalf("SealedWith = %q, %t; want %q", id, ok, k1.ID())
	}

	// k2 current, k1 old: still readable, and new values use k2.
	rotated := seal.Wrap(inner, k2, k1).(*seal.Store)
	if got, err := rotated.Get(ctx, "k"); err != nil || string(got) != "value" {
		t.Fatalf("Get after rotation = %q, %v", got, err)
	}
	if need, _ := rotated.NeedsReseal(ctx, "k"); !need {
		t.Error("a value sealed with an old KEK does not need resealing")
	}

	// k2 alone: a clear error naming the missing KEK.
	_, err := seal.Wrap(inner, k2).Get(ctx, "k")
	if !errors.Is(err, seal.ErrUnseal) || !strings.Contains(err.Error(), k1.ID()) {
		t.Fatalf("Get without the sealing KEK = %v; want ErrUnseal naming %s", err, k1.ID())
	}
}

func TestTamperedOrMovedValues(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	st := seal.Wrap(inner, newKEK(t, 1))
	if err := st.Create(ctx, "a", []byte("value-a")); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.Get(ctx, "a")

	// The same sealed value under another name does not unseal.
	if err := inner.Create(ctx, "b", raw); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "b"); !errors.Is(err, seal.ErrUnseal) {
		t.Errorf("Get of a value moved to another name = %v; want ErrUnseal", err)
	}
	// A flipped payload byte, a truncated payload and garbage fail too.
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-3] ^= 1
	for name, v := range map[string][]byte{
		"flipped":   flipped,
		"truncated": raw[:len(raw)-20],
		"garbage":   []byte("kes:sealed:v1:" + newKEK(t, 1).ID() + ":!!!"),
		"no id":     []byte("kes:sealed:v1:"),
		"future":    []byte("kes:sealed:v9:x:y"),
	} {
		key := "t-" + strings.ReplaceAll(name, " ", "-")
		if err := inner.Create(ctx, key, v); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Get(ctx, key); !errors.Is(err, seal.ErrUnseal) {
			t.Errorf("%s: Get = %q, %v; want ErrUnseal", name, got, err)
		}
	}
}

func TestReadKEKFile(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0x42}, 32)
	want, _ := seal.NewLocalKEK(key)
	tests := []struct {
		name    string
		content []byte
		ok      bool
	}{
		{"raw", key, true},
		{"hex", []byte(hex.EncodeToString(key) + "\n"), true},
		{"base64", []byte("  " + base64.StdEncoding.EncodeToString(key) + "\n"), true},
		{"short", key[:31], false},
		{"base64 of 16 bytes", []byte(base64.StdEncoding.EncodeToString(key[:16])), false},
		{"empty", nil, false},
		{"text", []byte("correct horse battery staple\n"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := seal.ReadKEKFile(path)
			if tt.ok != (err == nil) {
				t.Fatalf("ReadKEKFile = %v, want ok=%t", err, tt.ok)
			}
			if err == nil && k.ID() != want.ID() {
				t.Errorf("ID = %s, want %s", k.ID(), want.ID())
			}
			if err != nil && bytes.Contains([]byte(err.Error()), tt.content) && len(tt.content) > 0 {
				t.Errorf("error %q repeats the file content", err)
			}
		})
	}
	if _, err := seal.ReadKEKFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadKEKFile of a missing file succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "kek")
	os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("nope"), 0o600)
	tests := []struct {
		name string
		conf seal.Config
		want []string
	}{
		{"ok", seal.Config{KEKFile: good, OldKEKFiles: []string{good}}, nil},
		{"missing", seal.Config{}, []string{"seal: no KEK specified (kek_file or vault)"}},
		{"both", seal.Config{KEKFile: good, Vault: &seal.VaultConfig{}}, []string{"seal: more than one KEK specified (kek_file, vault)"}},
		{"vault incomplete", seal.Config{Vault: &seal.VaultConfig{}}, []string{
			"seal.vault.endpoint: required",
			"seal.vault: no authentication method specified (approle or kubernetes)",
			"seal.vault.transit.key: required",
		}},
		{"bad files", seal.Config{KEKFile: bad, OldKEKFiles: []string{good, filepath.Join(dir, "nope")}}, []string{
			"seal.kek_file: " + bad + ": not a 256-bit key",
			"seal.old_kek_files[1]: open " + filepath.Join(dir, "nope"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := seal.PrefixErrors(tt.conf.Validate())
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("Validate =\n%v\nwant %d errors", err, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

type watchStore struct {
	keystore.Store
	called bool
}

func (w *watchStore) Watch(ctx context.Context, changed func(string)) error {
	w.called = true
	changed("x")
	return nil
}

func TestWatcherForwarded(t *testing.T) {
	if _, ok := seal.Wrap(mem.New(), newKEK(t, 1)).(keystore.Watcher); ok {
		t.Error("a sealed store without a watching inner store implements Watcher")
	}
	inner := &watchStore{Store: mem.New()}
	w, ok := seal.Wrap(inner, newKEK(t, 1)).(keystore.Watcher)
	if !ok {
		t.Fatal("a sealed watching store does not implement Watcher")
	}
	var got string
	w.Watch(t.Context(), func(n string) { got = n })
	if !inner.called || got != "x" {
		t.Error("Watch not forwarded to the inner store")
	}
}

// TestVaultTransitKEK seals an fs store with a Vault transit key (Vault's
// API served by vaulttest): values are transit ciphertexts recorded with
// the transit key's ID, they read back, are bound to their name, and
// fail clearly while Vault is sealed.
func TestVaultTransitKEK(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Options{})
	v.MountTransit("", "transit")
	v.AddAppRole("", "approle", vaulttest.AppRole{Name: "kes", RoleID: "role", SecretID: "secret", Token: vaulttest.TokenOptions{TTL: time.Hour}})
	dir := t.TempDir()
	ca := filepath.Join(dir, "vault-ca.pem")
	if err := os.WriteFile(ca, v.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := &fs.Config{Path: filepath.Join(dir, "keys"), Seal: &seal.Config{Vault: &seal.VaultConfig{
		ClientConfig: vault.ClientConfig{
			Endpoint: v.URL,
			AppRole:  vault.AppRoleConfig{ID: "role", Secret: keystore.NewSecret("secret")},
			TLS:      vault.TLSConfig{CA: ca},
		},
		Transit: vault.TransitConfig{Key: "kes-kek"},
	}}}
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

func TestString(t *testing.T) {
	dir := t.TempDir()
	inner, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	kek := newKEK(t, 1)
	want := "Filesystem: " + dir + " (sealed, KEK " + kek.ID() + ")"
	if got := fmt.Sprint(seal.Wrap(inner, kek)); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := fmt.Sprint(seal.Wrap(&watchStore{Store: inner}, kek)); !strings.HasSuffix(got, "(sealed, KEK "+kek.ID()+")") {
		t.Errorf("String() of a watching store = %q", got)
	}
}
