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
)

// The fixtures were recorded from the original KES server with an fs key
// store; see testdata/kes-fixtures/kes-crypto-fixtures.json.
const fixtureDir = "../../testdata/kes-fixtures"

type fixtureKey struct {
	Name             string `json:"name"`
	Algorithm        string `json:"algorithm"`
	KeyHex           string `json:"key_hex"`
	HasHMACKey       bool   `json:"has_hmac_key"`
	KeystoreFileText string `json:"keystore_file_text"`
	Decoded          struct {
		Format           string `json:"format"`
		CreatedAtRFC3339 string `json:"created_at_rfc3339"`
		CreatedBy        string `json:"created_by"`
		ProtobufHex      string `json:"protobuf_hex"`
		HMACKey          struct {
			Hash   uint32 `json:"hash"`
			KeyHex string `json:"key_hex"`
		} `json:"hmac_key"`
		Key struct {
			KeyHex string `json:"key_hex"`
			Type   uint32 `json:"type"`
		} `json:"key"`
		Fields struct { // legacy JSON only
			Algorithm string `json:"algorithm"`
			Bytes     string `json:"bytes"`
			CreatedAt string `json:"created_at"`
			CreatedBy string `json:"created_by"`
		} `json:"fields"`
	} `json:"keystore_file_decoded"`
}

type fixtureCipher struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Plaintext  string `json:"plaintext_b64"`
	Context    string `json:"context_b64"`
	HasContext bool   `json:"has_context"`
	Ciphertext string `json:"ciphertext_b64"`
	Len        int    `json:"ciphertext_len"`
	WantStatus int    `json:"want_status"`
	WantMsg    string `json:"want_message"`
}

type fixtureHMAC struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Message    string `json:"message_b64"`
	MACHex     string `json:"mac_hex"`
	ErrStatus  int    `json:"err_status"`
	ErrMessage string `json:"err_message"`
}

type fixtures struct {
	Keys     []fixtureKey    `json:"keys"`
	Encrypt  []fixtureCipher `json:"encrypt"`
	Generate []fixtureCipher `json:"generate"`
	Negative []fixtureCipher `json:"negative"`
	Legacy   []fixtureCipher `json:"legacy_ciphertext_formats"`
	HMAC     []fixtureHMAC   `json:"hmac"`
}

// loadFixtures reads the fixture file and parses every keystore file.
func loadFixtures(t testing.TB) (*fixtures, map[string]KeyVersion) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "kes-crypto-fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) == 0 || len(f.Encrypt) == 0 || len(f.Generate) == 0 || len(f.Negative) == 0 || len(f.Legacy) == 0 || len(f.HMAC) == 0 {
		t.Fatalf("fixture file has an empty section")
	}
	keys := make(map[string]KeyVersion)
	for _, k := range f.Keys {
		file, err := os.ReadFile(filepath.Join(fixtureDir, "keystore", k.Name))
		if err != nil {
			t.Fatal(err)
		}
		v, err := ParseKeyVersion(file)
		if err != nil {
			t.Fatalf("ParseKeyVersion(keystore/%s) = %v", k.Name, err)
		}
		keys[k.Name] = v
	}
	return &f, keys
}

func (c fixtureCipher) ids() (id, key string) { return c.ID, c.Key }
func (c fixtureHMAC) ids() (id, key string)   { return c.ID, c.Key }

// eachCase runs f for every case in a parallel subtest named by the case's
// ID, with the parsed key version the case names.
func eachCase[C interface{ ids() (id, key string) }](t *testing.T, keys map[string]KeyVersion, cases []C, f func(t *testing.T, c C, v KeyVersion)) {
	t.Helper()
	for _, c := range cases {
		id, key := c.ids()
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			v, ok := keys[key]
			if !ok {
				t.Fatalf("unknown key %q", key)
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

func (c *fixtureCipher) ad(t testing.TB) []byte {
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
	eachCase(t, keys, slices.Concat(f.Encrypt, f.Generate, f.Legacy), func(t *testing.T, c fixtureCipher, v KeyVersion) {
		ct := b64(t, c.Ciphertext)
		if len(ct) != c.Len {
			t.Fatalf("fixture: ciphertext is %d bytes, want %d", len(ct), c.Len)
		}
		got, err := v.Key.Decrypt(ct, c.ad(t))
		checkBytes(t, "Decrypt()", got, err, b64(t, c.Plaintext))
	})
}

// TestFixtureEncrypt reproduces every ciphertext of the original server by
// feeding its IV and nonce as the random input.
func TestFixtureEncrypt(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, slices.Concat(f.Encrypt, f.Generate), func(t *testing.T, c fixtureCipher, v KeyVersion) {
		want := b64(t, c.Ciphertext)
		pt := b64(t, c.Plaintext)
		if len(want) != len(pt)+Overhead {
			t.Errorf("fixture: len(ciphertext) = %d, want len(plaintext)+%d", len(want), Overhead)
		}
		got, err := v.Key.Encrypt(pt, c.ad(t), bytes.NewReader(want[len(want)-28:]))
		checkBytes(t, "Encrypt()", got, err, want)
	})
}

func TestFixtureNegative(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, f.Negative, func(t *testing.T, c fixtureCipher, v KeyVersion) {
		got, err := v.Key.Decrypt(b64(t, c.Ciphertext), c.ad(t))
		if err != ErrDecrypt {
			t.Errorf("Decrypt() = %x, %v; want ErrDecrypt", got, err)
		}
		if c.WantStatus != 400 || c.WantMsg != ErrDecrypt.Error() {
			t.Errorf("fixture wants %d %q; ErrDecrypt is %q (400)", c.WantStatus, c.WantMsg, ErrDecrypt)
		}
	})
}

func TestFixtureHMAC(t *testing.T) {
	t.Parallel()
	f, keys := loadFixtures(t)
	eachCase(t, keys, f.HMAC, func(t *testing.T, c fixtureHMAC, v KeyVersion) {
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
	eachCase(t, keys, f.Encrypt, func(t *testing.T, c fixtureCipher, v KeyVersion) {
		raw := b64(t, c.Ciphertext)
		n := len(raw) - 28
		env := msgpackEnvelope(v.Key.Algorithm().String(), "00000000000000000000000000000000", raw[n:n+16], raw[n+16:], raw[:n], 1, 2)
		got, err := v.Key.Decrypt(env, c.ad(t))
		checkBytes(t, "Decrypt(msgpack)", got, err, b64(t, c.Plaintext))
		js, _ := json.Marshal(jsonCiphertext{AEAD: "ChaCha20Poly1305", IV: raw[n : n+16], Nonce: raw[n+16:], Bytes: raw[:n]})
		if got, err := v.Key.Decrypt(js, c.ad(t)); err != nil || !bytes.Equal(got, b64(t, c.Plaintext)) {
			t.Errorf("Decrypt(json) = %x, %v", got, err)
		}
	})
}
