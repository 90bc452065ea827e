package seal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/mem"
	"github.com/openkes/openkes/keystore/seal"
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

// TestUnsealedValues plants a value that is not sealed in the inner
// store: Get refuses it, naming the key and how to migrate, unless the
// store or the context allows unsealed values; each such read is logged
// at WARN with the key's name and without the value.
func TestUnsealedValues(t *testing.T) {
	plain := []byte(`{"bytes":"cGxhbnRlZCBrZXkgcGxhbnRlZCBrZXkgcGxhbnRlZCE="}`)
	tests := []struct {
		name      string
		allow     bool // Options.AllowUnsealed
		ctxAllows bool // AllowUnsealed(ctx)
	}{
		{name: "refused"},
		{name: "allowed by the store", allow: true},
		{name: "allowed by the context", ctxAllows: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inner := mem.New()
			if err := inner.Create(t.Context(), "planted", plain); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			st := seal.WrapWith(inner, seal.Options{AllowUnsealed: tt.allow, Log: log}, newKEK(t, 1)).(*seal.Store)
			ctx := t.Context()
			if tt.ctxAllows {
				ctx = seal.AllowUnsealed(ctx)
			}
			got, err := st.Get(ctx, "planted")
			if !tt.allow && !tt.ctxAllows {
				var u *seal.UnsealedError
				if !errors.As(err, &u) || u.Name != "planted" || got != nil {
					t.Fatalf("Get(planted) = %q, %v; want nil and an *UnsealedError for planted", got, err)
				}
				for _, want := range []string{`key "planted"`, "stored unsealed", "kes migrate --force", "seal.allow_unsealed", "docs/production.md"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if errors.Is(err, keystore.ErrNotFound) || keystore.IsUnreachable(err) || errors.Is(err, seal.ErrUnseal) {
					t.Errorf("error %v is mistaken for not found, unreachable or tampered", err)
				}
				if logs.Len() != 0 {
					t.Errorf("refusal logged %q, want nothing", logs.String())
				}
				return
			}
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("Get(planted) = %q, %v; want the value as stored", got, err)
			}
			line := logs.String()
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "key=planted") || strings.Count(line, "\n") != 1 {
				t.Errorf("log = %q, want one WARN line naming the key", line)
			}
			if strings.Contains(line, "cGxhbnRlZCBrZXkg") {
				t.Errorf("log %q contains the value", line)
			}
			// Sealed values are read without a warning.
			logs.Reset()
			if err := st.Create(ctx, "sealed", plain); err != nil {
				t.Fatal(err)
			}
			if got, err := st.Get(ctx, "sealed"); err != nil || !bytes.Equal(got, plain) || logs.Len() != 0 {
				t.Errorf("Get(sealed) = %q, %v, log %q; want the value and no log", got, err, logs.String())
			}
		})
	}
}

func TestNeedsReseal(t *testing.T) {
	inner := mem.New()
	ctx := t.Context()
	plain := []byte("eyJieXRlcyI6IkFBQUEifQ==")
	if err := inner.Create(ctx, "old", plain); err != nil {
		t.Fatal(err)
	}
	st := seal.Wrap(inner, newKEK(t, 1)).(*seal.Store)
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

// TestSealed checks the marker that consumers find by type assertion,
// also on a store wrapping a keystore.Watcher.
func TestSealed(t *testing.T) {
	type sealed interface{ Sealed() bool }
	for name, st := range map[string]keystore.Store{
		"plain":    seal.Wrap(mem.New(), newKEK(t, 1)),
		"watching": seal.Wrap(&watchStore{Store: mem.New()}, newKEK(t, 1)),
	} {
		if s, ok := st.(sealed); !ok || !s.Sealed() {
			t.Errorf("%s: %T does not report Sealed() = true", name, st)
		}
	}
	if _, ok := keystore.Store(mem.New()).(sealed); ok {
		t.Error("mem.Store reports Sealed")
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
		{"vault not built in", seal.Config{Vault: &seal.VaultConfig{}}, []string{"seal.vault: not built into this binary (kes_omit_vault)"}},
		{"vault", seal.Config{Vault: &seal.VaultConfig{KEKConfig: &fakeKEKConfig{}}}, []string{
			"seal.vault.endpoint: required",
			"seal.vault: no authentication method specified",
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

// fakeKEKConfig is registered as the KEK kind "vault" for these tests:
// a KMS whose KEK is a local one, counting closes.
type fakeKEKConfig struct {
	Endpoint string `yaml:"endpoint"`
	Key      byte   `yaml:"key"`
	closed   *int
}

func (c *fakeKEKConfig) Validate() error {
	if c.Endpoint == "" {
		return errors.Join(errors.New("endpoint: required"), errors.New("no authentication method specified (fake)"))
	}
	return nil
}

func (c *fakeKEKConfig) Open(context.Context, *slog.Logger) (seal.KEK, error) {
	k, err := seal.NewLocalKEK(bytes.Repeat([]byte{c.Key}, 32))
	if err != nil {
		return nil, err
	}
	return &closingKEK{LocalKEK: k, closed: c.closed}, nil
}

type closingKEK struct {
	*seal.LocalKEK
	closed *int
}

func (k *closingKEK) Close() error {
	if k.closed != nil {
		*k.closed++
	}
	return nil
}

var fakeCloses int

func init() {
	seal.RegisterKEK("vault", func() seal.KEKConfig { return &fakeKEKConfig{closed: &fakeCloses} })
}

// TestKEKKind decodes a seal section naming a registered KEK kind, seals
// with the KEK it opens, and closes it with the store.
func TestKEKKind(t *testing.T) {
	var c seal.Config
	if err := yaml.Unmarshal([]byte("vault: {endpoint: https://kms, key: 7}\nallow_unsealed: true\n"), &c); err != nil {
		t.Fatal(err)
	}
	fake, ok := c.Vault.KEKConfig.(*fakeKEKConfig)
	if !ok || fake.Endpoint != "https://kms" || !c.AllowUnsealed {
		t.Fatalf("decoded %#v, %#v; want the fake KEK config and allow_unsealed", c, c.Vault.KEKConfig)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	inner := mem.New()
	st, err := c.Wrap(t.Context(), inner, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.Get(t.Context(), "k")
	if id, _ := seal.SealedWith(raw); id != newKEK(t, 7).ID() {
		t.Errorf("sealed with %q, want the KMS's KEK %q", id, newKEK(t, 7).ID())
	}
	if err := inner.Create(t.Context(), "plain", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(t.Context(), "plain"); err != nil || string(got) != "p" {
		t.Errorf("Get(plain) with allow_unsealed = %q, %v; want p", got, err)
	}
	before := fakeCloses
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if fakeCloses != before+1 {
		t.Errorf("Close closed the KEK %d times, want once", fakeCloses-before)
	}
	if kinds := seal.KEKKinds(); !slices.Equal(kinds, []string{"vault"}) {
		t.Errorf("KEKKinds() = %q, want [vault]", kinds)
	}
	defer func() {
		if recover() == nil {
			t.Error("RegisterKEK of a registered kind did not panic")
		}
	}()
	seal.RegisterKEK("vault", func() seal.KEKConfig { return new(fakeKEKConfig) })
}

// TestNilConfigWrap: a store section without a seal has a nil
// *seal.Config, whose Wrap returns the store as it is.
func TestNilConfigWrap(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var c *seal.Config
	st, err := c.Wrap(t.Context(), inner, nil)
	if err != nil || st != keystore.Store(inner) {
		t.Fatalf("nil Config.Wrap = %v, %v; want the inner store", st, err)
	}
}
