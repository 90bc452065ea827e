package crypto

import (
	"fmt"
	"math"
	"math/bits"
	"time"
	"unicode/utf8"
)

// A hand-written proto3 codec for the three small messages of the stored
// key form. A protobuf dependency would bring reflection and a generated
// file for 150 bytes; this follows the encoding rules of
// https://protobuf.dev/programming-guides/encoding/ instead.

// Wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// Field numbers.
const (
	fieldVersionKey       = 1 // KeyVersion.Key: SecretKey
	fieldVersionHMACKey   = 2 // KeyVersion.HMACKey: HMACKey
	fieldVersionCreatedAt = 3 // KeyVersion.CreatedAt: google.protobuf.Timestamp
	fieldVersionCreatedBy = 4 // KeyVersion.CreatedBy: string

	fieldKeyBytes = 1 // SecretKey.Key, HMACKey.Key: bytes
	fieldKeyType  = 2 // SecretKey.Type, HMACKey.Hash: uint32

	fieldTimeSeconds = 1 // Timestamp.seconds: int64
	fieldTimeNanos   = 2 // Timestamp.nanos: int32

	hashSHA256 = 1 // HMACKey.Hash
)

// maxGroupDepth bounds the nesting of unknown groups, as protobuf-go's
// default recursion limit does, so that hostile input cannot exhaust the stack.
const maxGroupDepth = 10000

var (
	errTruncated  = fmt.Errorf("%w: truncated protobuf", ErrInvalidKeyVersion)
	errVarint     = fmt.Errorf("%w: invalid protobuf varint", ErrInvalidKeyVersion)
	errFieldNum   = fmt.Errorf("%w: invalid protobuf field number", ErrInvalidKeyVersion)
	errWireType   = fmt.Errorf("%w: invalid protobuf wire type", ErrInvalidKeyVersion)
	errGroup      = fmt.Errorf("%w: unbalanced protobuf group", ErrInvalidKeyVersion)
	errGroupDepth = fmt.Errorf("%w: protobuf groups nested too deeply", ErrInvalidKeyVersion)
)

// ---- encoding

