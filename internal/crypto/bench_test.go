package crypto

import (
	"fmt"
	"testing"

	"github.com/openkes/openkes/internal/crypto/cryptotest"
)

func BenchmarkEncrypt(b *testing.B) {
	for _, alg := range []Algorithm{AES256, ChaCha20} {
		for _, size := range []int{32, 1024} {
			b.Run(fmt.Sprintf("%v/%d", alg, size), func(b *testing.B) {
				key, _ := GenerateSecretKey(alg, nil)
				pt := make([]byte, size)
				ad := []byte(`{"MinIO admin API":"ServerInfoHandler"}`)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := key.Encrypt(pt, ad, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, alg := range []Algorithm{AES256, ChaCha20} {
		for _, size := range []int{32, 1024} {
			b.Run(fmt.Sprintf("%v/%d", alg, size), func(b *testing.B) {
				key, _ := GenerateSecretKey(alg, nil)
				ad := []byte(`{"MinIO admin API":"ServerInfoHandler"}`)
				ct, _ := key.Encrypt(make([]byte, size), ad, nil)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := key.Decrypt(ct, ad); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecryptLegacy(b *testing.B) {
	key := newKey(b, AES256, make([]byte, 32))
	for name, ct := range map[string][]byte{"json": []byte(cryptotest.Vector0), "msgpack": b64(b, cryptotest.Vector3)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := key.Decrypt(ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHMAC(b *testing.B) {
	v, _ := GenerateKeyVersion(AES256, testTime, "", nil)
	for _, size := range []int{32, 1024} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			msg := make([]byte, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := v.HMAC(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseKeyVersion(b *testing.B) {
	for name, in := range map[string]string{
		"protobuf":    protoVector,
		"legacy-json": `{"bytes":"9ew6BCae3+13sniOUwttEJ62amg98YXc0OW0WBhNiCY=","algorithm":"XCHACHA20-POLY1305","created_at":"2009-11-10T23:00:00Z","created_by":"189d9de5331e3ee8abe9e4bd40d474ad621d79ccf83a711f6ac68050eb15a52a"}`,
	} {
		b.Run(name, func(b *testing.B) {
			in := []byte(in)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseKeyVersion(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalText(b *testing.B) {
	v, _ := ParseKeyVersion([]byte(protoVector))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.MarshalText(); err != nil {
			b.Fatal(err)
		}
	}
}
