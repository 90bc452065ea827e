// Package crypto holds the key material of KES and the formats derived
// from it. It is the only package that sees raw key bytes.
//
// # Keys
//
// A [SecretKey] is a 256-bit key of one [Algorithm]: [AES256] or [ChaCha20].
// KES stores one [KeyVersion] per key name: the secret key, an optional
// [HMACKey], the creation time and the identity that created it. Secret
// types cannot be compared with == (use Equal, which runs in constant time),
// print as [REDACTED] through fmt and log/slog, and refuse to be encoded as
// JSON, so that a careless log line or response cannot leak them.
//
// Redaction works through methods, so it only applies where fmt can call
// them. fmt cannot call methods on an unexported struct field, nor on an
// operand of a wrong verb (%p on a value, %s on a pointer in a field): a
// SecretKey, HMACKey or KeyVersion, or a pointer to one, held in an
// unexported field of another type shows its raw bytes when that type is
// printed. Such types must not be printed or must redact themselves.
//
// # Stored form
//
// [KeyVersion.MarshalText] writes the text that KES puts into its key
// store: standard, padded base64 of a proto3 message
//
//	message SecretKey  { bytes Key = 1; uint32 Type = 2; }  // 1 AES256, 2 ChaCha20
//	message HMACKey    { bytes Key = 1; uint32 Hash = 2; }  // 1 SHA-256
//	message KeyVersion {
//	  SecretKey Key = 1;
//	  HMACKey HMACKey = 2;
//	  google.protobuf.Timestamp CreatedAt = 3;
//	  string CreatedBy = 4;
//	}
//
// [ParseKeyVersion] reads that form and the legacy JSON form that KES wrote
// before 2024, {"bytes","algorithm","created_at","created_by"}, which has no
// HMAC key.
//
// # Ciphertexts
//
// [SecretKey.Encrypt] draws 28 random bytes, a 16-byte IV and a 12-byte
// nonce, derives a per-message key from the secret key and the IV
// (HMAC-SHA-256 for AES256, HChaCha20 for ChaCha20), seals the plaintext
// with AES-256-GCM or ChaCha20-Poly1305 and returns
//
//	sealed || iv || nonce    (len(plaintext) + 44 bytes)
//
// [SecretKey.Decrypt] also accepts the two envelopes that older KES versions
// produced and that MinIO keeps in object metadata forever: a JSON object
// {"aead","id","iv","nonce","bytes"} (2020-2022) and a MessagePack array
// [algorithm, id, iv, nonce, sealed] (2022-2024). The algorithm named in an
// envelope is only checked to be a known name; decryption always uses the
// key's own algorithm.
package crypto

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/cpu"

	"github.com/openkes/openkes/kes"
)

// ErrDecrypt is returned when a ciphertext is not authentic, too short or
// a malformed legacy envelope. Its text is the exact KES wire message.
var ErrDecrypt = errors.New("decryption failed: ciphertext is not authentic")

// ErrNoHMAC is returned by KeyVersion.HMAC for legacy keys without an HMAC key.
var ErrNoHMAC = errors.New("key does not support HMAC")

// ErrInvalidKeyVersion is wrapped by every error of [ParseKeyVersion] that is
// caused by the stored bytes (as opposed to a programming error). The
// wrapping errors name the problem, never the key bytes.
var ErrInvalidKeyVersion = errors.New("crypto: invalid key version")

// errInvalidKey is returned when a method is called on a SecretKey that was
// not made by NewSecretKey, GenerateSecretKey or ParseKeyVersion.
var errInvalidKey = errors.New("crypto: invalid secret key")

// Algorithm of a secret key. Values are the protobuf type numbers.
type Algorithm uint8

// The supported algorithms. The numbers are the type numbers of the stored
// protobuf form, one more than those of the SDK's enum (kes.AES256 = 0,
// kes.ChaCha20 = 1); only the names, which are the SDK's, cross the wire.
const (
	AES256   Algorithm = 1
	ChaCha20 Algorithm = 2
)

// String returns "AES256" or "ChaCha20" (the wire names), "invalid" otherwise.
func (a Algorithm) String() string {
	if !a.valid() {
		return "invalid"
	}
	return kes.KeyAlgorithm(a - 1).String()
}

func (a Algorithm) valid() bool { return a == AES256 || a == ChaCha20 }

// ParseAlgorithm accepts the names the SDK's kes.KeyAlgorithm accepts:
// "AES256", "AES256-GCM_SHA256", "ChaCha20" and "XCHACHA20-POLY1305"
// (exact, case-sensitive). Other input returns an error.
func ParseAlgorithm(s string) (Algorithm, error) {
	var k kes.KeyAlgorithm
	if err := k.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("crypto: algorithm %q is not supported", s)
	}
	return Algorithm(k + 1), nil
}

// DefaultAlgorithm is AES256 when the CPU has hardware AES-GCM, ChaCha20 otherwise.
//
// Hardware AES-GCM means AES-NI and PCLMULQDQ on x86, AES and PMULL on arm64,
// AES, AES-CBC, AES-CTR and GHASH or AES-GCM on s390x, and is assumed on
// ppc64le, as the original server decides.
func DefaultAlgorithm() Algorithm {
	if defaultAlgorithm {
		return AES256
	}
	return ChaCha20
}

// defaultAlgorithm reports hardware AES-GCM; CPU features do not change
// while a process runs, so it is computed once.
var defaultAlgorithm = hasAESGCMHardware(runtime.GOARCH)

func hasAESGCMHardware(goarch string) bool {
	switch goarch {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESCBC && cpu.S390X.HasAESCTR &&
			(cpu.S390X.HasGHASH || cpu.S390X.HasAESGCM)
	case "ppc64le":
		return true
	default:
		return false
	}
}
