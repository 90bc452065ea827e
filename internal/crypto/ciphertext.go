package crypto

import (
	"encoding/binary"
	"encoding/json"
)

// splitCiphertext returns the sealed bytes, IV and nonce of a ciphertext in
// any of the three formats. A legacy envelope that does not parse is not an
// error: as in the original, its bytes are then read as the raw format,
// where they fail authentication. ok is false if c is too short.
func splitCiphertext(c []byte) (sealed, iv, nonce []byte, ok bool) {
	if len(c) > 0 {
		switch c[0] {
		case 0x95: // MessagePack fixarray of 5 elements
			if sealed, iv, nonce, ok := parseMsgpackCiphertext(c); ok {
				return sealed, iv, nonce, true
			}
		case '{':
			if sealed, iv, nonce, ok := parseJSONCiphertext(c); ok {
				return sealed, iv, nonce, true
			}
		}
	}
	if len(c) <= suffixSize {
		return nil, nil, nil, false
	}
	n := len(c) - suffixSize
	return c[:n], c[n : n+ivSize], c[n+ivSize:], true
}

// isEnvelopeAlgorithm reports whether s names an algorithm in a MessagePack
// envelope. The name is only validated, never compared with the key's.
func isEnvelopeAlgorithm(s []byte) bool {
	switch string(s) {
	case "AES256", "AES256-GCM_SHA256", "ChaCha20", "XCHACHA20-POLY1305":
		return true
	}
	return false
}

// parseMsgpackCiphertext parses the 2022-2024 envelope, exactly
//
//	fixarray(5) [algorithm str, key id str, iv bin(16), nonce bin(12), sealed bin]
//
// with nothing after it. The returned slices alias c.
func parseMsgpackCiphertext(c []byte) (sealed, iv, nonce []byte, ok bool) {
	r := msgpackReader{b: c}
	if h, ok := r.byte(); !ok || h != 0x95 {
		return nil, nil, nil, false
	}
	alg, ok := r.str()
	if !ok || !isEnvelopeAlgorithm(alg) {
		return nil, nil, nil, false
	}
	if _, ok := r.str(); !ok { // key ID, ignored
		return nil, nil, nil, false
	}
	if iv, ok = r.bin(); !ok || len(iv) != ivSize {
		return nil, nil, nil, false
	}
	if nonce, ok = r.bin(); !ok || len(nonce) != nonceSize {
		return nil, nil, nil, false
	}
	if sealed, ok = r.bin(); !ok || len(r.b) != 0 {
		return nil, nil, nil, false
	}
	return sealed, iv, nonce, true
}

// msgpackReader reads the few MessagePack types of the legacy envelope from
// the front of b. Every method reports false on truncated or mistyped input.
type msgpackReader struct{ b []byte }

func (r *msgpackReader) byte() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

// uint reads a big-endian unsigned integer of size 1, 2 or 4 bytes.
func (r *msgpackReader) uint(size int) (uint64, bool) {
	if len(r.b) < size {
		return 0, false
	}
	var v uint64
	switch size {
	case 1:
		v = uint64(r.b[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(r.b))
	case 4:
		v = uint64(binary.BigEndian.Uint32(r.b))
	}
	r.b = r.b[size:]
	return v, true
}

func (r *msgpackReader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)) {
		return nil, false
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, true
}

// str reads a fixstr, str8, str16 or str32.
func (r *msgpackReader) str() ([]byte, bool) { return r.sized(0xd9, true) }

// bin reads a bin8, bin16 or bin32.
func (r *msgpackReader) bin() ([]byte, bool) { return r.sized(0xc4, false) }

// sized reads a value whose header byte is base, base+1 or base+2,
// followed by a 1-, 2- or 4-byte length, or, if fix, a fixstr (header
// 101xxxxx, xxxxx the length).
func (r *msgpackReader) sized(base byte, fix bool) ([]byte, bool) {
	h, ok := r.byte()
	if !ok {
		return nil, false
	}
	var n uint64
	switch {
	case fix && h&0xe0 == 0xa0:
		n = uint64(h & 0x1f)
	case h >= base && h <= base+2:
		n, ok = r.uint(1 << (h - base))
	default:
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return r.take(n)
}

// jsonCiphertext is the 2020-2022 envelope. The []byte fields decode from
// standard base64, as encoding/json did in the original.
type jsonCiphertext struct {
	AEAD  string `json:"aead"`
	ID    string `json:"id"`
	IV    []byte `json:"iv"`
	Nonce []byte `json:"nonce"`
	Bytes []byte `json:"bytes"`
}

// parseJSONCiphertext parses the JSON envelope. It uses encoding/json, as the
// original did, so that its leniencies (case-insensitive names, unknown
// fields, duplicates) match.
func parseJSONCiphertext(c []byte) (sealed, iv, nonce []byte, ok bool) {
	var v jsonCiphertext
	if err := json.Unmarshal(c, &v); err != nil {
		return nil, nil, nil, false
	}
	switch v.AEAD {
	case "AES-256-GCM-HMAC-SHA-256", "ChaCha20Poly1305":
	default:
		return nil, nil, nil, false
	}
	if len(v.IV) != ivSize || len(v.Nonce) != nonceSize {
		return nil, nil, nil, false
	}
	return v.Bytes, v.IV, v.Nonce, true
}
