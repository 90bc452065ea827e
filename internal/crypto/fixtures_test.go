package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

// The fixtures were recorded from the original KES server with an fs key
// store; see testdata/kes-fixtures/kes-crypto-fixtures.json.
const fixtureDir = "../../testdata/kes-fixtures"

// loadFixtures reads the fixture file and parses every keystore file.
func loadFixtures(t testing.TB) (*cryptotest.Fixtures, map[string]KeyVersion) {
	t.Helper()
	f, files := cryptotest.LoadFixtures(t, fixtureDir)
	keys := make(map[string]KeyVersion)
	for name, file := range files {
		v, err := ParseKeyVersion(file)
		if err != nil {
			t.Fatalf("ParseKeyVersion(keystore/%s) = %v", name, err)
		}
		keys[name] = v
	}
	return f, keys
}

// eachCase runs f for every case in a parallel subtest named by the case's
// ID, with the parsed key version the case names.
func eachCase(t *testing.T, keys map[string]KeyVersion, cases []cryptotest.FixtureCase, f func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			t.Parallel()
			v, ok := keys[c.Key]
			if !ok {
				t.Fatalf("unknown key %q", c.Key)
			}
			f(t, c, v)
		})
	}
}

// checkBytes fails t if err is not nil or got is not want; what names the
// call.
func checkBytes(t *testing.T, what string, got []byte, err error, want []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %x, want %x", what, got, want)
	}
}

// ad returns the associated data of c: nil if it has no context.
func ad(t testing.TB, c cryptotest.FixtureCase) []byte {
	if !c.HasContext {
		return nil
	}
	return b64(t, c.Context)
}

func TestFixtureKeystoreFiles(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	for _, fk := range f.Keys {
		t.Run(fk.Name, func(t *testing.T) {
			t.Parallel()
			file, err := os.ReadFile(filepath.Join(fixtureDir, "keystore", fk.Name))
			if err != nil {
				t.Fatal(err)
			}
			if string(file) != fk.KeystoreFileText {
				t.Fatalf("keystore file differs from keystore_file_text")
			}
			v := keys[fk.Name]
			if got := v.Key.Algorithm().String(); got != fk.Algorithm {
				t.Errorf("Algorithm() = %s, want %s", got, fk.Algorithm)
			}
			if got := hex.EncodeToString(v.Key.b[:]); got != fk.KeyHex {
				t.Errorf("key = %s, want %s", got, fk.KeyHex)
			}
			if v.HasHMAC != fk.HasHMACKey {
				t.Errorf("HasHMAC = %t, want %t", v.HasHMAC, fk.HasHMACKey)
			}

			if !fk.HasHMACKey { // legacy JSON
				fields := fk.Decoded.Fields
				if fk.Decoded.Format != "legacy-json" || hex.EncodeToString(b64(t, fields.Bytes)) != fk.KeyHex {
					t.Fatalf("fixture: inconsistent legacy entry")
				}
				want, err := time.Parse(time.RFC3339, fields.CreatedAt)
				if err != nil {
					t.Fatal(err)
				}
				if !v.CreatedAt.Equal(want) {
					t.Errorf("CreatedAt = %v, want %v", v.CreatedAt, want)
				}
				if v.CreatedBy != fields.CreatedBy {
					t.Errorf("CreatedBy = %q, want %q", v.CreatedBy, fields.CreatedBy)
				}
				if text, err := v.MarshalText(); err == nil {
					t.Errorf("MarshalText() = %s, nil; want error (no HMAC key)", text)
				}
				return
			}

			d := fk.Decoded
			if d.Key.KeyHex != fk.KeyHex || d.Key.Type != uint32(v.Key.Algorithm()) || d.HMACKey.Hash != 1 {
				t.Errorf("decoded key type %d/hash %d do not match", d.Key.Type, d.HMACKey.Hash)
			}
			if got := hex.EncodeToString(v.HMACKey.b[:]); got != d.HMACKey.KeyHex {
				t.Errorf("HMAC key = %s, want %s", got, d.HMACKey.KeyHex)
			}
			want, err := time.Parse(time.RFC3339Nano, d.CreatedAtRFC3339)
			if err != nil {
				t.Fatal(err)
			}
			if v.CreatedAt != want { // == also checks UTC and no monotonic reading
				t.Errorf("CreatedAt = %v, want %v", v.CreatedAt, want)
			}
			if v.CreatedBy != d.CreatedBy {
				t.Errorf("CreatedBy = %q, want %q", v.CreatedBy, d.CreatedBy)
			}
			if got := hex.EncodeToString(b64(t, string(file))); got != d.ProtobufHex {
				t.Errorf("protobuf = %s, want %s", got, d.ProtobufHex)
			}

			// Re-encoding reproduces the original server's file exactly.
			text, err := v.MarshalText()
			if err != nil {
				t.Fatalf("MarshalText() = %v", err)
			}
			if !bytes.Equal(text, file) {
				t.Errorf("MarshalText() = %s, want %s", text, file)
			}
		})
	}
}

