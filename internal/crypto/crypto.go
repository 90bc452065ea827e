// Package crypto holds the key material of KES and the formats derived
// from it. It is the only package that sees raw key bytes.
//
// API CONTRACT (stub written by the lead; the crypto helper implements the
// bodies and may add unexported helpers and files, but must keep every
// exported signature below unchanged because the server codes against it).
package crypto

import (
	"errors"
	"io"
	"time"
)

// ErrDecrypt is returned when a ciphertext is not authentic, too short or
// a malformed legacy envelope. Its text is the exact KES wire message.
var ErrDecrypt = errors.New("decryption failed: ciphertext is not authentic")

// ErrNoHMAC is returned by KeyVersion.HMAC for legacy keys without an HMAC key.
var ErrNoHMAC = errors.New("key does not support HMAC")

// Algorithm of a secret key. Values are the protobuf type numbers.
type Algorithm uint8

const (
	AES256   Algorithm = 1
	ChaCha20 Algorithm = 2
)

// String returns "AES256" or "ChaCha20" (the wire names), "invalid" otherwise.
func (a Algorithm) String() string { panic("unimplemented") }

// ParseAlgorithm accepts "AES256", "AES256-GCM_SHA256", "ChaCha20" and
// "XCHACHA20-POLY1305" (exact, case-sensitive). Other input returns an error.
func ParseAlgorithm(s string) (Algorithm, error) { panic("unimplemented") }

// DefaultAlgorithm is AES256 when the CPU has hardware AES-GCM, ChaCha20 otherwise.
func DefaultAlgorithm() Algorithm { panic("unimplemented") }

// SecretKey is a 256-bit key of one algorithm. Not comparable with ==,
// prints as [REDACTED]. The zero value is invalid.
type SecretKey struct {
	_   [0]func()
	alg Algorithm
	b   [32]byte
}

// NewSecretKey copies b, which must be 32 bytes, into a SecretKey.
func NewSecretKey(alg Algorithm, b []byte) (SecretKey, error) { panic("unimplemented") }

// GenerateSecretKey reads 32 bytes from rand (crypto/rand if nil).
func GenerateSecretKey(alg Algorithm, rand io.Reader) (SecretKey, error) { panic("unimplemented") }

func (k *SecretKey) Algorithm() Algorithm { return k.alg }

// Encrypt returns Seal(plaintext, ad) || iv[16] || nonce[12] (spec §7.4).
// rand defaults to crypto/rand when nil.
func (k *SecretKey) Encrypt(plaintext, associatedData []byte, rand io.Reader) ([]byte, error) {
	panic("unimplemented")
}

// Decrypt accepts the raw, legacy JSON and legacy MessagePack ciphertext
// formats (spec §7.5). Any failure is ErrDecrypt.
func (k *SecretKey) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	panic("unimplemented")
}

// HMACKey is a 256-bit HMAC-SHA-256 key. Not comparable, prints redacted.
type HMACKey struct {
	_ [0]func()
	b [32]byte
}

// KeyVersion is what KES stores per key name (spec §6, §7.1).
type KeyVersion struct {
	Key       SecretKey
	HMACKey   HMACKey // valid only if HasHMAC
	HasHMAC   bool
	CreatedAt time.Time
	CreatedBy string
}

// GenerateKeyVersion creates a fresh key of alg plus a fresh HMAC key.
func GenerateKeyVersion(alg Algorithm, createdAt time.Time, createdBy string, rand io.Reader) (KeyVersion, error) {
	panic("unimplemented")
}

// ImportKeyVersion wraps imported key bytes and generates a fresh HMAC key.
func ImportKeyVersion(key SecretKey, createdAt time.Time, createdBy string, rand io.Reader) (KeyVersion, error) {
	panic("unimplemented")
}

// HMAC returns HMAC-SHA-256(hmac key, msg), or ErrNoHMAC.
func (v *KeyVersion) HMAC(msg []byte) ([]byte, error) { panic("unimplemented") }

// MarshalText encodes v as base64(protobuf) (spec §7.1). Requires an HMAC key.
func (v *KeyVersion) MarshalText() ([]byte, error) { panic("unimplemented") }

// ParseKeyVersion decodes the stored form: legacy JSON or base64(protobuf).
func ParseKeyVersion(b []byte) (KeyVersion, error) { panic("unimplemented") }
