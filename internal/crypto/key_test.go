package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

// seededRand returns a deterministic reader for reproducible tests.
func seededRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"AES256", "AES256", AES256, false},
		{"AES256-GCM_SHA256", "AES256-GCM_SHA256", AES256, false},
		{"ChaCha20", "ChaCha20", ChaCha20, false},
		{"XCHACHA20-POLY1305", "XCHACHA20-POLY1305", ChaCha20, false},
		{"empty", "", 0, true},
		{"lowercase", "aes256", 0, true},
		{"envelope-name", "AES-256-GCM-HMAC-SHA-256", 0, true},
		{"envelope-name-chacha", "ChaCha20Poly1305", 0, true},
		{"space", "AES256 ", 0, true},
		{"invalid", "invalid", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAlgorithm(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}

	names := map[Algorithm]string{0: "invalid", AES256: "AES256", ChaCha20: "ChaCha20", 3: "invalid", 255: "invalid"}
	for alg, want := range names {
		if got := alg.String(); got != want {
			t.Errorf("Algorithm(%d).String() = %q, want %q", alg, got, want)
		}
	}
}

func TestDefaultAlgorithm(t *testing.T) {
	t.Parallel()
	got := DefaultAlgorithm()
	if got != AES256 && got != ChaCha20 {
		t.Fatalf("DefaultAlgorithm() = %v", got)
	}
	if want := map[bool]Algorithm{true: AES256, false: ChaCha20}[hasAESGCMHardware(runtime.GOARCH)]; got != want {
		t.Errorf("DefaultAlgorithm() = %v, want %v", got, want)
	}
	if !hasAESGCMHardware("ppc64le") {
		t.Errorf("ppc64le must always use AES256")
	}
	for _, arch := range []string{"riscv64", "mips", "wasm", "loong64"} {
		if hasAESGCMHardware(arch) {
			t.Errorf("hasAESGCMHardware(%q) = true, want false", arch)
		}
	}
}

func TestNewSecretKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		alg     Algorithm
		n       int
		wantErr bool
	}{
		{"AES256", AES256, 32, false},
		{"ChaCha20", ChaCha20, 32, false},
		{"short", AES256, 31, true},
		{"long", ChaCha20, 33, true},
		{"empty", AES256, 0, true},
		{"alg-0", 0, 32, true},
		{"alg-3", 3, 32, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := bytes.Repeat([]byte{0xab}, tt.n)
			k, err := NewSecretKey(tt.alg, b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewSecretKey(%d, %d bytes) = %v, want error %t", tt.alg, tt.n, err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(strings.ToLower(err.Error()), "abab") {
					t.Errorf("error %q contains key bytes", err)
				}
				return
			}
			if k.Algorithm() != tt.alg || !bytes.Equal(k.b[:], b) {
				t.Errorf("NewSecretKey() = %v/%x", k.Algorithm(), k.b)
			}
			b[0] = 0 // NewSecretKey must have copied
			if k.b[0] != 0xab {
				t.Errorf("NewSecretKey aliases its input")
			}
		})
	}
}

