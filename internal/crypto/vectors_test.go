package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func newKey(t testing.TB, alg Algorithm, b []byte) SecretKey {
	t.Helper()
	k, err := NewSecretKey(alg, b)
	if err != nil {
		t.Fatalf("NewSecretKey(%v) = %v", alg, err)
	}
	return k
}

type decryptVector struct {
	name       string
	alg        Algorithm
	key        []byte
	ad         []byte
	ciphertext []byte
	plaintext  []byte
}

func specDecryptVectors(t testing.TB) []decryptVector {
	zero := make([]byte, 32)
	zero16 := make([]byte, 16)
	return []decryptVector{
		{"0/json/AES256", AES256, zero, nil, []byte(cryptotest.Vector0), zero16},
		{"1/json/ChaCha20", ChaCha20, zero, nil, []byte(cryptotest.Vector1), zero16},
		{"2/json-with-id/ChaCha20", ChaCha20, zero, nil, []byte(cryptotest.Vector2), zero16},
		{"3/msgpack/AES256", AES256, zero, nil, b64(t, cryptotest.Vector3), zero16},
		{"4/msgpack/ChaCha20", ChaCha20, zero, nil, b64(t, cryptotest.Vector4), zero16},
		{"5/raw/AES256", AES256, zero, nil, b64(t, cryptotest.Vector5), zero16},
		{"6/raw-ad/AES256", AES256, b64(t, cryptotest.Key67), b64(t, cryptotest.AD67), b64(t, cryptotest.Vector6), b64(t, cryptotest.PT67)},
		{"7/raw-ad/ChaCha20", ChaCha20, b64(t, cryptotest.Key67), b64(t, cryptotest.AD67), b64(t, cryptotest.Vector7), b64(t, cryptotest.PT67)},
	}
}

func TestDecryptSpecVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range specDecryptVectors(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := newKey(t, tt.alg, tt.key)
			in := bytes.Clone(tt.ciphertext)
			got, err := key.Decrypt(in, tt.ad)
			if err != nil {
				t.Fatalf("Decrypt() = %v, want nil", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Decrypt() = %x, want %x", got, tt.plaintext)
			}
			if !bytes.Equal(in, tt.ciphertext) {
				t.Errorf("Decrypt modified its input")
			}
			// The key's algorithm decides, so the other algorithm must fail.
			other := newKey(t, AES256+ChaCha20-tt.alg, tt.key)
			if _, err := other.Decrypt(tt.ciphertext, tt.ad); err != ErrDecrypt {
				t.Errorf("Decrypt() with %v key = %v, want ErrDecrypt", other.Algorithm(), err)
			}
			// A wrong associated data must fail.
			if _, err := key.Decrypt(tt.ciphertext, append(bytes.Clone(tt.ad), 'x')); err != ErrDecrypt {
				t.Errorf("Decrypt() with wrong AD = %v, want ErrDecrypt", err)
			}
		})
	}
}

// TestEncryptSpecVectors reproduces the raw vectors byte for byte by feeding
// their IV and nonce as the random input.
func TestEncryptSpecVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range specDecryptVectors(t) {
		if !strings.Contains(tt.name, "raw") {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := newKey(t, tt.alg, tt.key)
			rand := bytes.NewReader(tt.ciphertext[len(tt.ciphertext)-28:])
			got, err := key.Encrypt(tt.plaintext, tt.ad, rand)
			if err != nil {
				t.Fatalf("Encrypt() = %v", err)
			}
			if !bytes.Equal(got, tt.ciphertext) {
				t.Errorf("Encrypt() = %x, want %x", got, tt.ciphertext)
			}
		})
	}
}