// appendProto appends the protobuf encoding of v, which must have a valid
// secret key and an HMAC key.
func (v *KeyVersion) appendProto(b []byte) []byte {
	alg := uint64(v.Key.alg)
	b = appendTag(b, fieldVersionKey, wireBytes)
	b = appendVarint(b, uint64(sizeBytesField(keySize)+sizeVarintField(alg)))
	b = appendBytesField(b, fieldKeyBytes, v.Key.b[:])
	b = appendVarintField(b, fieldKeyType, alg)

	b = appendTag(b, fieldVersionHMACKey, wireBytes)
	b = appendVarint(b, uint64(sizeBytesField(keySize)+sizeVarintField(hashSHA256)))
	b = appendBytesField(b, fieldKeyBytes, v.HMACKey.b[:])
	b = appendVarintField(b, fieldKeyType, hashSHA256)

	// Timestamp is normalised: seconds are floored and nanos in [0, 1e9),
	// which is what Unix and Nanosecond return. int32 and int64 encode as
	// the two's complement varint of their 64-bit value.
	secs := uint64(v.CreatedAt.Unix())
	nanos := uint64(int64(v.CreatedAt.Nanosecond()))
	b = appendTag(b, fieldVersionCreatedAt, wireBytes)
	b = appendVarint(b, uint64(sizeVarintField(secs)+sizeVarintField(nanos)))
	b = appendVarintField(b, fieldTimeSeconds, secs)
	b = appendVarintField(b, fieldTimeNanos, nanos)

	if v.CreatedBy != "" {
		b = appendTag(b, fieldVersionCreatedBy, wireBytes)
		b = appendVarint(b, uint64(len(v.CreatedBy)))
		b = append(b, v.CreatedBy...)
	}
	return b
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendTag(b []byte, num, typ int) []byte {
	return appendVarint(b, uint64(num)<<3|uint64(typ))
}

// appendVarintField appends a varint field unless v is the proto3 default.
func appendVarintField(b []byte, num int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(appendTag(b, num, wireVarint), v)
}

func appendBytesField(b []byte, num int, v []byte) []byte {
	b = appendTag(b, num, wireBytes)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func sizeVarint(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// sizeVarintField is the size of a varint field with a one-byte tag, or 0
// for the default value.
func sizeVarintField(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + sizeVarint(v)
}

// sizeBytesField is the size of a bytes field of n bytes with a one-byte tag.
func sizeBytesField(n int) int { return 1 + sizeVarint(uint64(n)) + n }

// ---- decoding

// pbKey is SecretKey or HMACKey; both are {bytes key = 1; uint32 type = 2}.
type pbKey struct {
	key []byte // aliases the input
	typ uint32
}

type pbKeyVersion struct {
	key, hmac pbKey
	hasHMAC   bool
	seconds   int64
	nanos     int32
	createdBy []byte // aliases the input
}

// decodeKeyVersion decodes and validates the protobuf form.
func decodeKeyVersion(b []byte) (KeyVersion, error) {
	var m pbKeyVersion
	if err := m.unmarshal(b); err != nil {
		return KeyVersion{}, err
	}
	if len(m.key.key) != keySize {
		return KeyVersion{}, fmt.Errorf("%w: secret key is %d bytes, want 32", ErrInvalidKeyVersion, len(m.key.key))
	}
	alg := Algorithm(m.key.typ)
	if m.key.typ > math.MaxUint8 || !alg.valid() {
		return KeyVersion{}, fmt.Errorf("%w: unknown secret key type %d", ErrInvalidKeyVersion, m.key.typ)
	}
	if !m.hasHMAC {
		return KeyVersion{}, fmt.Errorf("%w: no HMAC key", ErrInvalidKeyVersion)
	}
	if len(m.hmac.key) != keySize {
		return KeyVersion{}, fmt.Errorf("%w: HMAC key is %d bytes, want 32", ErrInvalidKeyVersion, len(m.hmac.key))
	}
	if m.hmac.typ != hashSHA256 {
		return KeyVersion{}, fmt.Errorf("%w: unknown HMAC hash %d", ErrInvalidKeyVersion, m.hmac.typ)
	}
	v := KeyVersion{
		Key:     SecretKey{alg: alg},
		HasHMAC: true,
		// A missing Timestamp reads as the empty one, the Unix epoch, as
		// with protobuf-go's AsTime.
		CreatedAt: time.Unix(m.seconds, int64(m.nanos)).UTC(),
		CreatedBy: string(m.createdBy),
	}
	copy(v.Key.b[:], m.key.key)
	copy(v.HMACKey.b[:], m.hmac.key)
	return v, nil
}

// unmarshal merges the encoded KeyVersion b into m. As the protobuf rules
// require, a repeated scalar field replaces the earlier value, a repeated
// message field is merged into it, a field with an unexpected wire type is
// treated as unknown, and unknown fields are skipped.
func (m *pbKeyVersion) unmarshal(b []byte) error {
	return forEachField(b, func(num, typ int, b []byte) (int, bool, error) {
		if typ != wireBytes || num < fieldVersionKey || num > fieldVersionCreatedBy {
			return 0, false, nil
		}
		v, n, err := consumeBytes(b)
		if err != nil {
			return 0, true, err
		}
		switch num {
		case fieldVersionKey:
			err = m.key.unmarshal(v)
		case fieldVersionHMACKey:
			m.hasHMAC = true
			err = m.hmac.unmarshal(v)
		case fieldVersionCreatedAt:
			err = m.unmarshalTimestamp(v)
		case fieldVersionCreatedBy:
			// proto3 strings must be UTF-8; protobuf-go rejects others.
			if !utf8.Valid(v) {
				return 0, true, fmt.Errorf("%w: created_by is not valid UTF-8", ErrInvalidKeyVersion)
			}
			m.createdBy = v
		}
		return n, true, err
	})
}

func (k *pbKey) unmarshal(b []byte) error {
	return forEachField(b, func(num, typ int, b []byte) (int, bool, error) {
		switch {
		case num == fieldKeyBytes && typ == wireBytes:
			v, n, err := consumeBytes(b)
			k.key = v
			return n, true, err
		case num == fieldKeyType && typ == wireVarint:
			v, n, err := consumeVarint(b)
			k.typ = uint32(v)
			return n, true, err
		}
		return 0, false, nil
	})
}

func (m *pbKeyVersion) unmarshalTimestamp(b []byte) error {
	return forEachField(b, func(num, typ int, b []byte) (int, bool, error) {
		if typ != wireVarint || (num != fieldTimeSeconds && num != fieldTimeNanos) {
			return 0, false, nil
		}
		v, n, err := consumeVarint(b)
		if num == fieldTimeSeconds {
			m.seconds = int64(v)
		} else {
			m.nanos = int32(v)
		}
		return n, true, err
	})
}

// forEachField calls field for every field of the encoded message b with
// the field's number, wire type and the bytes after its tag. field returns
// how many of those bytes the value took, or handled=false to have the
// field skipped as unknown.
func forEachField(b []byte, field func(num, typ int, b []byte) (n int, handled bool, err error)) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		n, handled, err := field(num, typ, b)
		if err == nil && !handled {
			n, err = skipField(b, num, typ, 0)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// consumeVarint decodes a varint of at most 10 bytes from the front of b.
func consumeVarint(b []byte) (v uint64, n int, err error) {
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, 0, errVarint // more than 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	if len(b) < 10 {
		return 0, 0, errTruncated
	}
	return 0, 0, errVarint
}

// consumeTag decodes a field key. Field numbers must be positive and fit in
// an int32, as protobuf-go requires when parsing.
func consumeTag(b []byte) (num, typ, n int, err error) {
	v, n, err := consumeVarint(b)
	if err != nil {
		return 0, 0, 0, err
	}
	if v>>3 < 1 || v>>3 > math.MaxInt32 {
		return 0, 0, 0, errFieldNum
	}
	return int(v >> 3), int(v & 7), n, nil
}

// consumeBytes decodes a length-delimited value and returns it, aliasing b.
func consumeBytes(b []byte) (v []byte, n int, err error) {
	l, n, err := consumeVarint(b)
	if err != nil {
		return nil, 0, err
	}
	if l > uint64(len(b)-n) {
		return nil, 0, errTruncated
	}
	end := n + int(l)
	return b[n:end:end], end, nil
}

// skipField returns the size of the value of field num with wire type typ
// at the front of b. For a group it is everything up to and including the
// matching end-group tag.
func skipField(b []byte, num, typ, depth int) (int, error) {
	switch typ {
	case wireVarint:
		_, n, err := consumeVarint(b)
		return n, err
	case wireFixed64:
		if len(b) < 8 {
			return 0, errTruncated
		}
		return 8, nil
	case wireFixed32:
		if len(b) < 4 {
			return 0, errTruncated
		}
		return 4, nil
	case wireBytes:
		_, n, err := consumeBytes(b)
		return n, err
	case wireStartGroup:
		if depth >= maxGroupDepth {
			return 0, errGroupDepth
		}
		total := 0
		for {
			if len(b) == 0 {
				return 0, errTruncated
			}
			inNum, inTyp, n, err := consumeTag(b)
			if err != nil {
				return 0, err
			}
			total += n
			b = b[n:]
			if inTyp == wireEndGroup {
				if inNum != num {
					return 0, errGroup
				}
				return total, nil
			}
			n, err = skipField(b, inNum, inTyp, depth+1)
			if err != nil {
				return 0, err
			}
			total += n
			b = b[n:]
		}
	case wireEndGroup:
		return 0, errGroup
	default:
		return 0, errWireType
	}
}
