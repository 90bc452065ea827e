package cryptotest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FixtureKey is a key of the fixture file: the key file the original
// server wrote and what it holds.
type FixtureKey struct {
	Name             string `json:"name"`
	Algorithm        string `json:"algorithm"`
	KeyHex           string `json:"key_hex"`
	HasHMACKey       bool   `json:"has_hmac_key"`
	KeystoreFileText string `json:"keystore_file_text"`
	Decoded          struct {
		Format           string `json:"format"`
		CreatedAtRFC3339 string `json:"created_at_rfc3339"`
		CreatedBy        string `json:"created_by"`
		ProtobufHex      string `json:"protobuf_hex"`
		HMACKey          struct {
			Hash   uint32 `json:"hash"`
			KeyHex string `json:"key_hex"`
		} `json:"hmac_key"`
		Key struct {
			KeyHex string `json:"key_hex"`
			Type   uint32 `json:"type"`
		} `json:"key"`
		Fields struct { // legacy JSON only
			Algorithm string `json:"algorithm"`
			Bytes     string `json:"bytes"`
			CreatedAt string `json:"created_at"`
			CreatedBy string `json:"created_by"`
		} `json:"fields"`
	} `json:"keystore_file_decoded"`
}

// FixtureCase is a recorded ciphertext (with its plaintext, or the error
// decrypting it gave) or HMAC of the fixture file. Binary values are
// base64, the MAC hex.
type FixtureCase struct {
	ID            string `json:"id"`
	Key           string `json:"key"`
	Plaintext     string `json:"plaintext_b64"`
	Ciphertext    string `json:"ciphertext_b64"`
	Context       string `json:"context_b64"`
	HasContext    bool   `json:"has_context"`
	CiphertextLen int    `json:"ciphertext_len"`
	WantStatus    int    `json:"want_status"`
	WantMessage   string `json:"want_message"`
	Message       string `json:"message_b64"`
	MACHex        string `json:"mac_hex"`
	ErrStatus     int    `json:"err_status"`
	ErrMessage    string `json:"err_message"`
}

// Fixtures is the fixture file kes-crypto-fixtures.json, recorded from
// the original KES server with an fs key store.
type Fixtures struct {
	Keys     []FixtureKey  `json:"keys"`
	Encrypt  []FixtureCase `json:"encrypt"`
	Generate []FixtureCase `json:"generate"`
	Legacy   []FixtureCase `json:"legacy_ciphertext_formats"`
	Negative []FixtureCase `json:"negative"`
	HMAC     []FixtureCase `json:"hmac"`
}

// LoadFixtures reads dir/kes-crypto-fixtures.json and the key file of
// each of its keys from dir/keystore, by key name. It fails t if a file
// is missing or a section of the fixture file is empty.
func LoadFixtures(t testing.TB, dir string) (*Fixtures, map[string][]byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kes-crypto-fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f Fixtures
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Keys) == 0 || len(f.Encrypt) == 0 || len(f.Generate) == 0 || len(f.Negative) == 0 || len(f.Legacy) == 0 || len(f.HMAC) == 0 {
		t.Fatalf("fixture file has an empty section")
	}
	files := make(map[string][]byte, len(f.Keys))
	for _, k := range f.Keys {
		if files[k.Name], err = os.ReadFile(filepath.Join(dir, "keystore", k.Name)); err != nil {
			t.Fatal(err)
		}
	}
	return &f, files
}
