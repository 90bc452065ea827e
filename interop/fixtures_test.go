package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

// fixtureDir holds keys and ciphertexts recorded from the original KES
// server (a copy of shared/fixtures).
const fixtureDir = "../testdata/kes-fixtures"

// fixtures is the fixture file; see cryptotest.Fixtures.
type fixtures = cryptotest.Fixtures

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// TestOriginalServerFixtures serves the key files written by the original
// server from an fs key store and checks, through the upstream SDK, that
// every recorded ciphertext decrypts, every negative case fails with the
// recorded status and message, and every HMAC is reproduced.
func TestOriginalServerFixtures(t *testing.T) {
	fx, files := readFixtures(t)
	srv, c := startAdminServer(t, serverOptions{KeyFiles: files})
	ctx := t.Context()

	decryptCases := append(append(append([]cryptotest.FixtureCase{}, fx.Encrypt...), fx.Generate...), fx.Legacy...)
	if len(decryptCases) != 25 || len(fx.Negative) != 12 || len(fx.HMAC) != 6 {
		t.Fatalf("fixture file has %d decrypt, %d negative and %d HMAC cases, want 25, 12 and 6", len(decryptCases), len(fx.Negative), len(fx.HMAC))
	}
	for _, tc := range decryptCases {
		t.Run(tc.ID, func(t *testing.T) {
			var context []byte
			if tc.HasContext {
				context = b64(t, tc.Context)
			}
			pt, err := c.Decrypt(ctx, tc.Key, b64(t, tc.Ciphertext), context)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if want := b64(t, tc.Plaintext); !bytes.Equal(pt, want) {
				t.Fatalf("Decrypt = %x, want %x", pt, want)
			}
		})
	}
	for _, tc := range fx.Negative {
		t.Run(tc.ID, func(t *testing.T) {
			_, err := c.Decrypt(ctx, tc.Key, b64(t, tc.Ciphertext), b64(t, tc.Context))
			if want := kes.NewError(tc.WantStatus, tc.WantMessage); !errors.Is(err, want) {
				t.Fatalf("Decrypt: err = %v, want %d %q", err, tc.WantStatus, tc.WantMessage)
			}
		})
	}
	for _, tc := range fx.HMAC {
		t.Run(tc.ID, func(t *testing.T) {
			mac, err := c.HMAC(ctx, tc.Key, b64(t, tc.Message))
			if tc.ErrStatus != 0 {
				if want := kes.NewError(tc.ErrStatus, tc.ErrMessage); !errors.Is(err, want) {
					t.Fatalf("HMAC: err = %v, want %d %q", err, tc.ErrStatus, tc.ErrMessage)
				}
				return
			}
			if err != nil || hex.EncodeToString(mac) != tc.MACHex {
				t.Fatalf("HMAC = %x, %v, want %s", mac, err, tc.MACHex)
			}
		})
	}
	// The original's keys still serve new requests.
	for _, k := range fx.Keys {
		dek, err := c.GenerateKey(ctx, k.Name, []byte("ctx"))
		if err != nil {
			t.Fatalf("GenerateKey(%s): %v", k.Name, err)
		}
		if pt, err := c.Decrypt(ctx, k.Name, dek.Ciphertext, []byte("ctx")); err != nil || !bytes.Equal(pt, dek.Plaintext) {
			t.Fatalf("Decrypt(%s, new DEK) = %x, %v", k.Name, pt, err)
		}
	}
	// Reading a key must never rewrite the original's files.
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(srv.Dir, "keys", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("key file %s changed after use", name)
		}
	}
}

// readFixtures reads the fixture file and the original's key files.
func readFixtures(t *testing.T) (fixtures, map[string][]byte) {
	t.Helper()
	fx, files := cryptotest.LoadFixtures(t, fixtureDir)
	return *fx, files
}

