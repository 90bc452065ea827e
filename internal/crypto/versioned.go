package crypto

import "encoding/binary"

// Ciphertexts of a rotated key (docs/keys.md#ciphertexts): a key's first
// version writes the formats above, unchanged, so that every client and an
// upstream server keep reading them. Every later version n writes
//
//	"KESv" || n as 4-byte big-endian || sealed || iv || nonce
//
// so that decryption picks the version from the header and opens the AEAD
// once. The header is not authenticated on its own: a changed version
// selects another key, and the AEAD of that key fails.
//
// A version-1 ciphertext in the raw format starts with random bytes, so
// about one in 2^32 of them starts with "KESv" too; a decrypt whose header
// version fails falls back to version 1 (see SplitVersioned).

// versionMagic starts every ciphertext of a key version >= 2.
const versionMagic = "KESv"

// VersionHeaderSize is the length of the header of a versioned ciphertext.
const VersionHeaderSize = len(versionMagic) + 4

// MaxVersion is the largest key version a ciphertext header can name.
const MaxVersion = 1<<32 - 1

// AppendVersioned appends the ciphertext c of key version n, with the
// version header if n >= 2, to dst. A version 1 ciphertext is appended
// unchanged. n must be between 1 and MaxVersion.
func AppendVersioned(dst []byte, n uint32, c []byte) []byte {
	if n < 2 {
		return append(dst, c...)
	}
	dst = append(dst, versionMagic...)
	dst = binary.BigEndian.AppendUint32(dst, n)
	return append(dst, c...)
}

// SplitVersioned returns the version named by c's header and the
// ciphertext behind it. ok is false if c has no header of a version >= 2;
// then c is a version 1 ciphertext in one of the formats [SecretKey.Decrypt]
// reads. When ok is true c may still, with a chance of 2^-32, be a raw
// version 1 ciphertext that happens to start like a header: a caller whose
// decryption under version n fails should try c as version 1 once.
func SplitVersioned(c []byte) (n uint32, inner []byte, ok bool) {
	if len(c) < VersionHeaderSize+Overhead || string(c[:len(versionMagic)]) != versionMagic {
		return 0, nil, false
	}
	n = binary.BigEndian.Uint32(c[len(versionMagic):])
	if n < 2 {
		return 0, nil, false
	}
	return n, c[VersionHeaderSize:], true
}
