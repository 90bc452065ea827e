package kes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newTestServer starts an HTTPS server with HTTP/2 that, like a KES server
// in its default mode, requires a client certificate but does not verify
// it.
func newTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// trustTestServer makes c trust the certificate of srv (and of every
// other httptest server, which all share it).
func trustTestServer(t *testing.T, c *Client, srv *httptest.Server) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c.HTTPClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
}

// newTestClient returns a client for the servers that authenticates with
// the first API key test vector.
func newTestClient(t *testing.T, servers ...*httptest.Server) *Client {
	t.Helper()
	c := NewClient(servers[0].URL, mustParseAPIKey(t, apiKeyVectors[0].key))
	c.Endpoints = nil
	for _, srv := range servers {
		c.Endpoints = append(c.Endpoints, srv.URL)
	}
	trustTestServer(t, c, servers[0])
	return c
}

// peerIdentity returns the identity of the request's client certificate,
// as a KES server computes it.
func peerIdentity(r *http.Request) Identity {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return IdentityOf(r.TLS.PeerCertificates[0])
}

const (
	jsonType   = "application/json"
	testTime   = "2026-01-02T03:04:05.123456789Z"
	serverTime = "2026-01-01T10:00:00.5+01:00"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kesError is an error body as a KES server writes it.
func kesError(msg string) string { return `{"message":"` + msg + `"` + "\n}" }

type selfResult struct {
	Info   *IdentityInfo
	Policy *Policy
}

type listResult[T any] struct {
	Names []T
	Next  string
}

func TestClientRoutes(t *testing.T) {
	t.Parallel()
	const (
		admin = Identity("3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22")
		other = Identity("ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6")
	)
	created := mustTime(t, testTime)
	started := mustTime(t, serverTime)
	key32 := []byte("0123456789abcdef0123456789abcdef")
	key32b64 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

	tests := []routeTest{
		{
			name:   "Version",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Version(ctx) },
			method: "GET", uri: "/version", accept: jsonType,
			contentType: jsonType, respBody: `{"version":"2025-05-27T05-04-48Z","commit":"\u003cunknown\u003e"}` + "\n",
			want: "2025-05-27T05-04-48Z",
		},
		{
			name:   "Status",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx) },
			method: "GET", uri: "/v1/status",
			contentType: jsonType,
			respBody:    `{"version":"v1","os":"linux","arch":"amd64","uptime":3,"num_cpu":2,"num_cpu_used":2,"mem_heap_used":3854080,"mem_stack_used":589824,"keystore_latency":12}`,
			want: State{
				Version: "v1", OS: "linux", Arch: "amd64", UpTime: 3 * time.Second,
				CPUs: 2, UsableCPUs: 2, HeapAlloc: 3854080, StackAlloc: 589824,
				KeyStoreLatency: 12 * time.Millisecond,
			},
		},
		{
			name:   "Status/keystore unreachable",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx) },
			method: "GET", uri: "/v1/status",
			contentType: jsonType,
			respBody:    `{"version":"v1","os":"linux","arch":"arm64","uptime":7200,"num_cpu":8,"num_cpu_used":4,"mem_heap_used":1,"mem_stack_used":2,"keystore_unreachable":true}`,
			want: State{
				Version: "v1", OS: "linux", Arch: "arm64", UpTime: 2 * time.Hour,
				CPUs: 8, UsableCPUs: 4, HeapAlloc: 1, StackAlloc: 2,
				KeyStoreUnreachable: true,
			},
		},
		{
			name:   "IsReady",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.IsReady(ctx) },
			method: "GET", uri: "/v1/ready",
			want: true,
		},
		{
			name:   "IsReady/not reachable",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.IsReady(ctx) },
			method: "GET", uri: "/v1/ready",
			status: 504, contentType: jsonType, respBody: kesError("key store is not reachable"),
			want: false, wantErr: NewError(504, "key store is not reachable"),
		},
		{
			name:   "APIs",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.APIs(ctx) },
			method: "GET", uri: "/v1/api",
			contentType: jsonType,
			respBody:    `[{"method":"GET","path":"/v1/status","max_body":0,"timeout":15},{"method":"PUT","path":"/v1/key/encrypt/","max_body":1000000,"timeout":15},{"method":"GET","path":"/v1/log/audit","max_body":0,"timeout":0}]`,
			want: []API{
				{Method: "GET", Path: "/v1/status", Timeout: 15 * time.Second},
				{Method: "PUT", Path: "/v1/key/encrypt/", MaxBody: 1000000, Timeout: 15 * time.Second},
				{Method: "GET", Path: "/v1/log/audit"},
			},
		},
		{
			name:   "CreateKey",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.CreateKey(ctx, "my-key") },
			method: "POST", uri: "/v1/key/create/my-key",
		},
		{
			name:   "CreateKey/exists",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.CreateKey(ctx, "my-key") },
			method: "POST", uri: "/v1/key/create/my-key",
			status: 400, contentType: jsonType, respBody: kesError("key already exists"),
			wantErr: ErrKeyExists,
		},
		{
			name:   "CreateKey/legacy exists",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.CreateKey(ctx, "my-key") },
			method: "POST", uri: "/v1/key/create/my-key",
			status: 400, contentType: jsonType, respBody: kesError("key does already exist"),
			wantErr: ErrKeyExists,
		},
		{
			name:   "CreateKey/empty name keeps the slash",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.CreateKey(ctx, "") },
			method: "POST", uri: "/v1/key/create/",
			status: 400, contentType: jsonType, respBody: kesError("key name '' is empty, too long or contains invalid characters"),
			wantErr: NewError(400, "key name '' is empty, too long or contains invalid characters"),
		},
		{
			name:   "CreateKey/forbidden",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.CreateKey(ctx, "my-key") },
			method: "POST", uri: "/v1/key/create/my-key",
			status: 403, contentType: jsonType, respBody: kesError("not authorized: insufficient permissions"),
			wantErr: ErrNotAllowed,
		},
		{
			name: "ImportKey",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ImportKey(ctx, "my-key", &ImportKeyRequest{Key: key32})
			},
			method: "POST", uri: "/v1/key/import/my-key",
			reqBody: `{"key":"` + key32b64 + `","cipher":"AES256"}`,
		},
		{
			name: "ImportKey/ChaCha20",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ImportKey(ctx, "my-key", &ImportKeyRequest{Key: key32, Cipher: ChaCha20})
			},
			method: "POST", uri: "/v1/key/import/my-key",
			reqBody: `{"key":"` + key32b64 + `","cipher":"ChaCha20"}`,
		},
		{
			name: "ImportKey/invalid size",
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.ImportKey(ctx, "my-key", &ImportKeyRequest{Key: []byte{1}})
			},
			method: "POST", uri: "/v1/key/import/my-key",
			reqBody: `{"key":"AQ==","cipher":"AES256"}`,
			status:  406, contentType: jsonType, respBody: kesError("invalid key size for 'AES256'"),
			wantErr: NewError(406, "invalid key size for 'AES256'"),
		},
		{
			name:   "DescribeKey",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "my-key") },
			method: "GET", uri: "/v1/key/describe/my-key",
			contentType: jsonType,
			respBody:    `{"name":"my-key","algorithm":"ChaCha20","created_at":"` + testTime + `","created_by":"` + string(admin) + `"}`,
			want:        &KeyInfo{Name: "my-key", Algorithm: ChaCha20, CreatedAt: created, CreatedBy: admin},
		},
		{
			name:   "DescribeKey/legacy key",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "old") },
			method: "GET", uri: "/v1/key/describe/old",
			contentType: jsonType,
			respBody:    `{"name":"old","algorithm":"AES256","created_at":"0001-01-01T00:00:00Z"}`,
			want:        &KeyInfo{Name: "old", Algorithm: AES256},
		},
		{
			name:   "DescribeKey/not found",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "my-key") },
			method: "GET", uri: "/v1/key/describe/my-key",
			status: 404, contentType: jsonType, respBody: kesError("key does not exist"),
			want: (*KeyInfo)(nil), wantErr: ErrKeyNotFound,
		},
		{
			name:   "DescribeKey/escaped name",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "a/b c") },
			method: "GET", uri: "/v1/key/describe/a%2Fb%20c",
			status: 400, contentType: jsonType, respBody: kesError("key name 'a/b c' is empty, too long or contains invalid characters"),
			want: (*KeyInfo)(nil), wantErr: NewError(400, "key name 'a/b c' is empty, too long or contains invalid characters"),
		},
		{
			name:   "DeleteKey",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteKey(ctx, "my-key") },
			method: "DELETE", uri: "/v1/key/delete/my-key",
		},
		{
			name:   "DeleteKey/not found",
			call:   func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteKey(ctx, "my-key") },
			method: "DELETE", uri: "/v1/key/delete/my-key",
			status: 404, contentType: jsonType, respBody: kesError("key does not exist"),
			wantErr: ErrKeyNotFound,
		},
		{
			name:   "GenerateKey",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.GenerateKey(ctx, "my-key", nil) },
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody:     `{}`,
			contentType: jsonType, respBody: `{"plaintext":"cA==","ciphertext":"Yw=="}`,
			want: DEK{Plaintext: []byte("p"), Ciphertext: []byte("c")},
		},
		{
			name:   "GenerateKey/context",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.GenerateKey(ctx, "my-key", []byte("{}")) },
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody:     `{"context":"e30="}`,
			contentType: jsonType, respBody: `{"plaintext":"cA==","ciphertext":"Yw=="}`,
			want: DEK{Plaintext: []byte("p"), Ciphertext: []byte("c")},
		},
		{
			name:   "GenerateKey/not found",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.GenerateKey(ctx, "my-key", nil) },
			method: "POST", uri: "/v1/key/generate/my-key",
			reqBody: `{}`,
			status:  404, contentType: jsonType, respBody: kesError("key does not exist"),
			want: DEK{}, wantErr: ErrKeyNotFound,
		},
		{
			name: "Encrypt",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Encrypt(ctx, "my-key", []byte("hello"), []byte("ctx"))
			},
			method: "POST", uri: "/v1/key/encrypt/my-key",
			reqBody:     `{"plaintext":"aGVsbG8=","context":"Y3R4"}`,
			contentType: jsonType, respBody: `{"ciphertext":"Yw=="}`,
			want: []byte("c"),
		},
		{
			name:   "Encrypt/empty",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Encrypt(ctx, "my-key", nil, nil) },
			method: "POST", uri: "/v1/key/encrypt/my-key",
			reqBody:     `{"plaintext":""}`,
			contentType: jsonType, respBody: `{"ciphertext":"Yw=="}`,
			want: []byte("c"),
		},
		{
			name: "Decrypt",
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.Decrypt(ctx, "my-key", []byte("c"), []byte("ctx"))
			},
			method: "POST", uri: "/v1/key/decrypt/my-key",
			reqBody:     `{"ciphertext":"Yw==","context":"Y3R4"}`,
			contentType: jsonType, respBody: `{"plaintext":"aGVsbG8="}`,
			want: []byte("hello"),
		},
		{
			name:   "Decrypt/not authentic",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Decrypt(ctx, "my-key", []byte("c"), nil) },
			method: "POST", uri: "/v1/key/decrypt/my-key",
			reqBody: `{"ciphertext":"Yw=="}`,
			status:  400, contentType: jsonType, respBody: kesError("decryption failed: ciphertext is not authentic"),
			want: []byte(nil), wantErr: ErrDecrypt,
		},
		{
			name:   "HMAC",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.HMAC(ctx, "my-key", []byte("msg")) },
			method: "PUT", uri: "/v1/key/hmac/my-key",
			reqBody:     `{"message":"bXNn"}`,
			contentType: jsonType, respBody: `{"hmac":"aA=="}`,
			want: []byte("h"),
		},
		{
			name:   "HMAC/not supported",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.HMAC(ctx, "my-key", []byte("msg")) },
			method: "PUT", uri: "/v1/key/hmac/my-key",
			reqBody: `{"message":"bXNn"}`,
			status:  409, contentType: jsonType, respBody: kesError("key does not support HMAC"),
			want: []byte(nil), wantErr: NewError(409, "key does not support HMAC"),
		},
		{
			name: "ListKeys/empty prefix keeps the slash",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListKeys(ctx, "", 0)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/key/list/",
			contentType: jsonType, respBody: `{"names":["a","b","c"]}`,
			want: listResult[string]{Names: []string{"a", "b", "c"}},
		},
		{
			name: "ListKeys/star",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListKeys(ctx, "*", -1)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/key/list/%2A",
			contentType: jsonType, respBody: `{"names":["a","b"],"continue_at":"c"}`,
			want: listResult[string]{Names: []string{"a", "b"}, Next: "c"},
		},
		{
			name: "ListKeys/limit",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListKeys(ctx, "my", 2)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/key/list/my",
			contentType: jsonType, respBody: `{"names":["my-a","my-b","my-c"]}`,
			want: listResult[string]{Names: []string{"my-a", "my-b"}, Next: "my-c"},
		},
		{
			name: "ListKeys/none",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListKeys(ctx, "x", 0)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/key/list/x",
			contentType: jsonType, respBody: `{"names":[]}`,
			want: listResult[string]{Names: []string{}},
		},
		{
			name: "ListKeys/invalid pattern",
			call: func(ctx context.Context, c *Client) (any, error) {
				_, _, err := c.ListKeys(ctx, "*-*", 0)
				return nil, err
			},
			method: "GET", uri: "/v1/key/list/%2A-%2A",
			status: 400, contentType: jsonType, respBody: kesError("listing pattern '*-*' is empty, too long or is invalid"),
			wantErr: NewError(400, "listing pattern '*-*' is empty, too long or is invalid"),
		},
		{
			name:   "DescribePolicy",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribePolicy(ctx, "minio") },
			method: "GET", uri: "/v1/policy/describe/minio",
			contentType: jsonType,
			respBody:    `{"name":"minio","created_at":"` + serverTime + `","created_by":"` + string(admin) + `"}`,
			want:        &PolicyInfo{Name: "minio", CreatedAt: started, CreatedBy: admin},
		},
		{
			name:   "DescribePolicy/not found",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribePolicy(ctx, "minio") },
			method: "GET", uri: "/v1/policy/describe/minio",
			status: 404, contentType: jsonType, respBody: kesError("policy does not exist"),
			want: (*PolicyInfo)(nil), wantErr: ErrPolicyNotFound,
		},
		{
			name:   "GetPolicy",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.GetPolicy(ctx, "minio") },
			method: "GET", uri: "/v1/policy/read/minio",
			contentType: jsonType,
			respBody:    `{"name":"minio","allow":{"/v1/key/create/*":{},"/v1/key/generate/*":{}},"deny":{"/v1/key/generate/my-app-internal*":{}},"created_at":"` + serverTime + `","created_by":"` + string(admin) + `"}`,
			want: &Policy{
				Allow:     map[string]struct{}{"/v1/key/create/*": {}, "/v1/key/generate/*": {}},
				Deny:      map[string]struct{}{"/v1/key/generate/my-app-internal*": {}},
				CreatedAt: started, CreatedBy: admin,
			},
		},
		{
			name:   "GetPolicy/empty rules",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.GetPolicy(ctx, "empty") },
			method: "GET", uri: "/v1/policy/read/empty",
			contentType: jsonType,
			respBody:    `{"name":"empty","created_at":"` + serverTime + `","created_by":"` + string(admin) + `"}`,
			want:        &Policy{CreatedAt: started, CreatedBy: admin},
		},
		{
			name: "ListPolicies",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListPolicies(ctx, "", 0)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/policy/list/",
			contentType: jsonType, respBody: `{"names":["minio","my-app"],"continue_at":""}`,
			want: listResult[string]{Names: []string{"minio", "my-app"}},
		},
		{
			name: "ListPolicies/prefix",
			call: func(ctx context.Context, c *Client) (any, error) {
				names, next, err := c.ListPolicies(ctx, "my*", 0)
				return listResult[string]{names, next}, err
			},
			method: "GET", uri: "/v1/policy/list/my%2A",
			contentType: jsonType, respBody: `{"names":["my-app"],"continue_at":""}`,
			want: listResult[string]{Names: []string{"my-app"}},
		},
		{
			name:   "DescribeIdentity/admin",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeIdentity(ctx, admin) },
			method: "GET", uri: "/v1/identity/describe/" + string(admin),
			contentType: jsonType, respBody: `{"admin":true,"created_at":"` + serverTime + `"}`,
			want: &IdentityInfo{Identity: admin, IsAdmin: true, CreatedAt: started},
		},
		{
			name:   "DescribeIdentity/policy",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeIdentity(ctx, other) },
			method: "GET", uri: "/v1/identity/describe/" + string(other),
			contentType: jsonType,
			respBody:    `{"policy":"minio","created_at":"` + serverTime + `","created_by":"` + string(admin) + `"}`,
			want:        &IdentityInfo{Identity: other, Policy: "minio", CreatedAt: started, CreatedBy: admin},
		},
		{
			name:   "DescribeIdentity/not found",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeIdentity(ctx, other) },
			method: "GET", uri: "/v1/identity/describe/" + string(other),
			status: 404, contentType: jsonType, respBody: kesError("identity does not exist"),
			want: (*IdentityInfo)(nil), wantErr: ErrIdentityNotFound,
		},
		{
			name: "ListIdentities",
			call: func(ctx context.Context, c *Client) (any, error) {
				ids, next, err := c.ListIdentities(ctx, "", 1)
				return listResult[Identity]{ids, next}, err
			},
			method: "GET", uri: "/v1/identity/list/",
			contentType: jsonType, respBody: `{"identities":["` + string(admin) + `","` + string(other) + `"],"continue_at":""}`,
			want: listResult[Identity]{Names: []Identity{admin}, Next: string(other)},
		},
		{
			name: "DescribeSelf/admin",
			call: func(ctx context.Context, c *Client) (any, error) {
				info, policy, err := c.DescribeSelf(ctx)
				return selfResult{info, policy}, err
			},
			method: "GET", uri: "/v1/identity/self/describe",
			contentType: jsonType, respBody: `{"identity":"` + string(admin) + `","admin":true,"created_at":"` + serverTime + `"}`,
			want: selfResult{
				Info:   &IdentityInfo{Identity: admin, IsAdmin: true, CreatedAt: started},
				Policy: &Policy{CreatedAt: started},
			},
		},
		{
			name: "DescribeSelf/policy",
			call: func(ctx context.Context, c *Client) (any, error) {
				info, policy, err := c.DescribeSelf(ctx)
				return selfResult{info, policy}, err
			},
			method: "GET", uri: "/v1/identity/self/describe",
			contentType: jsonType,
			respBody:    `{"identity":"` + string(other) + `","policy":"minio","allow":{"/v1/key/*":{}},"deny":{"/v1/key/delete/*":{}},"created_at":"` + serverTime + `","created_by":"` + string(admin) + `"}`,
			want: selfResult{
				Info: &IdentityInfo{Identity: other, Policy: "minio", CreatedAt: started, CreatedBy: admin},
				Policy: &Policy{
					Allow:     map[string]struct{}{"/v1/key/*": {}},
					Deny:      map[string]struct{}{"/v1/key/delete/*": {}},
					CreatedAt: started, CreatedBy: admin,
				},
			},
		},
		{
			name: "DescribeSelf/nested policy",
			call: func(ctx context.Context, c *Client) (any, error) {
				info, policy, err := c.DescribeSelf(ctx)
				return selfResult{info, policy}, err
			},
			method: "GET", uri: "/v1/identity/self/describe",
			contentType: jsonType,
			respBody:    `{"identity":"` + string(other) + `","created_at":"` + serverTime + `","created_by":"` + string(admin) + `","policy":{"name":"minio","allow":{"/v1/key/*":{}},"created_at":"` + testTime + `","created_by":"` + string(admin) + `"}}`,
			want: selfResult{
				Info: &IdentityInfo{Identity: other, Policy: "minio", CreatedAt: started, CreatedBy: admin},
				Policy: &Policy{
					Allow:     map[string]struct{}{"/v1/key/*": {}},
					CreatedAt: created, CreatedBy: admin,
				},
			},
		},
		{
			name: "DescribeSelf/not found",
			call: func(ctx context.Context, c *Client) (any, error) {
				info, policy, err := c.DescribeSelf(ctx)
				return selfResult{info, policy}, err
			},
			method: "GET", uri: "/v1/identity/self/describe",
			status: 404, contentType: jsonType, respBody: kesError("identity does not exist"),
			want: selfResult{}, wantErr: ErrIdentityNotFound,
		},
		{
			name:   "method not allowed",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.HMAC(ctx, "k", nil) },
			method: "PUT", uri: "/v1/key/hmac/k",
			reqBody: `{"message":""}`,
			status:  405, contentType: jsonType, header: http.Header{"Accept": {"POST"}},
			respBody: kesError("received method 'PUT' expected 'POST'"),
			want:     []byte(nil), wantErr: NewError(405, "received method 'PUT' expected 'POST'"),
		},
		{
			name:   "unknown route",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribePolicy(ctx, "p") },
			method: "GET", uri: "/v1/policy/describe/p",
			status: 404, contentType: "text/plain; charset=utf-8", header: http.Header{"X-Content-Type-Options": {"nosniff"}},
			respBody: "404 page not found\n",
			want:     (*PolicyInfo)(nil), wantErr: NewError(404, "404 page not found"),
		},
		{
			name:   "malformed response",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.Version(ctx) },
			method: "GET", uri: "/version",
			contentType: jsonType, respBody: `{"version":`,
			want: "", wantErr: errMalformed,
		},
		{
			name:   "unknown algorithm",
			call:   func(ctx context.Context, c *Client) (any, error) { return c.DescribeKey(ctx, "k") },
			method: "GET", uri: "/v1/key/describe/k",
			contentType: jsonType, respBody: `{"name":"k","algorithm":"AES128"}`,
			want: (*KeyInfo)(nil), wantErr: errMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

// routeTest is one request of a client method: what the client must send
// and what the server answers.
type routeTest struct {
	name string
	call func(context.Context, *Client) (any, error)

	// The request the client must send.
	method, uri string
	reqBody     string // exact JSON body; "" for none
	accept      string

	// The server's answer.
	status      int // 0 means 200
	contentType string
	header      http.Header
	respBody    string

	want    any
	wantErr error // matched with errors.Is; errMalformed for a decoding error
}

// run calls the client method against a server that checks the request
// and sends the answer, and compares the result.
func (tt routeTest) run(t *testing.T) {
	t.Helper()
	want := apiKeyVectors[0].identity
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading request body: %v", err)
		}
		switch {
		case r.Method != tt.method || r.RequestURI != tt.uri:
			t.Errorf("request = %s %s, want %s %s", r.Method, r.RequestURI, tt.method, tt.uri)
		case string(body) != tt.reqBody:
			t.Errorf("request body = %q, want %q", body, tt.reqBody)
		case tt.reqBody != "" && r.Header.Get("Content-Type") != jsonType:
			t.Errorf("request Content-Type = %q, want %q", r.Header.Get("Content-Type"), jsonType)
		case tt.accept != "" && r.Header.Get("Accept") != tt.accept:
			t.Errorf("request Accept = %q, want %q", r.Header.Get("Accept"), tt.accept)
		case peerIdentity(r) != want:
			t.Errorf("client identity = %q, want %q", peerIdentity(r), want)
		default:
			for k, v := range tt.header {
				w.Header()[k] = v
			}
			if tt.contentType != "" {
				w.Header().Set("Content-Type", tt.contentType)
			}
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			w.WriteHeader(status)
			io.WriteString(w, tt.respBody)
			return
		}
		// 418 is neither retried nor any error the tests expect.
		http.Error(w, "unexpected request", http.StatusTeapot)
	}))
	c := newTestClient(t, srv)

	got, err := tt.call(t.Context(), c)
	switch {
	case tt.wantErr == errMalformed:
		if err == nil || !strings.HasPrefix(err.Error(), "kes: invalid response to ") {
			t.Fatalf("error = %v, want an invalid response error", err)
		}
	case tt.wantErr != nil:
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("error = %#v, want %#v", err, tt.wantErr)
		}
	case err != nil:
		t.Fatalf("error = %v", err)
	}
	if diff := cmp.Diff(tt.want, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
}