// checkStoredFixtures checks a server whose key store holds the
// original's key files: checkFixtures, ListKeys("fixture") returns
// exactly the fixture keys, and each of them serves a new data key.
func checkStoredFixtures(t *testing.T, c *kes.Client, fx fixtures) {
	t.Helper()
	ctx := t.Context()
	checkFixtures(t, c, fx)
	var want []string
	for _, k := range fx.Keys {
		want = append(want, k.Name)
	}
	slices.Sort(want)
	names, _, err := c.ListKeys(ctx, "fixture", 0)
	if err != nil || !slices.Equal(names, want) {
		t.Errorf("ListKeys = %q, %v; want %q", names, err, want)
	}
	for _, k := range fx.Keys {
		if err := roundTrip(ctx, c, c, k.Name); err != nil {
			t.Error(err)
		}
	}
}

// checkMigrate runs kes migrate from an fs key store holding files into
// the key store of the YAML section store (extra files, such as a CA,
// are written next to the configs) and from there into another, empty fs
// key store. After the first, stored(name) must return the key file of
// name; after the second, the new directory must hold every key file byte
// for byte. If out is not nil, it checks the output of each run. args are
// added to the second run (e.g. a pattern).
func checkMigrate(t *testing.T, files map[string][]byte, store string, extra map[string][]byte,
	stored func(name string) ([]byte, bool), out func(string), args ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"from", "back"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, "from"), name, data)
	}
	for name, data := range extra {
		writeFile(t, dir, name, data)
	}
	writeFile(t, dir, "fs.yml", []byte("keystore:\n  fs:\n    path: from\n"))
	writeFile(t, dir, "back.yml", []byte("keystore:\n  fs:\n    path: back\n"))
	writeFile(t, dir, "store.yml", []byte("keystore:\n"+store))
	migrate := func(from, to string, args ...string) {
		t.Helper()
		stdout, stderr, code := runKes(t, dir, append([]string{"migrate", "--from", from, "--to", to}, args...)...)
		if code != 0 {
			t.Fatalf("kes migrate --from %s --to %s: exit %d\n%s\n%s", from, to, code, stdout, stderr)
		}
		if out != nil {
			out(stdout + stderr)
		}
	}
	migrate("fs.yml", "store.yml")
	for name, data := range files {
		if got, ok := stored(name); !ok || !bytes.Equal(got, data) {
			t.Errorf("key %s after migrating in = %q, %t; want the key file", name, got, ok)
		}
	}
	migrate("store.yml", "back.yml", args...)
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, "back", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("key %s after migrating out = %q, %v; want the key file", name, got, err)
		}
	}
}

// checkFixtures decrypts every recorded ciphertext and reproduces every
// recorded HMAC through c.
func checkFixtures(t *testing.T, c *kes.Client, fx fixtures) {
	t.Helper()
	ctx := t.Context()
	for _, tc := range slices.Concat(fx.Encrypt, fx.Generate, fx.Legacy) {
		var context []byte
		if tc.HasContext {
			context = b64(t, tc.Context)
		}
		pt, err := c.Decrypt(ctx, tc.Key, b64(t, tc.Ciphertext), context)
		if err != nil || !bytes.Equal(pt, b64(t, tc.Plaintext)) {
			t.Errorf("%s: Decrypt = %x, %v; want the recorded plaintext", tc.ID, pt, err)
		}
	}
	for _, tc := range fx.Negative {
		_, err := c.Decrypt(ctx, tc.Key, b64(t, tc.Ciphertext), b64(t, tc.Context))
		if want := kes.NewError(tc.WantStatus, tc.WantMessage); !errors.Is(err, want) {
			t.Errorf("%s: Decrypt: err = %v, want %d %q", tc.ID, err, tc.WantStatus, tc.WantMessage)
		}
	}
	for _, tc := range fx.HMAC {
		mac, err := c.HMAC(ctx, tc.Key, b64(t, tc.Message))
		switch {
		case tc.ErrStatus != 0:
			if want := kes.NewError(tc.ErrStatus, tc.ErrMessage); !errors.Is(err, want) {
				t.Errorf("%s: HMAC: err = %v, want %d %q", tc.ID, err, tc.ErrStatus, tc.ErrMessage)
			}
		case err != nil || hex.EncodeToString(mac) != tc.MACHex:
			t.Errorf("%s: HMAC = %x, %v; want %s", tc.ID, mac, err, tc.MACHex)
		}
	}
}
