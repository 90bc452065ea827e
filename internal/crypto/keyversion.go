package crypto

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
	"unicode/utf8"
)

// KeyVersion is what KES stores per key name (docs/api.md#stored-keys).
//
// It prints with its keys redacted, logs through slog without them and
// cannot be encoded as JSON (see [KeyVersion.MarshalJSON]); its stored form
// comes only from [KeyVersion.MarshalText].
type KeyVersion struct {
	Key       SecretKey
	HMACKey   HMACKey // valid only if HasHMAC
	HasHMAC   bool
	CreatedAt time.Time
	CreatedBy string
}

// GenerateKeyVersion creates a fresh key of alg plus a fresh HMAC key.
// createdAt is stored in UTC. rand defaults to crypto/rand when nil.
// It returns an error if alg is invalid or rand fails.
func GenerateKeyVersion(alg Algorithm, createdAt time.Time, createdBy string, rand io.Reader) (KeyVersion, error) {
	key, err := GenerateSecretKey(alg, rand)
	if err != nil {
		return KeyVersion{}, err
	}
	v, err := ImportKeyVersion(key, createdAt, createdBy, rand)
	clear(key.b[:])
	return v, err
}

// ImportKeyVersion wraps imported key bytes and generates a fresh HMAC key.
// The HMAC key is random, not derived from key: importing the same bytes
// twice gives two different HMAC keys, as in the original. createdAt is
// stored in UTC. rand defaults to crypto/rand when nil. It returns an error
// if key is the zero value or rand fails.
func ImportKeyVersion(key SecretKey, createdAt time.Time, createdBy string, rand io.Reader) (KeyVersion, error) {
	if !key.alg.valid() {
		return KeyVersion{}, errInvalidKey
	}
	v := KeyVersion{
		Key:       key,
		HasHMAC:   true,
		CreatedAt: createdAt.UTC(),
		CreatedBy: createdBy,
	}
	if err := readRandom(rand, v.HMACKey.b[:]); err != nil {
		clear(v.Key.b[:])
		return KeyVersion{}, err
	}
	return v, nil
}

// HMAC returns HMAC-SHA-256(hmac key, msg), or ErrNoHMAC.
// ErrNoHMAC is returned for keys read from the legacy JSON form.
func (v *KeyVersion) HMAC(msg []byte) ([]byte, error) {
	if !v.HasHMAC {
		return nil, ErrNoHMAC
	}
	return v.HMACKey.sum(make([]byte, 0, 32), msg), nil
}

// MarshalText encodes v as base64(protobuf) (docs/api.md#stored-keys). Requires an HMAC key.
//
// The output is byte for byte what the original server writes: standard
// padded base64 of the proto3 encoding, fields in number order, defaults
// omitted. It returns an error if v has no HMAC key, its secret key is the
// zero value or CreatedBy is not valid UTF-8 (proto3 strings must be).
func (v *KeyVersion) MarshalText() ([]byte, error) {
	if !v.Key.alg.valid() {
		return nil, errInvalidKey
	}
	if !v.HasHMAC {
		return nil, errors.New("crypto: key version without HMAC key cannot be encoded")
	}
	if !utf8.ValidString(v.CreatedBy) {
		return nil, errors.New("crypto: created_by is not valid UTF-8")
	}
	var stack [256]byte // a typical key version is 154 bytes
	pb := v.appendProto(stack[:0])
	text := make([]byte, base64.StdEncoding.EncodedLen(len(pb)))
	base64.StdEncoding.Encode(text, pb)
	clear(pb)
	return text, nil
}

// MarshalJSON always fails, so that json.Marshal of a KeyVersion (or a
// pointer to one, which would otherwise pick MarshalText) cannot leak the
// keys into a response or a log line.
func (KeyVersion) MarshalJSON() ([]byte, error) { return nil, errMarshalSecret }

// LogValue implements [slog.LogValuer]: the algorithm, creation time and
// creator, never the keys. Without it slog would use MarshalText for a
// *KeyVersion and log the encoded keys.
func (v KeyVersion) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("algorithm", v.Key.alg.String()),
		slog.Bool("hmac", v.HasHMAC),
		slog.Time("created_at", v.CreatedAt),
		slog.String("created_by", v.CreatedBy),
	)
}

// ParseKeyVersion decodes the stored form: legacy JSON or base64(protobuf).
//
// Input that is syntactically valid JSON is read as the legacy form
// {"bytes","algorithm","created_at","created_by"}, which has no HMAC key
// (HasHMAC is false) and keeps the time zone of created_at. Anything else
// must be standard base64 of the protobuf form, with a 32-byte secret key of
// type 1 or 2 and a 32-byte SHA-256 HMAC key; its CreatedAt is in UTC.
// Unknown protobuf fields are skipped. Every error wraps
// [ErrInvalidKeyVersion] and never contains key bytes.
func ParseKeyVersion(b []byte) (KeyVersion, error) {
	if isJSON(b) {
		return parseLegacyKeyVersion(b)
	}
	pb := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(pb, b)
	defer clear(pb)
	if err != nil {
		// The base64 error only holds an offset.
		return KeyVersion{}, fmt.Errorf("%w: %w", ErrInvalidKeyVersion, err)
	}
	return decodeKeyVersion(pb[:n])
}

// isJSON is json.Valid with a shortcut: text whose first non-space byte
// cannot start a JSON value is not JSON. The shortcut spares the stored
// protobuf form (base64 starting with "C") the syntax error json.Valid
// builds, four allocations per key read.
func isJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[', '"', '-', 't', 'f', 'n', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return json.Valid(b)
		}
		return false
	}
	return false
}

// legacyKeyVersion is the JSON form written before 2024. It is decoded with
// encoding/json, as in the original, so that the same inputs are accepted.
type legacyKeyVersion struct {
	Bytes     []byte    `json:"bytes"`
	Algorithm string    `json:"algorithm"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

func parseLegacyKeyVersion(b []byte) (KeyVersion, error) {
	var j legacyKeyVersion
	defer func() { clear(j.Bytes) }() // not defer clear(j.Bytes): that would clear nil
	err := json.Unmarshal(b, &j)
	if err != nil {
		// json.Unmarshal errors name types, offsets and, for a bad
		// created_at, the timestamp; they do not quote base64 key data, but
		// that is an implementation detail, so give a fixed message.
		return KeyVersion{}, fmt.Errorf("%w: malformed legacy JSON key", ErrInvalidKeyVersion)
	}
	alg := AES256
	if j.Algorithm != "" {
		if alg, err = ParseAlgorithm(j.Algorithm); err != nil {
			return KeyVersion{}, fmt.Errorf("%w: unsupported algorithm %q", ErrInvalidKeyVersion, j.Algorithm)
		}
	}
	if len(j.Bytes) != keySize {
		return KeyVersion{}, fmt.Errorf("%w: secret key is %d bytes, want 32", ErrInvalidKeyVersion, len(j.Bytes))
	}
	v := KeyVersion{
		Key:       SecretKey{alg: alg},
		CreatedAt: j.CreatedAt,
		CreatedBy: j.CreatedBy,
	}
	copy(v.Key.b[:], j.Bytes)
	return v, nil
}
