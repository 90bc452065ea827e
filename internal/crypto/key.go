package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	keySize   = 32
	ivSize    = 16
	nonceSize = 12
	tagSize   = 16

	// suffixSize is the random IV and nonce appended to every ciphertext.
	suffixSize = ivSize + nonceSize

	// Overhead is the number of bytes Encrypt adds to a plaintext.
	Overhead = tagSize + suffixSize

	// maxPlaintext is the largest plaintext AES-GCM accepts with a 12-byte
	// nonce; ChaCha20-Poly1305 allows more. Larger input would make the
	// AEADs panic, so Encrypt rejects it first.
	maxPlaintext = (1<<32 - 2) * 16
)

const redacted = "[REDACTED]"

// errMarshalSecret is what the JSON marshallers of secret types return, so
// that encoding a value that holds a key fails instead of leaking it.
var errMarshalSecret = errors.New("crypto: secret key material cannot be marshalled")

// SecretKey is a 256-bit key of one algorithm. Not comparable with ==,
// prints as [REDACTED]. The zero value is invalid.
type SecretKey struct {
	_   [0]func()
	alg Algorithm
	b   [32]byte
}

// NewSecretKey copies b, which must be 32 bytes, into a SecretKey.
// It returns an error if alg is not AES256 or ChaCha20 or b has another
// length; the error never contains b.
func NewSecretKey(alg Algorithm, b []byte) (SecretKey, error) {
	if !alg.valid() {
		return SecretKey{}, fmt.Errorf("crypto: invalid algorithm %d", alg)
	}
	if len(b) != keySize {
		return SecretKey{}, fmt.Errorf("crypto: invalid key size %d for %v", len(b), alg)
	}
	k := SecretKey{alg: alg}
	copy(k.b[:], b)
	return k, nil
}

// GenerateSecretKey reads 32 bytes from rand (crypto/rand if nil).
// It returns an error if alg is invalid or rand fails.
func GenerateSecretKey(alg Algorithm, rand io.Reader) (SecretKey, error) {
	if !alg.valid() {
		return SecretKey{}, fmt.Errorf("crypto: invalid algorithm %d", alg)
	}
	k := SecretKey{alg: alg}
	if err := readRandom(rand, k.b[:]); err != nil {
		return SecretKey{}, err
	}
	return k, nil
}

// Algorithm returns the key's algorithm; 0 for the zero value.
func (k *SecretKey) Algorithm() Algorithm { return k.alg }

// Equal reports in constant time whether k and other are the same key of
// the same algorithm. It has a value receiver so that go-cmp finds it.
func (k SecretKey) Equal(other SecretKey) bool {
	same := subtle.ConstantTimeCompare(k.b[:], other.b[:])
	return same&subtle.ConstantTimeByteEq(uint8(k.alg), uint8(other.alg)) == 1
}

// String returns "[REDACTED]".
func (SecretKey) String() string { return redacted }

// GoString returns "[REDACTED]", so %#v does not show the key either.
func (SecretKey) GoString() string { return redacted }