func TestDecryptMustFail(t *testing.T) {
	t.Parallel()
	zero := make([]byte, 32)
	aes := newKey(t, AES256, zero)
	chacha := newKey(t, ChaCha20, zero)
	v3 := b64(t, cryptotest.Vector3)

	tests := []struct {
		name       string
		key        SecretKey
		ciphertext []byte
	}{
		{"json/unknown-aead", aes, []byte(strings.Replace(cryptotest.Vector0, `"AES-256-GCM-HMAC-SHA-256"`, `"AES-256-GCM"`, 1))},
		{"json/iv-20-bytes", aes, []byte(strings.Replace(cryptotest.Vector0, "xLxIN3tSCkg2xMafuvwUwg==", "EjOY4JKqjIrPmQ5z1KSR8zlhggY=", 1))},
		{"json/nonce-8-bytes", aes, []byte(strings.Replace(cryptotest.Vector0, "gu0mGwUkwcvMEoi5", "SXAbms731/c=", 1))},
		{"json/nonce-8-bytes-2", chacha, []byte(strings.Replace(cryptotest.Vector1, "8/kHMnCMs3h9NZ2a", "efY+4kYF9n8=", 1))},
		{"json/tampered-bytes/AES256", aes, []byte(strings.Replace(cryptotest.Vector0, "WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc=", "QTza1g5oX3f9cGJMbY1xJwWPj1F7R2VnNl6XpFKYQy0=", 1))},
		{"json/tampered-bytes/ChaCha20", chacha, []byte(strings.Replace(cryptotest.Vector1, "cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE=", "TTi8pkO+Jh1JWAHvPxZeUk/iVoBPUCE4ZSVGBy3fW2s=", 1))},
		{"json/missing-comma", aes, []byte(strings.Replace(cryptotest.Vector0, `==","nonce"`, `==" "nonce"`, 1))},
		{"json/trailing-data", aes, []byte(cryptotest.Vector0 + "{}")},
		{"json/iv-not-base64", aes, []byte(strings.Replace(cryptotest.Vector0, "xLxIN3tSCkg2xMafuvwUwg==", "xLxIN3tSCkg2xMafuvwUwg", 1))},
		{"json/envelope-name-of-msgpack", aes, []byte(strings.Replace(cryptotest.Vector0, `"AES-256-GCM-HMAC-SHA-256"`, `"AES256"`, 1))},
		{"json/empty-object", aes, []byte(`{}`)},
		{"msgpack/trailing-byte", aes, append(bytes.Clone(v3), 0)},
		{"msgpack/truncated", aes, v3[:len(v3)-1]},
		{"msgpack/unknown-algorithm", aes, bytes.Replace(v3, []byte("\xb1AES256-GCM_SHA256"), []byte("\xb1AES256-GCM_SHA384"), 1)},
		{"msgpack/array-of-4", aes, append([]byte{0x94}, v3[1:]...)},
		{"raw/empty", aes, nil},
		{"raw/28-bytes", aes, make([]byte, 28)},
		{"raw/29-bytes", aes, make([]byte, 29)},
		{"raw/44-zero-bytes", chacha, make([]byte, 44)},
		{"raw/only-0x95", aes, []byte{0x95}},
		{"raw/only-brace", aes, []byte{'{'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.key.Decrypt(tt.ciphertext, nil)
			if err != ErrDecrypt {
				t.Errorf("Decrypt() = %x, %v, want ErrDecrypt", got, err)
			}
			if !errors.Is(err, ErrDecrypt) || err.Error() != "decryption failed: ciphertext is not authentic" {
				t.Errorf("Decrypt() error = %q, want the KES wire message", err)
			}
		})
	}
}