func TestGenerateSecretKey(t *testing.T) {
	t.Parallel()
	a, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSecretKey(AES256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) || a.b == [32]byte{} {
		t.Errorf("GenerateSecretKey(nil) returned equal or zero keys")
	}
	c, _ := GenerateSecretKey(ChaCha20, seededRand(1))
	d, _ := GenerateSecretKey(ChaCha20, seededRand(1))
	if !c.Equal(d) || c.Algorithm() != ChaCha20 {
		t.Errorf("GenerateSecretKey(seeded) not deterministic")
	}
	if _, err := GenerateSecretKey(AES256, failingReader{}); err == nil {
		t.Errorf("GenerateSecretKey(failing reader) = nil error")
	}
	if _, err := GenerateSecretKey(AES256, strings.NewReader("short")); err == nil {
		t.Errorf("GenerateSecretKey(short reader) = nil error")
	}
	if _, err := GenerateSecretKey(0, nil); err == nil {
		t.Errorf("GenerateSecretKey(0) = nil error")
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	b := bytes.Repeat([]byte{7}, 32)
	c := bytes.Repeat([]byte{7}, 32)
	c[31] = 8
	tests := []struct {
		name string
		x, y SecretKey
		want bool
	}{
		{"same", newKey(t, AES256, b), newKey(t, AES256, b), true},
		{"other-bytes", newKey(t, AES256, b), newKey(t, AES256, c), false},
		{"other-algorithm", newKey(t, AES256, b), newKey(t, ChaCha20, b), false},
		{"zero-values", SecretKey{}, SecretKey{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("Equal() = %t, want %t", got, tt.want)
			}
		})
	}
	h1, _ := NewHMACKey(b)
	h2, _ := NewHMACKey(c)
	if !h1.Equal(h1) || h1.Equal(h2) {
		t.Errorf("HMACKey.Equal is wrong")
	}
	if _, err := NewHMACKey(b[:16]); err == nil {
		t.Errorf("NewHMACKey(16 bytes) = nil error")
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	key67 := b64(t, cryptotest.Key67)
	plaintexts := map[string][]byte{
		"empty":    nil,
		"16-zero":  make([]byte, 16),
		"vector67": b64(t, cryptotest.PT67),
		"1KiB":     bytes.Repeat([]byte("0123456789abcdef"), 64),
	}
	ads := map[string][]byte{
		"no-ad":  nil,
		"ad-16":  b64(t, cryptotest.AD67),
		"ad-ctx": []byte(`{"MinIO admin API":"ServerInfoHandler"}`),
	}
	for _, alg := range []Algorithm{AES256, ChaCha20} {
		for ptName, pt := range plaintexts {
			for adName, ad := range ads {
				t.Run(alg.String()+"/"+ptName+"/"+adName, func(t *testing.T) {
					t.Parallel()
					key := newKey(t, alg, key67)
					c1, err := key.Encrypt(pt, ad, nil)
					if err != nil {
						t.Fatalf("Encrypt() = %v", err)
					}
					if len(c1) != len(pt)+44 {
						t.Errorf("len(Encrypt()) = %d, want %d", len(c1), len(pt)+44)
					}
					if cap(c1) != len(c1) {
						t.Errorf("cap(Encrypt()) = %d, want %d", cap(c1), len(c1))
					}
					c2, err := key.Encrypt(pt, ad, nil)
					if err != nil {
						t.Fatal(err)
					}
					if bytes.Equal(c1, c2) {
						t.Errorf("Encrypt() is deterministic")
					}
					for i, c := range [][]byte{c1, c2} {
						got, err := key.Decrypt(c, ad)
						if err != nil {
							t.Fatalf("Decrypt(#%d) = %v", i, err)
						}
						if !bytes.Equal(got, pt) {
							t.Errorf("Decrypt(#%d) = %x, want %x", i, got, pt)
						}
					}
					if _, err := key.Decrypt(c1, append(bytes.Clone(ad), 0)); err != ErrDecrypt {
						t.Errorf("Decrypt(wrong AD) = %v, want ErrDecrypt", err)
					}
					other := newKey(t, alg, make([]byte, 32))
					if _, err := other.Decrypt(c1, ad); err != ErrDecrypt {
						t.Errorf("Decrypt(wrong key) = %v, want ErrDecrypt", err)
					}
					for _, i := range []int{0, len(c1) - 29, len(c1) - 28, len(c1) - 13, len(c1) - 1} {
						if i < 0 {
							continue
						}
						bad := bytes.Clone(c1)
						bad[i] ^= 1
						if _, err := key.Decrypt(bad, ad); err != ErrDecrypt {
							t.Errorf("Decrypt(byte %d flipped) = %v, want ErrDecrypt", i, err)
						}
					}
				})
			}
		}
	}
}

// nil and empty associated data are the same (the API's absent context).
func TestEncryptNilEmptyAD(t *testing.T) {
	t.Parallel()
	for _, alg := range []Algorithm{AES256, ChaCha20} {
		key := newKey(t, alg, make([]byte, 32))
		c, err := key.Encrypt([]byte("x"), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := key.Decrypt(c, []byte{}); err != nil {
			t.Errorf("%v: Decrypt(empty AD) = %v", alg, err)
		}
	}
}

func TestEncryptErrors(t *testing.T) {
	t.Parallel()
	key := newKey(t, AES256, make([]byte, 32))
	tests := []struct {
		name string
		key  SecretKey
		rand io.Reader
	}{
		{"failing-rand", key, failingReader{}},
		{"short-rand", key, bytes.NewReader(make([]byte, 27))},
		{"zero-key", SecretKey{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c, err := tt.key.Encrypt([]byte("p"), nil, tt.rand); err == nil {
				t.Errorf("Encrypt() = %x, nil; want error", c)
			}
		})
	}
	var zero SecretKey
	if _, err := zero.Decrypt(make([]byte, 64), nil); err == nil || err == ErrDecrypt {
		t.Errorf("zero key Decrypt() = %v, want a non-ErrDecrypt error", err)
	}
}

// TestHMACDerivation checks the hand-written HMAC against crypto/hmac.
func TestHMACDerivation(t *testing.T) {
	t.Parallel()
	r := seededRand(2)
	for i := range 64 {
		var key [32]byte
		io.ReadFull(r, key[:])
		msg := make([]byte, i%33)
		io.ReadFull(r, msg)
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		want := m.Sum(nil)
		if got := hmacSHA256Key32(&key, msg); !bytes.Equal(got[:], want) {
			t.Errorf("hmacSHA256Key32(%x, %x) = %x, want %x", key, msg, got, want)
		}
		long := bytes.Repeat(msg, 100)
		m.Reset()
		m.Write(long)
		hk := HMACKey{b: key}
		if got := hk.sum(nil, long); !bytes.Equal(got, m.Sum(nil)) {
			t.Errorf("HMACKey.sum(%d bytes) = %x, want %x", len(long), got, m.Sum(nil))
		}
	}
}

func TestKeyVersionHMAC(t *testing.T) {
	t.Parallel()
	key := newKey(t, AES256, make([]byte, 32))
	a, err := ImportKeyVersion(key, testTime, "", seededRand(3))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ImportKeyVersion(key, testTime, "", seededRand(4))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello world")
	ma, err := a.HMAC(msg)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, a.HMACKey.b[:])
	m.Write(msg)
	if !bytes.Equal(ma, m.Sum(nil)) {
		t.Errorf("HMAC() = %x, want %x", ma, m.Sum(nil))
	}
	if again, _ := a.HMAC(msg); !bytes.Equal(again, ma) {
		t.Errorf("HMAC() is not deterministic")
	}
	if mb, _ := b.HMAC(msg); bytes.Equal(ma, mb) {
		t.Errorf("two imports of the same key have the same HMAC")
	}
	legacy := KeyVersion{Key: key}
	if got, err := legacy.HMAC(msg); err != ErrNoHMAC || got != nil {
		t.Errorf("HMAC() without HMAC key = %x, %v; want ErrNoHMAC", got, err)
	}
}
