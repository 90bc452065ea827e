package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	routes := Routes()
	if len(routes) != 22 {
		t.Fatalf("len(Routes()) = %d, want 22", len(routes))
	}
	seen := map[string]bool{}
	counted := 0
	for _, r := range routes {
		if seen[r.Path] {
			t.Errorf("duplicate route %s", r.Path)
		}
		seen[r.Path] = true
		if r.Counted {
			counted++
		}
		wantBody := int64(0)
		switch r.Path {
		case PathKeyImport, PathKeyGenerate, PathKeyEncrypt, PathKeyDecrypt, PathKeyHMAC:
			wantBody = 1_000_000
		}
		if r.MaxBody != wantBody {
			t.Errorf("%s: MaxBody = %d, want %d", r.Path, r.MaxBody, wantBody)
		}
		wantTimeout := 15 * time.Second
		switch r.Path {
		case PathVersion, PathAPI:
			wantTimeout = 10 * time.Second
		case PathLogError, PathLogAudit:
			wantTimeout = 0
		}
		if r.Timeout != wantTimeout {
			t.Errorf("%s: Timeout = %v, want %v", r.Path, r.Timeout, wantTimeout)
		}
	}
	if counted != 15 {
		t.Errorf("%d counted routes, want 15 (routes 6-20)", counted)
	}
	// Routes returns a copy.
	routes[0].Timeout = time.Hour
	if Routes()[0].Timeout == time.Hour {
		t.Error("Routes() shares its backing array")
	}
}

func TestRouteMethods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		route  Route
		method string
		want   bool
	}{
		{"get-get", Route{Method: http.MethodGet}, http.MethodGet, true},
		{"get-head", Route{Method: http.MethodGet}, http.MethodHead, false},
		{"get-post", Route{Method: http.MethodGet}, http.MethodPost, false},
		{"put-put", Route{Method: http.MethodPut}, http.MethodPut, true},
		{"put-post", Route{Method: http.MethodPut}, http.MethodPost, true},
		{"put-get", Route{Method: http.MethodPut}, http.MethodGet, false},
		{"delete-post", Route{Method: http.MethodDelete}, http.MethodPost, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.route.AcceptsMethod(tt.method); got != tt.want {
				t.Errorf("AcceptsMethod(%q) = %v, want %v", tt.method, got, tt.want)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		err          error
		generic      kes.Error
		want         kes.Error
		wantInternal bool
	}{
		{"nil", nil, ErrReadKey, kes.Error{}, false},
		{"api error", kes.ErrPolicyNotFound, ErrReadKey, kes.ErrPolicyNotFound, false},
		{"wrapped api error", fmt.Errorf("x: %w", InvalidKeyName("a.b")), ErrReadKey, InvalidKeyName("a.b"), false},
		{"exists", fmt.Errorf("mem: %w", keystore.ErrExists), ErrCreateKey, kes.ErrKeyExists, false},
		{"not found", fmt.Errorf("mem: %w", keystore.ErrNotFound), ErrReadKey, kes.ErrKeyNotFound, false},
		{"decrypt", crypto.ErrDecrypt, ErrDecryptInternal, kes.ErrDecrypt, false},
		{"no hmac", crypto.ErrNoHMAC, ErrInternal, ErrNoHMAC, false},
		{"other", errors.New("disk on fire"), ErrReadKey, ErrReadKey, true},
		{"unreachable", &keystore.UnreachableError{Err: io.EOF}, ErrListKeys, ErrStoreDown, true},
		{"zero generic", errors.New("x"), kes.Error{}, ErrInternal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, internal := Translate(tt.err, tt.generic)
			if got != tt.want {
				t.Errorf("Translate(%v) = %d %q, want %d %q", tt.err, got.Status(), got.Error(), tt.want.Status(), tt.want.Error())
			}
			if internal != tt.wantInternal {
				t.Errorf("Translate(%v) internal = %v, want %v", tt.err, internal, tt.wantInternal)
			}
		})
	}
}

