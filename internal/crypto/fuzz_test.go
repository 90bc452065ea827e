package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

// Seeds come from the upstream test vectors and the recorded fixtures (f.Add) and
// from hand-made edge cases in testdata/fuzz/.

func FuzzDecrypt(f *testing.F) {
	for _, v := range specDecryptVectors(f) {
		f.Add(v.ciphertext, v.ad, v.plaintext)
	}
	f.Add([]byte{0x95}, []byte(nil), []byte(nil))
	f.Add([]byte("{"), []byte("ctx"), []byte("hello"))
	fx, _ := loadFixtures(f)
	for _, c := range append(append(fx.Encrypt, fx.Legacy...), fx.Negative...) {
		f.Add(b64(f, c.Ciphertext), ad(f, c), b64(f, c.Plaintext))
	}

	keyBytes := b64(f, cryptotest.Key67)
	keys := []SecretKey{newKey(f, AES256, keyBytes), newKey(f, ChaCha20, keyBytes), newKey(f, AES256, make([]byte, 32))}
	f.Fuzz(func(t *testing.T, ciphertext, ad, plaintext []byte) {
		in := bytes.Clone(ciphertext)
		for _, key := range keys {
			// Arbitrary input: never a panic, and either ErrDecrypt or a plaintext.
			got, err := key.Decrypt(ciphertext, ad)
			if err != nil && err != ErrDecrypt {
				t.Fatalf("Decrypt() = %v, want nil or ErrDecrypt", err)
			}
			if err == nil && len(got) > len(ciphertext) {
				t.Fatalf("Decrypt() returned %d bytes from %d", len(got), len(ciphertext))
			}
			if !bytes.Equal(in, ciphertext) {
				t.Fatalf("Decrypt modified its input")
			}

			// Round trip, also through both legacy envelopes.
			c, err := key.Encrypt(plaintext, ad, nil)
			if err != nil {
				t.Fatalf("Encrypt() = %v", err)
			}
			if len(c) != len(plaintext)+Overhead {
				t.Fatalf("len(Encrypt()) = %d, want %d", len(c), len(plaintext)+Overhead)
			}
			n := len(c) - suffixSize
			js, _ := json.Marshal(jsonCiphertext{AEAD: "AES-256-GCM-HMAC-SHA-256", IV: c[n : n+ivSize], Nonce: c[n+ivSize:], Bytes: c[:n]})
			mp := msgpackEnvelope("ChaCha20", "id", c[n:n+ivSize], c[n+ivSize:], c[:n], 1, 4)
			checkDecrypt(t, key, plaintext, ad, map[string][]byte{"raw": c, "json": js, "msgpack": mp})
		}
	})
}

func FuzzParseKeyVersion(f *testing.F) {
	f.Add([]byte(protoVector))
	f.Add([]byte(`{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}`))
	f.Add([]byte("CiQKIMiHG7XrN94F"))
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "keystore", "*"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := isJSON(b), json.Valid(b); got != want {
			t.Fatalf("isJSON(%q) = %t, json.Valid = %t", b, got, want)
		}
		v, err := ParseKeyVersion(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidKeyVersion) {
				t.Fatalf("ParseKeyVersion() = %v, want ErrInvalidKeyVersion", err)
			}
			return
		}
		if a := v.Key.Algorithm(); a != AES256 && a != ChaCha20 {
			t.Fatalf("ParseKeyVersion() algorithm = %d", a)
		}
		text, err := v.MarshalText()
		if !v.HasHMAC { // legacy JSON
			if err == nil {
				t.Fatalf("MarshalText() of a key without HMAC = nil error")
			}
			return
		}
		if err != nil {
			t.Fatalf("MarshalText() of a parsed key = %v", err)
		}
		w, err := ParseKeyVersion(text)
		if err != nil {
			t.Fatalf("ParseKeyVersion(MarshalText()) = %v", err)
		}
		if diff := cmp.Diff(v, w); diff != "" || v.CreatedAt != w.CreatedAt {
			t.Fatalf("re-parse mismatch (-first +second):\n%s", diff)
		}
		// The encoding is canonical: encoding again gives the same text.
		if text2, _ := w.MarshalText(); !bytes.Equal(text, text2) {
			t.Fatalf("MarshalText not stable: %s != %s", text, text2)
		}
	})
}