// Format writes "[REDACTED]" for every verb, including %x and %d, which
// would otherwise bypass String.
func (SecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements [slog.LogValuer]: the key logs as "[REDACTED]".
func (SecretKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON always fails: a key must never end up in a JSON document by
// accident. It has a value receiver so that it also covers *SecretKey.
func (SecretKey) MarshalJSON() ([]byte, error) { return nil, errMarshalSecret }

// Encrypt returns Seal(plaintext, ad) || iv[16] || nonce[12] (docs/api.md#ciphertexts).
// rand defaults to crypto/rand when nil.
//
// The result has len(plaintext)+[Overhead] bytes. Encrypt returns an error
// if rand fails, the key is the zero value or the plaintext exceeds the
// AES-GCM limit of about 64 GiB.
func (k *SecretKey) Encrypt(plaintext, associatedData []byte, rand io.Reader) ([]byte, error) {
	return k.EncryptVersion(1, plaintext, associatedData, rand)
}

// EncryptVersion is Encrypt for the key version n of a rotated key: for
// n >= 2 the ciphertext starts with the version header of
// [AppendVersioned], written into the same single allocation. n must be
// between 1 and [MaxVersion].
func (k *SecretKey) EncryptVersion(n uint32, plaintext, associatedData []byte, rand io.Reader) ([]byte, error) {
	if !k.alg.valid() {
		return nil, errInvalidKey
	}
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, errors.New("crypto: plaintext too large")
	}
	// One allocation for the whole result: the header is written first,
	// the random suffix is read into its final place and Seal writes in
	// front of it.
	var hb [VersionHeaderSize]byte
	header := AppendVersioned(hb[:0], n, nil)
	h, m := len(header), len(plaintext)
	out := make([]byte, h+m+Overhead)
	copy(out, header)
	body := out[h:]
	suffix := body[m+tagSize:]
	if err := readRandom(rand, suffix); err != nil {
		return nil, err
	}
	iv, nonce := suffix[:ivSize], suffix[ivSize:]
	aead, err := k.aead(iv)
	if err != nil {
		return nil, err
	}
	aead.Seal(body[:0], nonce, plaintext, associatedData)
	return out, nil
}

// Decrypt accepts the raw, legacy JSON and legacy MessagePack ciphertext
// formats (docs/api.md#ciphertexts). Any failure is ErrDecrypt.
//
// The only other error is for a zero-value key, which is a programming
// error rather than a bad ciphertext. associatedData must be the one used to
// encrypt; nil and empty are the same. Decrypt never modifies ciphertext.
func (k *SecretKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if !k.alg.valid() {
		return nil, errInvalidKey
	}
	sealed, iv, nonce, ok := splitCiphertext(ciphertext)
	// ChaCha20-Poly1305 panics on more than 256 GiB; nothing that large was
	// ever encrypted, so reject it like any other forgery.
	if !ok || len(sealed) < tagSize || uint64(len(sealed)) > maxPlaintext+tagSize {
		return nil, ErrDecrypt
	}
	aead, err := k.aead(iv)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := aead.Open(make([]byte, 0, len(sealed)-tagSize), nonce, sealed, associatedData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// aead returns the AEAD keyed with the per-message key derived from k and
// the 16-byte iv.
func (k *SecretKey) aead(iv []byte) (cipher.AEAD, error) {
	switch k.alg {
	case AES256:
		dk := hmacSHA256Key32(&k.b, iv)
		block, err := aes.NewCipher(dk[:])
		clear(dk[:])
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	case ChaCha20:
		dk, err := chacha20.HChaCha20(k.b[:], iv)
		if err != nil {
			return nil, err
		}
		aead, err := chacha20poly1305.New(dk)
		clear(dk)
		return aead, err
	default:
		return nil, errInvalidKey
	}
}

// hmacSHA256Key32 is HMAC-SHA-256 (RFC 2104) of msg under a 32-byte key,
// written out over sha256.Sum256 because crypto/hmac allocates several
// objects per call and this runs for every encrypt and decrypt. Only
// correct for len(msg) <= 32, which holds for the 16-byte IV.
func hmacSHA256Key32(key *[32]byte, msg []byte) [32]byte {
	var buf [sha256.BlockSize + sha256.Size]byte
	pad(&buf, key, 0x36)
	n := copy(buf[sha256.BlockSize:], msg)
	inner := sha256.Sum256(buf[:sha256.BlockSize+n])
	pad(&buf, key, 0x5c)
	copy(buf[sha256.BlockSize:], inner[:])
	mac := sha256.Sum256(buf[:])
	clear(buf[:])
	clear(inner[:])
	return mac
}

// pad writes the key XOR p, padded with p to the SHA-256 block size, to the
// start of buf.
func pad(buf *[sha256.BlockSize + sha256.Size]byte, key *[32]byte, p byte) {
	for i := range key {
		buf[i] = key[i] ^ p
	}
	for i := len(key); i < sha256.BlockSize; i++ {
		buf[i] = p
	}
}

// HMACKey is a 256-bit HMAC-SHA-256 key. Not comparable, prints redacted.
type HMACKey struct {
	_ [0]func()
	b [32]byte
}

// NewHMACKey copies b, which must be 32 bytes, into an HMACKey. The error
// never contains b.
func NewHMACKey(b []byte) (HMACKey, error) {
	if len(b) != keySize {
		return HMACKey{}, fmt.Errorf("crypto: invalid HMAC key size %d", len(b))
	}
	var k HMACKey
	copy(k.b[:], b)
	return k, nil
}

// Equal reports in constant time whether k and other are the same key.
func (k HMACKey) Equal(other HMACKey) bool {
	return subtle.ConstantTimeCompare(k.b[:], other.b[:]) == 1
}

// String returns "[REDACTED]".
func (HMACKey) String() string { return redacted }

// GoString returns "[REDACTED]".
func (HMACKey) GoString() string { return redacted }

// Format writes "[REDACTED]" for every verb.
func (HMACKey) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements [slog.LogValuer]: the key logs as "[REDACTED]".
func (HMACKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON always fails, like [SecretKey.MarshalJSON].
func (HMACKey) MarshalJSON() ([]byte, error) { return nil, errMarshalSecret }

// sum returns HMAC-SHA-256(k, msg) appended to dst.
func (k *HMACKey) sum(dst, msg []byte) []byte {
	var ipad [sha256.BlockSize]byte
	for i := range ipad {
		ipad[i] = 0x36
	}
	subtle.XORBytes(ipad[:keySize], ipad[:keySize], k.b[:])
	h := sha256.New()
	h.Write(ipad[:])
	h.Write(msg)
	var inner [sha256.Size]byte
	h.Sum(inner[:0])
	h.Reset()

	var buf [sha256.BlockSize + sha256.Size]byte
	pad(&buf, &k.b, 0x5c)
	copy(buf[sha256.BlockSize:], inner[:])
	mac := sha256.Sum256(buf[:])
	clear(ipad[:])
	clear(buf[:])
	clear(inner[:])
	return append(dst, mac[:]...)
}

// readRandom fills b from rand, or from crypto/rand if rand is nil.
func readRandom(rand io.Reader, b []byte) error {
	if rand == nil {
		rand = cryptorand.Reader
	}
	if _, err := io.ReadFull(rand, b); err != nil {
		return fmt.Errorf("crypto: read random bytes: %w", err)
	}
	return nil
}