// TestDecryptEnvelopeAlgorithmIgnored checks that the algorithm named in a
// legacy envelope is only validated: the key's algorithm decides.
func TestDecryptEnvelopeAlgorithmIgnored(t *testing.T) {
	t.Parallel()
	zero := make([]byte, 32)
	aes := newKey(t, AES256, zero)
	v3 := b64(t, cryptotest.Vector3)
	tests := []struct {
		name       string
		ciphertext []byte
	}{
		{"json/chacha-name-aes-key", []byte(strings.Replace(cryptotest.Vector0, `"AES-256-GCM-HMAC-SHA-256"`, `"ChaCha20Poly1305"`, 1))},
		{"msgpack/chacha-name-aes-key", bytes.Replace(v3, []byte("\xb1AES256-GCM_SHA256"), []byte("\xb2XCHACHA20-POLY1305"), 1)},
		{"msgpack/short-name", bytes.Replace(v3, []byte("\xb1AES256-GCM_SHA256"), []byte("\xa8ChaCha20"), 1)},
		{"json/case-insensitive-names", []byte(strings.Replace(cryptotest.Vector0, `"aead"`, `"AEAD"`, 1))},
		{"json/unknown-field", []byte(strings.Replace(cryptotest.Vector0, `{`, `{"x":[1,2],`, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := aes.Decrypt(tt.ciphertext, nil)
			if err != nil {
				t.Fatalf("Decrypt() = %v, want nil", err)
			}
			if want := make([]byte, 16); !bytes.Equal(got, want) {
				t.Errorf("Decrypt() = %x, want %x", got, want)
			}
		})
	}
}

// msgpackEnvelope builds the legacy envelope with the given length-header
// widths (0 = fixstr, 1, 2 or 4 bytes), to exercise every accepted type.
func msgpackEnvelope(alg, id string, iv, nonce, sealed []byte, strWidth, binWidth int) []byte {
	// head appends the header of a string or binary of length n: the
	// type byte tags[width], then n in width bytes, big-endian.
	head := func(b []byte, tags [5]byte, width, n int) []byte {
		b = append(b, tags[width])
		for i := width - 1; i >= 0; i-- {
			b = append(b, byte(n>>(8*i)))
		}
		return b
	}
	str := func(b []byte, s string) []byte {
		if strWidth == 0 {
			b = append(b, 0xa0|byte(len(s)))
		} else {
			b = head(b, [5]byte{1: 0xd9, 2: 0xda, 4: 0xdb}, strWidth, len(s))
		}
		return append(b, s...)
	}
	bin := func(b, v []byte) []byte {
		return append(head(b, [5]byte{1: 0xc4, 2: 0xc5, 4: 0xc6}, binWidth, len(v)), v...)
	}
	b := []byte{0x95}
	b = str(b, alg)
	b = str(b, id)
	b = bin(b, iv)
	b = bin(b, nonce)
	return bin(b, sealed)
}

func TestDecryptMsgpackEncodings(t *testing.T) {
	t.Parallel()
	key := newKey(t, AES256, make([]byte, 32))
	raw := b64(t, cryptotest.Vector5)
	sealed, iv, nonce := raw[:len(raw)-28], raw[len(raw)-28:len(raw)-12], raw[len(raw)-12:]
	// The byte layout of docs/api.md#ciphertexts for vector 3.
	if got := b64(t, cryptotest.Vector3); !bytes.Equal(got[:19], append([]byte{0x95, 0xb1}, "AES256-GCM_SHA256"...)) || len(got) != 119 {
		t.Fatalf("vector 3 layout differs from docs/api.md#ciphertexts")
	}
	tests := []struct {
		name          string
		str, bin      int
		alg, id       string
		wantDecrypted bool
	}{
		{"fixstr/bin8", 0, 1, "AES256", "66687aadf862bd776c8fc18b8e9f8e2", true}, // fixstr holds at most 31 bytes
		{"str8/bin8", 1, 1, "AES256-GCM_SHA256", "", true},
		{"str16/bin16", 2, 2, "ChaCha20", "x", true},
		{"str32/bin32", 4, 4, "XCHACHA20-POLY1305", "id", true},
		{"empty-algorithm", 0, 1, "", "id", false},
		{"lowercase-algorithm", 0, 1, "aes256", "id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := msgpackEnvelope(tt.alg, tt.id, iv, nonce, sealed, tt.str, tt.bin)
			got, err := key.Decrypt(env, nil)
			if !tt.wantDecrypted {
				if err != ErrDecrypt {
					t.Errorf("Decrypt() = %v, want ErrDecrypt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decrypt() = %v", err)
			}
			if want := make([]byte, 16); !bytes.Equal(got, want) {
				t.Errorf("Decrypt() = %x, want %x", got, want)
			}
		})
	}

	// Malformed element types.
	good := msgpackEnvelope("AES256", "id", iv, nonce, nil, 0, 1) // ends with an empty bin8
	idAsBin := append([]byte{0x95, 0xa6}, "AES256"...)
	idAsBin = append(idAsBin, 0xc4, 0x02, 'i', 'd')
	idAsBin = append(idAsBin, msgpackEnvelope("", "", iv, nonce, sealed, 0, 1)[3:]...)
	bad := map[string][]byte{
		"iv-as-str":      bytes.Replace(msgpackEnvelope("AES256", "id", iv, nonce, sealed, 0, 1), []byte{0xc4, 0x10}, []byte{0xb0}, 1),
		"id-as-bin":      idAsBin,
		"iv-15":          msgpackEnvelope("AES256", "id", iv[:15], nonce, sealed, 0, 1),
		"nonce-13":       msgpackEnvelope("AES256", "id", iv, append(bytes.Clone(nonce), 0), sealed, 0, 1),
		"sealed-too-big": append(bytes.Clone(good[:len(good)-2]), 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3),
		"sealed-as-str":  append(bytes.Clone(good[:len(good)-2]), 0xa3, 1, 2, 3),
		"empty-sealed":   good,
		"str32-huge":     {0x95, 0xdb, 0xff, 0xff, 0xff, 0xff},
	}
	for name, env := range bad {
		t.Run("bad/"+name, func(t *testing.T) {
			t.Parallel()
			if _, err := key.Decrypt(env, nil); err != ErrDecrypt {
				t.Errorf("Decrypt() = %v, want ErrDecrypt", err)
			}
		})
	}
}

// Spec §7.1.
const protoVector = "CiQKIMiHG7XrN94FuwblJJor4f7f6rbqAl7DwsLaiIoyz0D2EAESJAognLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9HgQARoMCNithK0GEID67qYDIkAzZWNmY2RmMzhmY2JlMTQxYWUyNmExMDMwZjgxZTk2Yjc1MzM2NWE0Njc2MGFlNmI1Nzg2OThhOTdjNTlmZDIy"

func TestParseKeyVersionSpecVectors(t *testing.T) {
	t.Parallel()
	mustTime := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name      string
		in        string
		alg       Algorithm
		key       []byte
		hmacKey   []byte // nil: no HMAC key
		createdAt time.Time
		createdBy string
	}{
		{
			name: "legacy-json/minimal",
			in:   `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
			alg:  AES256,
			key:  make([]byte, 32),
		},
		{
			name:      "legacy-json/xchacha",
			in:        `{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}`,
			alg:       ChaCha20,
			key:       b64(t, "9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY="),
			createdAt: mustTime("2009-11-10T23:00:00Z"),
			createdBy: "189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a",
		},
		{
			name:      "legacy-json/algorithm-names",
			in:        `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","algorithm":"AES256-GCM_SHA256"}`,
			alg:       AES256,
			key:       make([]byte, 32),
			createdAt: time.Time{},
		},
		{
			name: "legacy-json/chacha20-whitespace",
			in:   " {\"bytes\" : \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\n\"algorithm\":\"ChaCha20\"}\n",
			alg:  ChaCha20,
			key:  make([]byte, 32),
		},
		{
			name:      "protobuf",
			in:        protoVector,
			alg:       AES256,
			key:       b64(t, "yIcbtes33gW7BuUkmivh/t/qtuoCXsPCwtqIijLPQPY="),
			hmacKey:   b64(t, "nLXl4yqa4cjZTcSbsU6sNnN8kP9ARWkXwa20YQZa9Hg="),
			createdAt: mustTime("2024-01-12T11:39:20.886816+01:00"),
			createdBy: "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyVersion([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseKeyVersion() = %v", err)
			}
			want := KeyVersion{
				Key:       newKey(t, tt.alg, tt.key),
				HasHMAC:   tt.hmacKey != nil,
				CreatedAt: tt.createdAt,
				CreatedBy: tt.createdBy,
			}
			if tt.hmacKey != nil {
				want.HMACKey, _ = NewHMACKey(tt.hmacKey)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ParseKeyVersion() mismatch (-want +got):\n%s", diff)
			}
			if got.Key.b != want.Key.b {
				t.Errorf("key bytes differ") // Equal is tested separately; be direct here
			}
			if tt.hmacKey != nil && got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
			}
		})
	}
}

