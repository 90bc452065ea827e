package kes

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The key lifecycle: RotateKey, RewrapKey, RestoreKey, and the version
// and deletion fields of DescribeKey and GenerateKey (docs/keys.md).

func TestLifecycleRoutes(t *testing.T) {
	t.Parallel()
	const (
		admin = Identity("3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22")
		other = Identity("ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6")
	)
	const (
		t1 = "2026-01-02T03:04:05.123456789Z"
		t2 = "2026-02-03T04:05:06Z"
		t3 = "2026-03-04T05:06:07.5Z"
	)
	// "old" and "new" as ciphertexts, "ctx" as context.
	oldCT, newCT, aad := []byte("old"), []byte("new"), []byte("ctx")
	const oldB64, newB64, ctxB64 = "b2xk", "bmV3", "Y3R4"

	rotate := func(ctx context.Context, c *Client) (any, error) { return c.RotateKey(ctx, "my-key") }
	type rewrapped struct {
		Ciphertext []byte
		Version    int
	}
	rewrap := func(aad []byte) func(ctx context.Context, c *Client) (any, error) {
		return func(ctx context.Context, c *Client) (any, error) {
			ct, v, err := c.RewrapKey(ctx, "my-key", oldCT, aad)
			return rewrapped{ct, v}, err
		}
	}
	restore := func(ctx context.Context, c *Client) (any, error) { return nil, c.RestoreKey(ctx, "my-key") }
	describe := func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "my-key") }
	generate := func(ctx context.Context, c *Client) (any, error) { return c.GenerateKey(ctx, "my-key", nil) }
	// rotateAnswer and rewrapAnswer are the cases in which the server's
	// answer to a plain request is an error or malformed: the client must
	// return wantErr and the zero result.
	rotateAnswer := func(name string, status int, contentType, respBody string, wantErr error) routeTest {
		return routeTest{
			name: "RotateKey/" + name, call: rotate,
			method: "POST", uri: "/v1/key/rotate/my-key",
			status: status, contentType: contentType, respBody: respBody,
			want: 0, wantErr: wantErr,
		}
	}
	rewrapAnswer := func(name string, status int, respBody string, wantErr error) routeTest {
		return routeTest{
			name: "RewrapKey/" + name, call: rewrap(nil),
			method: "POST", uri: "/v1/key/rewrap/my-key",
			reqBody: `{"ciphertext":"` + oldB64 + `"}`,
			status:  status, contentType: jsonType, respBody: respBody,
			want: rewrapped{}, wantErr: wantErr,
		}
	}

	tests := []routeTest{
		{
			name: "RotateKey", call: rotate,
			method: "POST", uri: "/v1/key/rotate/my-key", accept: jsonType,
			contentType: jsonType, respBody: `{"version":2}` + "\n",
			want: 2,
		},
		{
			name: "RotateKey/escaped name",
			call: func(ctx context.Context, c *Client) (any, error) { return c.RotateKey(ctx, "a/b") },
			// The server refuses the name; the client must not send a
			// path that reaches another route.
			method: "POST", uri: "/v1/key/rotate/a%2Fb",
			status: 400, contentType: jsonType, respBody: kesError("key name 'a/b' is empty, too long or contains invalid characters"),
			want: 0, wantErr: NewError(400, "key name 'a/b' is empty, too long or contains invalid characters"),
		},
		rotateAnswer("not found", 404, jsonType, kesError("key does not exist"), ErrKeyNotFound),
		rotateAnswer("scheduled", 409, jsonType, kesError("key is scheduled for deletion"), ErrKeyScheduled),
		rotateAnswer("conflict", 409, jsonType, kesError("key rotation conflict"), ErrKeyConflict),
		rotateAnswer("upstream server", 404, "text/plain; charset=utf-8", "404 page not found\n", NewError(404, "404 page not found")),
		rotateAnswer("no version", 200, jsonType, `{}`, errMalformed),
		rotateAnswer("version zero", 200, jsonType, `{"version":0}`, errMalformed),
		rotateAnswer("version as string", 200, jsonType, `{"version":"2"}`, errMalformed),
		rotateAnswer("version too large", 200, jsonType, `{"version":1e400}`, errMalformed),
		{
			name: "RewrapKey", call: rewrap(aad),
			method: "POST", uri: "/v1/key/rewrap/my-key", accept: jsonType,
			reqBody:     `{"ciphertext":"` + oldB64 + `","context":"` + ctxB64 + `"}`,
			contentType: jsonType, respBody: `{"ciphertext":"` + newB64 + `","version":3}` + "\n",
			want: rewrapped{newCT, 3},
		},
		{
			name: "RewrapKey/no context", call: rewrap(nil),
			method: "POST", uri: "/v1/key/rewrap/my-key",
			reqBody:     `{"ciphertext":"` + oldB64 + `"}`,
			contentType: jsonType, respBody: `{"ciphertext":"` + newB64 + `","version":1}`,
			want: rewrapped{newCT, 1},
		},
		{
			name: "RewrapKey/empty ciphertext is sent as empty",
			call: func(ctx context.Context, c *Client) (any, error) {
				ct, v, err := c.RewrapKey(ctx, "my-key", nil, nil)
				return rewrapped{ct, v}, err
			},
			method: "POST", uri: "/v1/key/rewrap/my-key",
			reqBody: `{"ciphertext":""}`,
			status:  400, contentType: jsonType, respBody: kesError("decryption failed: ciphertext is not authentic"),
			want: rewrapped{}, wantErr: ErrDecrypt,
		},
		{
			name: "RewrapKey/not authentic", call: rewrap(aad),
			method: "POST", uri: "/v1/key/rewrap/my-key",
			reqBody: `{"ciphertext":"` + oldB64 + `","context":"` + ctxB64 + `"}`,
			status:  400, contentType: jsonType, respBody: kesError("decryption failed: ciphertext is not authentic"),
			want: rewrapped{}, wantErr: ErrDecrypt,
		},
		rewrapAnswer("scheduled", 409, kesError("key is scheduled for deletion"), ErrKeyScheduled),
		rewrapAnswer("forbidden", 403, kesError("not authorized: insufficient permissions"), ErrNotAllowed),
		rewrapAnswer("no version", 200, `{"ciphertext":"`+newB64+`"}`, errMalformed),
		rewrapAnswer("no ciphertext", 200, `{"ciphertext":null,"version":2}`, errMalformed),
		rewrapAnswer("invalid base64", 200, `{"ciphertext":"!!","version":2}`, errMalformed),
		{
			name: "RestoreKey", call: restore,
			method: "POST", uri: "/v1/key/restore/my-key",
		},
		{
			name: "RestoreKey/not scheduled", call: restore,
			method: "POST", uri: "/v1/key/restore/my-key",
			status: 400, contentType: jsonType, respBody: kesError("key is not scheduled for deletion"),
			wantErr: ErrKeyNotScheduled,
		},
		{
			name: "RestoreKey/not found", call: restore,
			method: "POST", uri: "/v1/key/restore/my-key",
			status: 404, contentType: jsonType, respBody: kesError("key does not exist"),
			wantErr: ErrKeyNotFound,
		},
		{
			name:   "DeleteKey/already scheduled",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteKey(ctx, "my-key") },
			method: "DELETE", uri: "/v1/key/delete/my-key",
			status: 409, contentType: jsonType, respBody: kesError("key is scheduled for deletion"),
			wantErr: ErrKeyScheduled,
		},
		{
			name: "DescribeKey/rotated", call: describe,
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody: `{"name":"my-key","algorithm":"AES256","created_at":"` + t1 + `","created_by":"` + string(admin) + `","version":3,` +
				`"versions":[{"version":1,"created_at":"` + t1 + `","created_by":"` + string(admin) + `"},` +
				`{"version":2,"created_at":"` + t2 + `"},` +
				`{"version":3,"created_at":"` + t3 + `","created_by":"` + string(other) + `"}]}` + "\n",
			want: &KeyInfo{
				Name: "my-key", Algorithm: AES256, CreatedAt: mustTime(t, t1), CreatedBy: admin, Version: 3,
				Versions: []KeyVersionInfo{
					{Version: 1, CreatedAt: mustTime(t, t1), CreatedBy: admin},
					{Version: 2, CreatedAt: mustTime(t, t2)},
					{Version: 3, CreatedAt: mustTime(t, t3), CreatedBy: other},
				},
			},
		},
		{
			name: "DescribeKey/scheduled", call: describe,
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody: `{"name":"my-key","algorithm":"ChaCha20","created_at":"` + t1 + `",` +
				`"deletion":{"scheduled_at":"` + t2 + `","delete_at":"` + t3 + `","scheduled_by":"` + string(other) + `"}}`,
			want: &KeyInfo{
				Name: "my-key", Algorithm: ChaCha20, CreatedAt: mustTime(t, t1),
				Deletion: &KeyDeletion{ScheduledAt: mustTime(t, t2), DeleteAt: mustTime(t, t3), ScheduledBy: other},
			},
		},
		{
			name: "DescribeKey/null lifecycle fields", call: describe,
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody:    `{"name":"my-key","algorithm":"AES256","created_at":"` + t1 + `","version":null,"versions":null,"deletion":null}`,
			want:        &KeyInfo{Name: "my-key", Algorithm: AES256, CreatedAt: mustTime(t, t1)},
		},
		{
			name: "DescribeKey/versions not a list", call: describe,
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody:    `{"name":"my-key","algorithm":"AES256","versions":{"version":1}}`,
			want:        (*KeyInfo)(nil), wantErr: errMalformed,
		},
		{
			name: "DescribeKey/deletion time malformed", call: describe,
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody:    `{"name":"my-key","algorithm":"AES256","deletion":{"delete_at":"tomorrow"}}`,
			want:        (*KeyInfo)(nil), wantErr: errMalformed,
		},
		{
			name: "GenerateKey/rotated", call: generate,
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody:     `{}`,
			contentType: jsonType, respBody: `{"plaintext":"` + oldB64 + `","ciphertext":"` + newB64 + `","version":2}` + "\n",
			want: DEK{Plaintext: oldCT, Ciphertext: newCT, Version: 2},
		},
		{
			name: "GenerateKey/never rotated", call: generate,
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody:     `{}`,
			contentType: jsonType, respBody: `{"plaintext":"` + oldB64 + `","ciphertext":"` + newB64 + `"}` + "\n",
			want: DEK{Plaintext: oldCT, Ciphertext: newCT},
		},
		{
			name: "GenerateKey/scheduled", call: generate,
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody: `{}`,
			status:  409, contentType: jsonType, respBody: kesError("key is scheduled for deletion"),
			want: DEK{}, wantErr: ErrKeyScheduled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

// TestKeyInfoJSON checks that a KeyInfo of a key that was never rotated
// encodes as before the lifecycle fields existed, and that the fields
// round-trip.
func TestKeyInfoJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		info KeyInfo
		want string
	}{
		{
			name: "never rotated",
			info: KeyInfo{Name: "k", Algorithm: AES256, CreatedAt: at, CreatedBy: "me"},
			want: `{"name":"k","algorithm":"AES256","created_at":"2026-01-02T03:04:05Z","created_by":"me"}`,
		},
		{
			name: "rotated and scheduled",
			info: KeyInfo{
				Name: "k", Algorithm: ChaCha20, CreatedAt: at, Version: 2,
				Versions: []KeyVersionInfo{{Version: 1, CreatedAt: at}, {Version: 2, CreatedAt: at, CreatedBy: "you"}},
				Deletion: &KeyDeletion{ScheduledAt: at, DeleteAt: at.Add(time.Hour)},
			},
			want: `{"name":"k","algorithm":"ChaCha20","created_at":"2026-01-02T03:04:05Z","version":2,` +
				`"versions":[{"version":1,"created_at":"2026-01-02T03:04:05Z"},{"version":2,"created_at":"2026-01-02T03:04:05Z","created_by":"you"}],` +
				`"deletion":{"scheduled_at":"2026-01-02T03:04:05Z","delete_at":"2026-01-02T04:04:05Z"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.info)
			if err != nil {
				t.Fatalf("Marshal = %v", err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal = %s, want %s", b, tt.want)
			}
			var got KeyInfo
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%s) = %v", b, err)
			}
			if diff := cmp.Diff(tt.info, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzLifecycleResponses decodes arbitrary describe and generate answers:
// decoding never panics, and what decodes encodes and decodes again to
// the same value (an empty versions list encodes as none).
func FuzzLifecycleResponses(f *testing.F) {
	f.Add(`{"name":"k","algorithm":"AES256","created_at":"2026-01-02T03:04:05Z","version":2,"versions":[{"version":1,"created_at":"2026-01-02T03:04:05Z"},{"version":2,"created_at":"2026-01-02T03:04:05Z","created_by":"x"}],"deletion":{"scheduled_at":"2026-01-02T03:04:05Z","delete_at":"2026-01-09T03:04:05Z","scheduled_by":"x"}}`)
	f.Add(`{"plaintext":"b2xk","ciphertext":"bmV3","version":3}`)
	f.Add(`{"version":-1,"versions":[null,{}],"deletion":{}}`)
	f.Fuzz(func(t *testing.T, s string) {
		var info KeyInfo
		if json.Unmarshal([]byte(s), &info) == nil {
			b, err := json.Marshal(info)
			if err != nil {
				t.Fatalf("Marshal(%+v) = %v", info, err)
			}
			var again KeyInfo
			if err := json.Unmarshal(b, &again); err != nil {
				t.Fatalf("Unmarshal(%s) = %v", b, err)
			}
			if diff := cmp.Diff(info, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("KeyInfo round trip (-first +second):\n%s", diff)
			}
		}
		var dek DEK
		if json.Unmarshal([]byte(s), &dek) == nil {
			b, err := json.Marshal(dek)
			if err != nil {
				t.Fatalf("Marshal(DEK) = %v", err)
			}
			var again DEK
			if err := json.Unmarshal(b, &again); err != nil || again.Version != dek.Version {
				t.Fatalf("DEK round trip: %v, version %d, want %d", err, again.Version, dek.Version)
			}
		}
	})
}
