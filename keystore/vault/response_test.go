package vault

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []string
	}{
		{name: "empty list", body: `{"errors":[]}`, want: nil},
		{name: "one", body: `{"errors":["permission denied"]}`, want: []string{"permission denied"}},
		{name: "multierror", body: `{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}`,
			want: []string{"2 errors occurred: * permission denied * invalid token"}},
		{name: "control characters", body: `{"errors":["a\u0000b\u001bc"]}`, want: []string{"a b c"}},
		{name: "not strings", body: `{"errors":[1, {"x": 2}, "ok"]}`, want: []string{"ok"}},
		{name: "not json", body: `<html>Bad Gateway</html>`, want: nil},
		{name: "too long", body: `{"errors":["` + strings.Repeat("x", 300) + `"]}`, want: []string{strings.Repeat("x", maxErrorLength) + "..."}},
		{name: "too many", body: `{"errors":["1","2","3","4","5","6","7","8","9","10"]}`, want: []string{"1", "2", "3", "4", "5", "6", "7", "8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, decodeErrors([]byte(tt.body))); diff != "" {
				t.Errorf("decodeErrors(%s) mismatch (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

func TestResponseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *ResponseError
		want string
	}{
		{&ResponseError{StatusCode: 404}, "vault: 404 Not Found"},
		{&ResponseError{StatusCode: 400, Errors: []string{"a", "b"}}, "vault: 400 Bad Request: a; b"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestDecodeKV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		v2          bool
		body        string
		want        string
		wantDeleted bool
		wantErr     string
	}{
		{name: "v1", body: `{"data":{"k":"value"},"lease_duration":2764800}`, want: "value"},
		{name: "v1 no field", body: `{"data":{"other":"value"}}`, wantErr: `no field "k"`},
		{name: "v1 number", body: `{"data":{"k":1}}`, wantErr: "not a string"},
		{name: "v1 no data", body: `{"data":null}`, wantErr: "no data"},
		{name: "v1 not json", body: `x`, wantErr: "invalid K/V response"},
		{name: "v2", v2: true, body: `{"data":{"data":{"k":"value"},"metadata":{"version":1}}}`, want: "value"},
		{name: "v2 deleted", v2: true, body: `{"data":{"data":null,"metadata":{"deletion_time":"2024-01-01T00:00:00Z","destroyed":false}}}`, wantDeleted: true},
		{name: "v2 no data", v2: true, body: `{}`, wantErr: "no data"},
		{name: "v2 no field", v2: true, body: `{"data":{"data":{}}}`, wantErr: `no field "k"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			var deleted bool
			var err error
			if tt.v2 {
				got, deleted, err = decodeKV2([]byte(tt.body), "k")
			} else {
				got, err = decodeKV1([]byte(tt.body), "k")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("decode = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || deleted != tt.wantDeleted {
				t.Errorf("decode = %q, %v, %v; want %q, %v", got, deleted, err, tt.want, tt.wantDeleted)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "", want: ""},
		{in: "/", want: ""},
		{in: " kv ", want: "kv"},
		{in: "/a//b/", want: "a/b"},
		{in: "a/./b", err: true},
		{in: "../a", err: true},
		{in: "a b/c%d", want: "a b/c%d"},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if got := escapePath("a b/c%d/é"); got != "a%20b/c%25d/%C3%A9" {
		t.Errorf("escapePath() = %q", got)
	}
}

func TestIsTransitCiphertext(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"vault:v1:abc":   true,
		"vault:v12:":     false,
		"vault:v12:x":    true,
		"vault:v:abc":    false,
		"vault:vx:abc":   false,
		"vault:v1":       false,
		"CiQKIAABAgMEBQ": false,
		`{"bytes":""}`:   false,
	} {
		if got := isTransitCiphertext(s); got != want {
			t.Errorf("isTransitCiphertext(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzDecodeResponse feeds arbitrary bodies to every decoder of Vault
// responses. Properties: no panic; error messages are bounded and free
// of control characters; decoded leases are in range; and a K/V entry in
// the layout decodes to the value it was built from.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`{"errors":["permission denied"]}`,
		`{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}`,
		`{"auth":{"client_token":"hvs.x","lease_duration":3600,"renewable":true}}`,
		`{"auth":{"client_token":"","lease_duration":-1}}`,
		`{"initialized":true,"sealed":false,"standby":false}`,
		`{"data":{"my-key":"value"}}`,
		`{"data":{"data":{"my-key":"value"},"metadata":{"version":1}}}`,
		`{"data":{"data":null,"metadata":{"deletion_time":"x","destroyed":true}}}`,
		`{"data":{"keys":["a","b/"]}}`,
		`{"data":{"ciphertext":"vault:v1:AAAA","plaintext":"AAAA"}}`,
		`null`, `[]`, `{"data":[]}`, `{"data":{"keys":[1]}}`,
	} {
		f.Add([]byte(s), "my-key")
	}
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		for _, e := range decodeErrors(body) {
			if len(e) > maxErrorLength+3 || e == "" || strings.ContainsFunc(e, unicode.IsControl) {
				t.Fatalf("decodeErrors: message %q", e)
			}
		}
		if len(decodeErrors(body)) > maxErrorMessages {
			t.Fatal("decodeErrors: too many messages")
		}
		if a, err := decodeAuth(body); err == nil && (a.ClientToken == "" || a.LeaseDuration < 0 || a.LeaseDuration > maxLease) {
			t.Fatalf("decodeAuth = %+v", a)
		}
		if h, err := decodeHealth(body); err == nil && (h.Initialized == nil || h.Sealed == nil) {
			t.Fatalf("decodeHealth = %+v", h)
		}
		decodeKV1(body, name)
		decodeKV2(body, name)
		isDeletedKV2(body)
		decodeList(body)
		decodeDataString(body, "ciphertext")
		isSealedError(body)
		isCASError(body)
		_ = (&response{status: 400, body: body}).err().Error()

		// Round trip: an entry in the layout gives back its value.
		if !utf8.ValidString(name) || !utf8.Valid(body) {
			return
		}
		value := string(body)
		v1, err := json.Marshal(map[string]any{"data": map[string]string{name: value}})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := decodeKV1(v1, name); err != nil || got != value {
			t.Fatalf("decodeKV1(%s) = %q, %v; want %q", v1, got, err, value)
		}
		v2, err := json.Marshal(map[string]any{"data": map[string]any{"data": map[string]string{name: value}}})
		if err != nil {
			t.Fatal(err)
		}
		if got, deleted, err := decodeKV2(v2, name); err != nil || deleted || got != value {
			t.Fatalf("decodeKV2(%s) = %q, %v, %v; want %q", v2, got, deleted, err, value)
		}
		var nf *NoFieldError
		if _, err := decodeKV1(v1, name+"x"); !errors.As(err, &nf) {
			t.Fatalf("decodeKV1 of another name = %v, want *NoFieldError", err)
		}
	})
}