// errMalformed marks test cases that expect a response decoding error.
var errMalformed = errors.New("malformed response")

func TestImportKeyInvalidRequest(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	c := newTestClient(t, srv)
	tests := []struct {
		name string
		req  *ImportKeyRequest
	}{
		{"nil request", nil},
		{"unknown cipher", &ImportKeyRequest{Key: make([]byte, 32), Cipher: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.ImportKey(t.Context(), "k", tt.req); err == nil {
				t.Error("ImportKey succeeded, want error")
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server got %d requests, want 0", n)
	}
}

func TestClientHTTP2(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		io.WriteString(w, `{"version":"`+r.Proto+`"}`)
	}))
	c := newTestClient(t, srv)
	got, err := c.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != "HTTP/2.0" {
		t.Errorf("protocol = %q, want HTTP/2.0", got)
	}
}

// A server that advertises acceptable CAs in its certificate request (as
// the original KES server does when tls.ca is set, even with auth off)
// still gets the API-key certificate.
func TestClientAdvertisedCAs(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		io.WriteString(w, `{"version":"`+string(peerIdentity(r))+`"}`)
	}))
	ca, err := GenerateCertificate(mustParseAPIKey(t, apiKeyVectors[2].key))
	if err != nil {
		t.Fatal(err)
	}
	unrelated := x509.NewCertPool()
	unrelated.AddCert(ca.Leaf) // not the issuer of the client certificate
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, ClientCAs: unrelated}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	key := mustParseAPIKey(t, apiKeyVectors[3].key)
	c := NewClient(srv.URL, key)
	trustTestServer(t, c, srv)
	got, err := c.Version(t.Context())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	if Identity(got) != key.Identity() {
		t.Errorf("server saw identity %q, want %q", got, key.Identity())
	}

	// The same certificate in tls.Config.Certificates is not sent, which
	// is why NewClient does not use it.
	cert, err := GenerateCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c = NewClientWithConfig(srv.URL, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})
	if _, err := c.Version(t.Context()); err == nil {
		t.Error("client with Certificates succeeded, want handshake failure")
	}
}