func TestFixtureDecrypt(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, slices.Concat(f.Encrypt, f.Generate, f.Legacy), func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion) {
		ct := b64(t, c.Ciphertext)
		if len(ct) != c.CiphertextLen {
			t.Fatalf("fixture: ciphertext is %d bytes, want %d", len(ct), c.CiphertextLen)
		}
		got, err := v.Key.Decrypt(ct, ad(t, c))
		checkBytes(t, "Decrypt()", got, err, b64(t, c.Plaintext))
	})
}

// TestFixtureEncrypt reproduces every ciphertext of the original server by
// feeding its IV and nonce as the random input.
func TestFixtureEncrypt(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, slices.Concat(f.Encrypt, f.Generate), func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion) {
		want := b64(t, c.Ciphertext)
		pt := b64(t, c.Plaintext)
		if len(want) != len(pt)+Overhead {
			t.Errorf("fixture: len(ciphertext) = %d, want len(plaintext)+%d", len(want), Overhead)
		}
		got, err := v.Key.Encrypt(pt, ad(t, c), bytes.NewReader(want[len(want)-28:]))
		checkBytes(t, "Encrypt()", got, err, want)
	})
}

func TestFixtureNegative(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, f.Negative, func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion) {
		got, err := v.Key.Decrypt(b64(t, c.Ciphertext), ad(t, c))
		if err != ErrDecrypt {
			t.Errorf("Decrypt() = %x, %v; want ErrDecrypt", got, err)
		}
		if c.WantStatus != 400 || c.WantMessage != ErrDecrypt.Error() {
			t.Errorf("fixture wants %d %q; ErrDecrypt is %q (400)", c.WantStatus, c.WantMessage, ErrDecrypt)
		}
	})
}

func TestFixtureHMAC(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, f.HMAC, func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion) {
		got, err := v.HMAC(b64(t, c.Message))
		if c.ErrMessage != "" {
			if err != ErrNoHMAC || c.ErrMessage != ErrNoHMAC.Error() || c.ErrStatus != 409 {
				t.Errorf("HMAC() = %x, %v; fixture wants %d %q", got, err, c.ErrStatus, c.ErrMessage)
			}
			return
		}
		if err != nil {
			t.Fatalf("HMAC() = %v", err)
		}
		if hex.EncodeToString(got) != c.MACHex {
			t.Errorf("HMAC() = %x, want %s", got, c.MACHex)
		}
	})
}

// The fixture ciphertexts must also decrypt when re-wrapped in the MessagePack
// envelope (the fixture file only records JSON-wrapped ones).
func TestFixtureMsgpackRewrap(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, f.Encrypt, func(t *testing.T, c cryptotest.FixtureCase, v KeyVersion) {
		raw := b64(t, c.Ciphertext)
		n := len(raw) - 28
		env := msgpackEnvelope(v.Key.Algorithm().String(), "00000000000000000000000000000000", raw[n:n+16], raw[n+16:], raw[:n], 1, 2)
		got, err := v.Key.Decrypt(env, ad(t, c))
		checkBytes(t, "Decrypt(msgpack)", got, err, b64(t, c.Plaintext))
		js, _ := json.Marshal(jsonCiphertext{AEAD: "ChaCha20Poly1305", IV: raw[n : n+16], Nonce: raw[n+16:], Bytes: raw[:n]})
		if got, err := v.Key.Decrypt(js, ad(t, c)); err != nil || !bytes.Equal(got, b64(t, c.Plaintext)) {
			t.Errorf("Decrypt(json) = %x, %v", got, err)
		}
	})
}
