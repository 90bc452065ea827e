// Package cryptotest holds the ciphertext vectors and the recorded
// fixtures of the original KES server that more than one package's tests
// use: the crypto package checks its primitives with them, the wire
// transcripts of internal/api and the interop tests send them to a
// server. See docs/api.md#ciphertexts for the formats.
//
// Vectors 0 to 5 are sealed with a key of 32 zero bytes and hold 16 zero
// bytes; vectors 6 and 7 are sealed with Key67 and associated data AD67
// and hold PT67.
package cryptotest

const (
	// Vector0 is the JSON envelope with AES-256-GCM-HMAC-SHA-256.
	Vector0 = `{"aead":"AES-256-GCM-HMAC-SHA-256","iv":"xLxIN3tSCkg2xMafuvwUwg==","nonce":"gu0mGwUkwcvMEoi5","bytes":"WVgRjeIJm3w50C/l+y7y2i6mbNg5NCAqN1zvOYWZKmc="}`
	// Vector1 is the JSON envelope with ChaCha20Poly1305.
	Vector1 = `{"aead":"ChaCha20Poly1305","iv":"s3fSZ6vk5m+DfQA8yZWeUg==","nonce":"8/kHMnCMs3h9NZ2a","bytes":"cw22HjLq/4cx8507SW4hhSrYbDiMuRao4b5+GE+XfbE="}`
	// Vector2 is the JSON envelope with a key ID.
	Vector2 = `{"aead":"ChaCha20Poly1305","id":"66687aadf862bd776c8fc18b8e9f8e20","iv":"EC0eZp7Pqt+LnkOae5xaAg==","nonce":"X1ejXKmH/ugFZPkk","bytes":"wIGBTDs6aOvsqJfekZ0PYRT/OHyFX2TXqeNwl1SLXOI="}`
	// Vector3 is the base64 of a MessagePack envelope with AES256.
	Vector3 = "lbFBRVMyNTYtR0NNX1NIQTI1NtkgNjY2ODdhYWRmODYyYmQ3NzZjOGZjMThiOGU5ZjhlMjDEEExv7LAd4oz0SaHZrX5LBufEDEKME1ow1CDfUFrqv8QgJuy7Sw+jVqz99TK1HV851LT3K4mwwDv46TB2ngWkAJQ="
	// Vector4 is the base64 of a MessagePack envelope with ChaCha20.
	Vector4 = "lbJYQ0hBQ0hBMjAtUE9MWTEzMDXZIDY2Njg3YWFkZjg2MmJkNzc2YzhmYzE4YjhlOWY4ZTIwxBBAr+aptD4x2+qfOhiErbnkxAxYs8RmNC1JJXD1hiHEIJ2KqM0jjkME7ndx8nyVseesN83Np0rM5ejVUun+fNFu"
	// Vector5 is the base64 of a raw AES256 ciphertext.
	Vector5 = "zwdDgHeRlIFRnJ7+DIhs/ka7GFK2CFSfDELqg1VCyTQzZ58o7MAdupMLk3ZjlMo2ZUDwldL2o41nAWDc"
	// Vector6 is the base64 of a raw AES256 ciphertext with AD67.
	Vector6 = "s2gmfQHeGdlyL8x1yEWSACUV3GrSoz3t160hugMgzKWgyqesXDVUJ5Dw5Mt076rR1PNiU9X4YjLH14D8a81t2r2xsz4gVZac"
	// Vector7 is the base64 of a raw ChaCha20 ciphertext with AD67.
	Vector7 = "gO4woRIswAJdjUjW7z2ApsSQxJlwB24yjLrmH4eI7sB0uh5nfEJfk9ybTPFft5FRFaZCVBmzhx7OJs9n0WWtxH3sySIxecIK"

	// Key67 is the base64 of the key of vectors 6 and 7.
	Key67 = "dDHbTWgo+Yh3u804SYB5OyVMy6RiLeJYBQth1f6KlEU="
	// AD67 is the base64 of the associated data of vectors 6 and 7.
	AD67 = "AAAAAAAAAAAAAAAAAAAAAA=="
	// PT67 is the base64 of the plaintext of vectors 6 and 7.
	PT67 = "CLcJoykFCWZDkEIiUq9bJRqwCwW9ZDvdgu8EMA=="
)