func TestNewClientWithConfig(t *testing.T) {
	t.Parallel()
	orig := &tls.Config{MinVersion: tls.VersionTLS10, ServerName: "kes"}
	c := NewClientWithConfig("", orig)
	if len(c.Endpoints) != 0 {
		t.Errorf("Endpoints = %q, want none", c.Endpoints)
	}
	cfg := c.HTTPClient.Transport.(*http.Transport).TLSClientConfig
	if cfg == orig {
		t.Error("config was not cloned")
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "kes" {
		t.Errorf("MinVersion = %x, ServerName = %q, want TLS 1.2 and kes", cfg.MinVersion, cfg.ServerName)
	}
	if orig.MinVersion != tls.VersionTLS10 {
		t.Error("the caller's config was modified")
	}
	if !c.HTTPClient.Transport.(*http.Transport).ForceAttemptHTTP2 {
		t.Error("ForceAttemptHTTP2 is off")
	}
	if _, err := c.Version(t.Context()); !errors.Is(err, errNoEndpoint) {
		t.Errorf("Version without endpoints = %v, want %v", err, errNoEndpoint)
	}

	c = NewClient("127.0.0.1:7373", mustParseAPIKey(t, apiKeyVectors[0].key))
	cfg = c.HTTPClient.Transport.(*http.Transport).TLSClientConfig
	if cfg.GetClientCertificate == nil || len(cfg.Certificates) != 0 {
		t.Error("NewClient does not use GetClientCertificate")
	}
	cert, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := IdentityOf(cert.Leaf); got != apiKeyVectors[0].identity {
		t.Errorf("client certificate identity = %q, want %q", got, apiKeyVectors[0].identity)
	}

	c = NewClient("127.0.0.1:7373", APIKey{})
	cfg = c.HTTPClient.Transport.(*http.Transport).TLSClientConfig
	if _, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{}); err == nil {
		t.Error("GetClientCertificate with the zero APIKey succeeded, want error")
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		endpoint string
		want     string
		wantErr  bool
	}{
		{"host:port", "127.0.0.1:7373", "https://127.0.0.1:7373", false},
		{"hostname", "kes.example.com:7373", "https://kes.example.com:7373", false},
		{"https", "https://kes.example.com:7373", "https://kes.example.com:7373", false},
		{"trailing slash", "https://kes.example.com:7373/", "https://kes.example.com:7373", false},
		{"spaces", " 127.0.0.1:7373 ", "https://127.0.0.1:7373", false},
		{"path prefix", "https://proxy.example.com/kes/", "https://proxy.example.com/kes", false},
		{"IPv6", "[::1]:7373", "https://[::1]:7373", false},
		{"query dropped", "https://h:1?x=y", "https://h:1", false},
		{"empty", "", "", true},
		{"other scheme", "ftp://h:1", "", true},
		{"no host", "https://", "", true},
		{"invalid", "https://h:1/%zz", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := baseURL(tt.endpoint)
			if (err != nil) != tt.wantErr {
				t.Fatalf("baseURL(%q) error = %v, want error %v", tt.endpoint, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("baseURL(%q) = %q, want %q", tt.endpoint, got, tt.want)
			}
		})
	}
}