// TestErrorCatalogue pins the status and exact message of every error the
// server sends; the shared ones are the SDK's sentinels.
func TestErrorCatalogue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    kes.Error
		status int
		msg    string
	}{
		{"key exists", kes.ErrKeyExists, 400, "key already exists"},
		{"key not found", kes.ErrKeyNotFound, 404, "key does not exist"},
		{"not allowed", kes.ErrNotAllowed, 403, "not authorized: insufficient permissions"},
		{"decrypt", kes.ErrDecrypt, 400, "decryption failed: ciphertext is not authentic"},
		{"policy not found", kes.ErrPolicyNotFound, 404, "policy does not exist"},
		{"identity not found", kes.ErrIdentityNotFound, 404, "identity does not exist"},
		{"no hmac", ErrNoHMAC, 409, "key does not support HMAC"},
		{"key name", InvalidKeyName("a.b"), 400, "key name 'a.b' is empty, too long or contains invalid characters"},
		{"policy name", InvalidPolicyName("p/"), 400, "policy name 'p/' is empty, too long or contains invalid characters"},
		{"identity", InvalidIdentity(""), 400, "identity '' is empty, too long or contains invalid characters"},
		{"pattern", InvalidPattern("*-*"), 400, "listing pattern '*-*' is empty, too long or is invalid"},
		{"body", ErrInvalidBody, 400, "invalid request body"},
		{"import body", ErrInvalidImportBody, 400, "invalid import key request body"},
		{"algorithm", UnsupportedAlgorithm("DES"), 406, "algorithm 'DES' is not supported"},
		{"key size", InvalidKeySize("AES256"), 406, "invalid key size for 'AES256'"},
		{"cert required", ErrCertRequired, 400, "tls: client certificate is required"},
		{"too many certs", ErrTooManyCerts, 400, "tls: received more than one client certificate"},
		{"insecure", ErrInsecure, 400, "insecure connection: TLS is required"},
		{"method", MethodNotAllowed("POST", "GET"), 405, "received method 'POST' expected 'GET'"},
		{"create", ErrCreateKey, 502, "failed to create key"},
		{"read", ErrReadKey, 502, "failed to read key"},
		{"delete", ErrDeleteKey, 502, "failed to delete key"},
		{"list", ErrListKeys, 502, "failed to list keys"},
		{"store down", ErrStoreDown, 504, "key store is not reachable"},
		{"store error", ErrStoreError, 502, "key store is unavailable"},
		{"generate", ErrGenerateKey, 500, "failed to generate encryption key"},
		{"encrypt", ErrEncrypt, 500, "failed to encrypt plaintext"},
		{"decrypt internal", ErrDecryptInternal, 500, "failed to decrypt ciphertext"},
		{"create internal", ErrCreateKeyInternal, 500, "failed to create key"},
		{"version", ErrVersion, 500, "failed to read server version"},
		{"internal", ErrInternal, 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.err.Status() != tt.status || tt.err.Error() != tt.msg {
				t.Errorf("got %d %q, want %d %q", tt.err.Status(), tt.err.Error(), tt.status, tt.msg)
			}
			if !errors.Is(fmt.Errorf("w: %w", tt.err), kes.NewError(tt.status, tt.msg)) {
				t.Errorf("errors.Is does not match an equal kes.Error")
			}
		})
	}
}