// TestMarshalTextSpecVector re-encodes the protobuf vector byte for byte.
func TestMarshalTextSpecVector(t *testing.T) {
	t.Parallel()
	v, err := ParseKeyVersion([]byte(protoVector))
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText() = %v", err)
	}
	if string(got) != protoVector {
		t.Errorf("MarshalText() = %s, want %s", got, protoVector)
	}
}

func TestParseKeyVersionMalformedJSON(t *testing.T) {
	t.Parallel()
	const valid = `{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}`
	tests := []struct {
		name string
		in   string
	}{
		{"missing-open-brace", valid[1:]},
		{"missing-quote", strings.Replace(valid, `"bytes"`, `bytes"`, 1)},
		{"missing-colon", strings.Replace(valid, `"bytes":`, `"bytes"`, 1)},
		{"missing-close-brace", valid[:len(valid)-1]},
		{"unknown-algorithm", strings.Replace(valid, "XCHACHA20-POLY1305", "AES128", 1)},
		{"lowercase-algorithm", strings.Replace(valid, "XCHACHA20-POLY1305", "chacha20", 1)},
		{"short-key", `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}`},
		{"long-key", `{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`},
		{"missing-key", `{"algorithm":"AES256"}`},
		{"key-not-base64", `{"bytes":"!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`},
		{"bad-time", strings.Replace(valid, "2009-11-10T23:00:00Z", "2009-11-10 23:00:00", 1)},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"AAAA"`},
		{"number", `1234`},
		{"empty", ``},
		{"protobuf-not-base64", "CiQKIMiHG7XrN94F!"},
		{"protobuf-unpadded", strings.TrimRight(base64.StdEncoding.EncodeToString([]byte{0x0a, 0x00}), "=")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyVersion([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseKeyVersion(%q) = %v, nil; want error", tt.in, got)
			}
			if !errors.Is(err, ErrInvalidKeyVersion) {
				t.Errorf("ParseKeyVersion(%q) = %v, want ErrInvalidKeyVersion", tt.in, err)
			}
		})
	}
}
