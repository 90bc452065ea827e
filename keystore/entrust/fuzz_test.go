package entrust

import (
	"testing"
	"time"
)

// FuzzDecode feeds KeyControl answers to the response parsers: they
// never panic, a listing holds no empty names, and a token has a value.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"secrets":[{"secret_id":"a","name":"a"},{"secret_id":"b","expires_at":"2000-01-01T00:00:00Z"}],"next_token":"eyJ9"}`))
	f.Add([]byte(`{"access_token":"t","expires_at":"2030-01-01T00:00:00.5Z"}`))
	f.Add([]byte(`{"access_token":"t"}`))
	f.Add([]byte(`{"secrets":null}`))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		names, _, err := decodeList(body, now)
		for _, n := range names {
			if err == nil && n == "" {
				t.Fatalf("decodeList(%q) returned an empty name", body)
			}
		}
		tok, err := decodeToken(body, now)
		if err == nil && (tok.Value == "" || tok.Expiry.IsZero()) {
			t.Fatalf("decodeToken(%q) = %+v without value or expiry", body, tok)
		}
	})
}