// TestRouteErrors pins the generic answer of every route whose own
// operation can fail in ways the catalogue does not know.
func TestRouteErrors(t *testing.T) {
	t.Parallel()
	want := map[string]kes.Error{
		PathReady:       ErrStoreError,
		PathKeyCreate:   ErrGenerateKey,
		PathKeyImport:   ErrCreateKeyInternal,
		PathKeyDescribe: ErrReadKey,
		PathKeyList:     ErrListKeys,
		PathKeyDelete:   ErrDeleteKey,
		PathKeyGenerate: ErrGenerateKey,
		PathKeyEncrypt:  ErrEncrypt,
		PathKeyDecrypt:  ErrDecryptInternal,
		PathKeyHMAC:     ErrInternal,
	}
	for _, r := range Routes() {
		if got := r.Err; got != want[r.Path] {
			t.Errorf("%s: Err = %d %q, want %d %q", r.Path, got.Status(), got.Error(), want[r.Path].Status(), want[r.Path].Error())
		}
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  kes.Error
		want string
	}{
		{"plain", kes.ErrKeyNotFound, "{\"message\":\"key does not exist\"\n}"},
		{"html escaped", InvalidKeyName("a<b>&"), "{\"message\":\"key name 'a\\u003cb\\u003e\\u0026' is empty, too long or contains invalid characters\"\n}"},
		{"quote", InvalidKeyName(`a"b`), "{\"message\":\"key name 'a\\\"b' is empty, too long or contains invalid characters\"\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			if err := WriteError(rec, tt.err); err != nil {
				t.Fatalf("WriteError: %v", err)
			}
			if rec.Code != tt.err.Status() {
				t.Errorf("status = %d, want %d", rec.Code, tt.err.Status())
			}
			if got := rec.Body.String(); got != tt.want {
				t.Errorf("body = %q, want %q", got, tt.want)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got, want := rec.Header().Get("Content-Length"), fmt.Sprint(len(tt.want)); got != want {
				t.Errorf("Content-Length = %q, want %q", got, want)
			}
			var resp ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Message != tt.err.Error() {
				t.Errorf("body does not decode to the message: %v %q", err, resp.Message)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	if err := WriteJSON(rec, &VersionResponse{Version: "<unknown>", Commit: "a&b"}); err != nil {
		t.Fatal(err)
	}
	const want = "{\"version\":\"\\u003cunknown\\u003e\",\"commit\":\"a\\u0026b\"}\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := WriteJSON(httptest.NewRecorder(), func() {}); err == nil {
		t.Error("WriteJSON(func) succeeded")
	}
}

func TestWriteOK(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	WriteOK(rec)
	if rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "0" {
		t.Errorf("got %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	if _, ok := rec.Header()["Content-Type"]; ok {
		t.Errorf("Content-Type set: %v", rec.Header())
	}
}

// TestWriteBytes checks that the reflection-free encoders produce exactly
// what encoding/json produces for the same values.
func TestWriteBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		v1, v2 []byte
	}{
		{"nil", nil, nil},
		{"empty", []byte{}, []byte{}},
		{"short", []byte{0xff}, []byte("ab")},
		{"long", []byte(strings.Repeat("\xfb\xff<>&", 1000)), make([]byte, 76)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, _ := json.Marshal(&DecryptKeyResponse{Plaintext: tt.v1})
			rec := httptest.NewRecorder()
			if err := WriteBytes(rec, "plaintext", tt.v1, 0); err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); got != string(want)+"\n" {
				t.Errorf("WriteBytes = %q, want %q", got, want)
			}
			// 0: an unrotated key, no version field; 2: a rotated one.
			for _, version := range []int{0, 2} {
				want, _ = json.Marshal(&GenerateKeyResponse{Plaintext: tt.v1, Ciphertext: tt.v2, Version: version})
				rec = httptest.NewRecorder()
				if err := WriteBytes2(rec, "plaintext", tt.v1, "ciphertext", tt.v2, version); err != nil {
					t.Fatal(err)
				}
				if got := rec.Body.String(); got != string(want)+"\n" {
					t.Errorf("WriteBytes2(version %d) = %q, want %q", version, got, want)
				}
				if rec.Header().Get("Content-Length") != fmt.Sprint(len(want)+1) {
					t.Errorf("Content-Length = %q", rec.Header().Get("Content-Length"))
				}
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    EncryptKeyRequest
		wantErr bool
	}{
		{"empty object", `{}`, EncryptKeyRequest{}, false},
		{"fields", `{"plaintext":"AAE=","context":"Ag=="}`, EncryptKeyRequest{Plaintext: []byte{0, 1}, Context: []byte{2}}, false},
		{"unknown field", `{"plaintext":"AAE=","foo":[1,2]}`, EncryptKeyRequest{Plaintext: []byte{0, 1}}, false},
		{"trailing data", `{"plaintext":"AAE="} garbage {`, EncryptKeyRequest{Plaintext: []byte{0, 1}}, false},
		{"null", `{"plaintext":null,"context":null}`, EncryptKeyRequest{}, false},
		{"case-insensitive names", `{"PlainText":"AAE="}`, EncryptKeyRequest{Plaintext: []byte{0, 1}}, false},
		{"empty body", ``, EncryptKeyRequest{}, true},
		{"bad json", `{"plaintext":`, EncryptKeyRequest{}, true},
		{"bad base64", `{"plaintext":"!!"}`, EncryptKeyRequest{}, true},
		{"unpadded base64", `{"plaintext":"AAE"}`, EncryptKeyRequest{}, true},
		{"wrong type", `{"plaintext":5}`, EncryptKeyRequest{}, true},
		{"wrong version type", `{"version":5}`, EncryptKeyRequest{}, true},
		{"array", `[]`, EncryptKeyRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got EncryptKeyRequest
			err := DecodeJSON(strings.NewReader(tt.body), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeJSON(%q) error = %v, wantErr %v", tt.body, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeJSON(%q) mismatch (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

// TestDecodeJSONLimit checks the interplay with http.MaxBytesReader: a
// first value complete within the limit decodes even if the body goes on,
// one that is not fails.
func TestDecodeJSONLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		wantErr bool
	}{
		{"within limit", `{"plaintext":"AAE="}`, false},
		{"trailing data over limit", `{"plaintext":"AAE="}` + strings.Repeat(" ", 100), false},
		{"value over limit", `{"plaintext":"` + strings.Repeat("A", 100) + `"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			body := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(tt.body)), 64)
			var got EncryptKeyRequest
			err := DecodeJSON(body, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeJSON error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && string(got.Plaintext) != "\x00\x01" {
				t.Errorf("plaintext = %x", got.Plaintext)
			}
		})
	}
}

func TestWireShapes(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"status reachable", StatusResponse{Version: "v", OS: "linux", Arch: "amd64", UpTime: 3, CPUs: 2, UsableCPUs: 2, HeapAlloc: 10, StackAlloc: 20, KeyStoreLatency: 1},
			`{"version":"v","os":"linux","arch":"amd64","uptime":3,"num_cpu":2,"num_cpu_used":2,"mem_heap_used":10,"mem_stack_used":20,"keystore_latency":1}`},
		{"status unreachable", StatusResponse{KeyStoreUnreachable: true},
			`{"version":"","os":"","arch":"","uptime":0,"num_cpu":0,"num_cpu_used":0,"mem_heap_used":0,"mem_stack_used":0,"keystore_unreachable":true}`},
		{"describe key", DescribeKeyResponse{Name: "k", Algorithm: "AES256", Creation: Creation{CreatedAt: at}},
			`{"name":"k","algorithm":"AES256","created_at":"2025-01-02T03:04:05.000000006Z"}`},
		{"list keys", ListKeysResponse{Names: []string{}}, `{"names":[]}`},
		{"list policies", ListPoliciesResponse{Names: []string{"a"}}, `{"names":["a"],"continue_at":""}`},
		{"list identities", ListIdentitiesResponse{Identities: []string{}}, `{"identities":[],"continue_at":""}`},
		{"read policy", ReadPolicyResponse{Name: "p", Policy: kes.Policy{Allow: RuleSet{"/v1/key/*": {}}, CreatedAt: at, CreatedBy: "x"}},
			`{"name":"p","allow":{"/v1/key/*":{}},"created_at":"2025-01-02T03:04:05.000000006Z","created_by":"x"}`},
		{"describe admin", DescribeIdentityResponse{IsAdmin: true, Creation: Creation{CreatedAt: at}},
			`{"admin":true,"created_at":"2025-01-02T03:04:05.000000006Z"}`},
		{"describe identity", DescribeIdentityResponse{Policy: "p", Creation: Creation{CreatedAt: at, CreatedBy: "a"}},
			`{"policy":"p","created_at":"2025-01-02T03:04:05.000000006Z","created_by":"a"}`},
		{"self admin", SelfDescribeResponse{Identity: "i", IsAdmin: true, Creation: Creation{CreatedAt: at}},
			`{"identity":"i","admin":true,"created_at":"2025-01-02T03:04:05.000000006Z"}`},
		{"self policy", SelfDescribeResponse{Identity: "i", Creation: Creation{CreatedAt: at, CreatedBy: "a"}, Policy: "p", Deny: RuleSet{"x": {}}},
			`{"identity":"i","created_at":"2025-01-02T03:04:05.000000006Z","created_by":"a","policy":"p","deny":{"x":{}}}`},
		{"audit event", AuditEvent{Time: at, Request: AuditRequest{Path: "/v1/ready"}, Response: AuditResponse{StatusCode: 200, Time: 3}},
			`{"time":"2025-01-02T03:04:05.000000006Z","request":{"path":"/v1/ready"},"response":{"code":200,"time":3}}`},
		{"route", RouteResponse{Method: "GET", Path: "/v1/api", Timeout: 10}, `{"method":"GET","path":"/v1/api","max_body":0,"timeout":10}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("json.Marshal = %s, want %s", got, tt.want)
			}
		})
	}
}