// fakeClock is a settable clock for the endpoint timeouts.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingServer answers every request with status and okBody, or errBody
// if the status is not 200, and counts the requests. POST bodies must be
// `{"plaintext":"cA=="}`.
func countingServer(t *testing.T, status *atomic.Int32, okBody, errBody string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"plaintext":"cA=="}` {
				t.Errorf("request body = %q", b)
			}
		}
		w.Header().Set("Content-Type", jsonType)
		code := int(status.Load())
		w.WriteHeader(code)
		if code == http.StatusOK {
			io.WriteString(w, okBody)
		} else {
			io.WriteString(w, errBody)
		}
	}))
	return srv, &hits
}

func statusOf(code int) *atomic.Int32 {
	var s atomic.Int32
	s.Store(int32(code))
	return &s
}

func TestClientFailover(t *testing.T) {
	t.Parallel()
	firstStatus := statusOf(http.StatusBadGateway)
	first, firstHits := countingServer(t, firstStatus, `{"ciphertext":"Yw=="}`, kesError("failed to read key"))
	second, secondHits := countingServer(t, statusOf(http.StatusOK), `{"ciphertext":"Yw=="}`, "")
	c := newTestClient(t, first, second)
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	c.now = clock.Now

	encrypt := func() {
		t.Helper()
		got, err := c.Encrypt(t.Context(), "k", []byte("p"), nil)
		if err != nil {
			t.Fatalf("Encrypt = %v", err)
		}
		if string(got) != "c" {
			t.Fatalf("Encrypt = %q, want %q", got, "c")
		}
	}
	checkHits := func(step string, wantFirst, wantSecond int32) {
		t.Helper()
		if f, s := firstHits.Load(), secondHits.Load(); f != wantFirst || s != wantSecond {
			t.Errorf("%s: hits = %d, %d; want %d, %d", step, f, s, wantFirst, wantSecond)
		}
	}

	encrypt() // 502 from the first endpoint, then the second one
	checkHits("first request", 1, 1)

	clock.Advance(29 * time.Second)
	encrypt() // the first endpoint is skipped
	checkHits("within the timeout", 1, 2)

	clock.Advance(2 * time.Second)
	firstStatus.Store(http.StatusOK)
	second.Close() // now only the first endpoint works
	encrypt()      // the first endpoint is tried again after 30 s
	checkHits("after the timeout", 2, 2)
	encrypt()
	checkHits("recovered", 3, 2)
}

func TestClientFailoverStatusClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		status       int
		wantFailover bool
	}{
		{"500", 500, true},
		{"502", 502, true},
		{"503", 503, true},
		{"504", 504, true},
		{"501 not implemented", 501, false},
		{"400", 400, false},
		{"403", 403, false},
		{"404", 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, firstHits := countingServer(t, statusOf(tt.status), "", kesError("boom"))
			second, secondHits := countingServer(t, statusOf(200), `{"version":"v"}`, "")
			c := newTestClient(t, first, second)
			_, err := c.Version(t.Context())
			if tt.wantFailover {
				if err != nil || secondHits.Load() != 1 {
					t.Errorf("Version = %v, second endpoint hits = %d; want success from the second endpoint", err, secondHits.Load())
				}
			} else {
				if !errors.Is(err, NewError(tt.status, "boom")) || secondHits.Load() != 0 {
					t.Errorf("Version = %v, second endpoint hits = %d; want %d boom without failover", err, secondHits.Load(), tt.status)
				}
			}
			if n := firstHits.Load(); n != 1 {
				t.Errorf("first endpoint hits = %d, want 1", n)
			}
		})
	}
}

func TestClientFailoverNetworkError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	srv, hits := countingServer(t, statusOf(200), `{"version":"v"}`, "")
	c := newTestClient(t, srv)
	c.Endpoints = []string{dead, srv.URL}
	got, err := c.Version(t.Context())
	if err != nil || got != "v" {
		t.Fatalf("Version = %q, %v; want v", got, err)
	}
	if hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", hits.Load())
	}
	if _, ok := c.penalized[dead]; !ok {
		t.Errorf("dead endpoint %s is not in a timeout", dead)
	}
}

func TestClientAllEndpointsFail(t *testing.T) {
	t.Parallel()
	first, firstHits := countingServer(t, statusOf(502), "", kesError("failed to read key"))
	second, secondHits := countingServer(t, statusOf(504), "", kesError("key store is not reachable"))
	c := newTestClient(t, first, second)
	for i := range 2 {
		// Both endpoints are in a timeout for the second call, so both are
		// tried again.
		_, err := c.Version(t.Context())
		if want := NewError(504, "key store is not reachable"); !errors.Is(err, want) {
			t.Errorf("call %d: Version = %v, want the last endpoint's error %v", i, err, want)
		}
	}
	if f, s := firstHits.Load(), secondHits.Load(); f != 2 || s != 2 {
		t.Errorf("hits = %d, %d; want 2, 2", f, s)
	}
}

func TestClientCanceled(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	second, secondHits := countingServer(t, statusOf(200), `{"version":"v"}`, "")
	c := newTestClient(t, srv, second)

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Version(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Version = %v, want %v", err, context.DeadlineExceeded)
	}
	if secondHits.Load() != 0 {
		t.Error("a canceled request failed over")
	}
	if len(c.penalized) != 0 {
		t.Errorf("endpoints in a timeout after cancellation: %v", c.penalized)
	}
}

func TestClientRedirect(t *testing.T) {
	t.Parallel()
	// Servers that only know the path without trailing slash redirect;
	// the client follows and replays the body.
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/key/encrypt/k" {
			http.Redirect(w, r, "/v2/encrypt", http.StatusTemporaryRedirect)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"plaintext":"cA=="}` {
			t.Errorf("redirected body = %q", b)
		}
		w.Header().Set("Content-Type", jsonType)
		io.WriteString(w, `{"ciphertext":"Yw=="}`)
	}))
	c := newTestClient(t, srv)
	if _, err := c.Encrypt(t.Context(), "k", []byte("p"), nil); err != nil {
		t.Fatal(err)
	}
}

func TestClientResponseLimit(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		io.WriteString(w, `{"version":"`+strings.Repeat("v", maxResponseBody)+`"}`)
	}))
	c := newTestClient(t, srv)
	if _, err := c.Version(t.Context()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("Version = %v, want a size error", err)
	}
}
