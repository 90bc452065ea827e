package vaulttest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests check the fake's answers against the shapes and status
// codes of Vault's HTTP API documentation.

// call is one request of a scenario and what must come back.
type call struct {
	method    string
	path      string // after /v1/, with query
	token     string // "root" for the scenario's root token, "" for none
	namespace string
	body      string
	status    int
	// want holds values at JSON paths of the response (see lookup);
	// the value "<set>" only checks that the path exists, "<absent>"
	// that it does not.
	want map[string]any
	// body, if set, must be the exact response body.
	wantBody string
}

// lookup returns the value at a dotted path ("data.keys", "errors.0").
func lookup(v any, path string) (any, bool) {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// send makes the request of c (root stands for the token "root") and
// returns the response, whose body is read and closed, and that body.
func send(t *testing.T, s *Server, root string, c call) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, s.URL+"/v1/"+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch c.token {
	case "":
	case "root":
		req.Header.Set("X-Vault-Token", root)
	default:
		req.Header.Set("X-Vault-Token", c.token)
	}
	if c.namespace != "" {
		req.Header.Set("X-Vault-Namespace", c.namespace)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func run(t *testing.T, s *Server, root string, calls []call) {
	t.Helper()
	for i, c := range calls {
		resp, data := send(t, s, root, c)
		if resp.StatusCode != c.status {
			t.Errorf("call %d: %s %s = %d %s, want %d", i, c.method, c.path, resp.StatusCode, data, c.status)
			continue
		}
		if c.wantBody != "" && string(data) != c.wantBody {
			t.Errorf("call %d: %s %s body = %q, want %q", i, c.method, c.path, data, c.wantBody)
		}
		if len(c.want) == 0 {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("call %d: Content-Type = %q", i, ct)
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("call %d: %s %s: %v: %s", i, c.method, c.path, err, data)
			continue
		}
		for path, want := range c.want {
			got, ok := lookup(v, path)
			switch want {
			case "<set>":
				if !ok {
					t.Errorf("call %d: %s %s: no %s in %s", i, c.method, c.path, path, data)
				}
			case "<absent>":
				if ok {
					t.Errorf("call %d: %s %s: %s = %v, want none", i, c.method, c.path, path, got)
				}
			default:
				if diff := cmp.Diff(want, got); diff != "" || !ok {
					t.Errorf("call %d: %s %s: %s mismatch (-want +got):\n%s", i, c.method, c.path, path, diff)
				}
			}
		}
	}
}

func TestKV1(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.MountKV("", "kv", 1)
	root := s.NewToken("", TokenOptions{})
	run(t, s, root, []call{
		{method: "GET", path: "kv/a/b", token: "root", status: 404, wantBody: `{"errors":[]}` + "\n"},
		{method: "LIST", path: "kv/", token: "root", status: 404, wantBody: `{"errors":[]}` + "\n"},
		{method: "PUT", path: "kv/a/b", token: "root", body: `{"b":"value"}`, status: 204},
		{method: "POST", path: "kv/a/c/d", token: "root", body: `{"d":"x"}`, status: 204},
		{method: "PUT", path: "kv/a/e", token: "root", body: `{}`, status: 400, want: map[string]any{"errors": []any{"missing data fields"}}},
		{method: "PUT", path: "kv/a/e", token: "root", body: `{`, status: 400, want: map[string]any{"errors.0": "<set>"}},
		{method: "GET", path: "kv/a/b", token: "root", status: 200, want: map[string]any{
			"data": map[string]any{"b": "value"}, "lease_duration": 2764800.0, "renewable": false,
			"request_id": "<set>", "lease_id": "", "wrap_info": nil, "warnings": nil, "auth": nil}},
		{method: "LIST", path: "kv/a", token: "root", status: 200, want: map[string]any{"data.keys": []any{"b", "c/"}}},
		{method: "GET", path: "kv/a/?list=true", token: "root", status: 200, want: map[string]any{"data.keys": []any{"b", "c/"}}},
		{method: "GET", path: "kv?list=true", token: "root", status: 200, want: map[string]any{"data.keys": []any{"a/"}}},
		{method: "GET", path: "kv/a?list=maybe", token: "root", status: 400},
		{method: "PATCH", path: "kv/a/b", token: "root", body: `{"b":"x"}`, status: 405},
		{method: "DELETE", path: "kv/a/b", token: "root", status: 204},
		{method: "DELETE", path: "kv/a/b", token: "root", status: 204}, // missing: still 204
		{method: "GET", path: "kv/a/b", token: "root", status: 404},
		{method: "GET", path: "nomount/x", token: "root", status: 404, want: map[string]any{"errors.0": "<set>"}},
	})
}

func TestKV2(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.MountKV("", "secret", 2)
	root := s.NewToken("", TokenOptions{})
	cas0 := `{"options":{"cas":0},"data":{"k":"v1"}}`
	run(t, s, root, []call{
		{method: "PUT", path: "secret/data/p/k", token: "root", body: cas0, status: 200, want: map[string]any{
			"data.version": 1.0, "data.destroyed": false, "data.deletion_time": "", "data.created_time": "<set>"}},
		{method: "PUT", path: "secret/data/p/k", token: "root", body: cas0, status: 400, wantBody: `{"errors":["check-and-set parameter did not match the current version"]}` + "\n"},
		{method: "PUT", path: "secret/data/p/k", token: "root", body: `{"options":{"cas":1},"data":{"k":"v2"}}`, status: 200, want: map[string]any{"data.version": 2.0}},
		{method: "PUT", path: "secret/data/p/k", token: "root", body: `{"k":"no data wrapper"}`, status: 400, want: map[string]any{"errors": []any{"no data provided"}}},
		{method: "GET", path: "secret/data/p/k", token: "root", status: 200, want: map[string]any{"data.data": map[string]any{"k": "v2"}, "data.metadata.version": 2.0}},
		{method: "GET", path: "secret/data/p/k?version=1", token: "root", status: 200, want: map[string]any{"data.data": map[string]any{"k": "v1"}}},
		{method: "GET", path: "secret/data/p/k?version=9", token: "root", status: 404},
		{method: "POST", path: "secret/delete/p/k", token: "root", body: `{"versions":[1]}`, status: 204},
		{method: "GET", path: "secret/data/p/k?version=1", token: "root", status: 404, want: map[string]any{
			"data.data": nil, "data.metadata.deletion_time": "<set>", "data.metadata.destroyed": false}},
		{method: "POST", path: "secret/destroy/p/k", token: "root", body: `{"versions":[2]}`, status: 204},
		{method: "GET", path: "secret/data/p/k", token: "root", status: 404, want: map[string]any{"data.metadata.destroyed": true}},
		{method: "GET", path: "secret/metadata/p/k", token: "root", status: 200, want: map[string]any{"data.current_version": 2.0, "data.versions.1.deletion_time": "<set>"}},
		{method: "LIST", path: "secret/metadata/p", token: "root", status: 200, want: map[string]any{"data.keys": []any{"k"}}},
		{method: "LIST", path: "secret/metadata", token: "root", status: 200, want: map[string]any{"data.keys": []any{"p/"}}},
		{method: "DELETE", path: "secret/metadata/p/k", token: "root", status: 204},
		{method: "GET", path: "secret/metadata/p/k", token: "root", status: 404},
		{method: "LIST", path: "secret/metadata/p", token: "root", status: 404, wantBody: `{"errors":[]}` + "\n"},
		{method: "PUT", path: "secret/data/p/k", token: "root", body: cas0, status: 200, want: map[string]any{"data.version": 1.0}},
	})
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.MountKV("", "kv", 1)
	s.AddAppRole("", "approle", AppRole{Name: "kes", RoleID: "r", SecretID: "s", Token: TokenOptions{TTL: time.Hour, MaxTTL: 90 * time.Minute}})
	s.AddAppRole("", "approle", AppRole{Name: "fixed", RoleID: "fixed", SecretID: "s", Token: TokenOptions{TTL: time.Hour, NotRenewable: true}})
	s.AddKubernetesRole("", "kubernetes", KubernetesRole{Name: "kes", JWT: "jwt", Token: TokenOptions{TTL: time.Hour}})
	root := s.NewToken("", TokenOptions{})
	run(t, s, root, []call{
		{method: "GET", path: "kv/x", status: 403, wantBody: `{"errors":["permission denied"]}` + "\n"},
		{method: "GET", path: "kv/x", token: "hvs.unknown", status: 403, want: map[string]any{"errors.0": msgInvalidToken}},
		{method: "POST", path: "auth/approle/login", body: `{"role_id":"r","secret_id":"wrong"}`, status: 400, want: map[string]any{"errors": []any{"invalid role or secret ID"}}},
		{method: "POST", path: "auth/approle/login", body: `{"secret_id":"s"}`, status: 400, want: map[string]any{"errors": []any{"missing role_id"}}},
		{method: "GET", path: "auth/approle/login", status: 405},
		{method: "POST", path: "auth/approle/login", body: `{"role_id":"r","secret_id":"s"}`, status: 200, want: map[string]any{
			"auth.client_token": "<set>", "auth.accessor": "<set>", "auth.lease_duration": 3600.0, "auth.renewable": true,
			"auth.metadata.role_name": "kes", "auth.token_type": "service", "data": nil}},
		{method: "POST", path: "auth/kubernetes/login", body: `{"role":"kes","jwt":"other"}`, status: 403, want: map[string]any{"errors": []any{"permission denied"}}},
		{method: "POST", path: "auth/kubernetes/login", body: `{"role":"nobody","jwt":"jwt"}`, status: 400, want: map[string]any{"errors": []any{`invalid role name "nobody"`}}},
		{method: "POST", path: "auth/kubernetes/login", body: `{"role":"kes","jwt":"jwt"}`, status: 200, want: map[string]any{"auth.client_token": "<set>", "auth.lease_duration": 3600.0}},
		{method: "GET", path: "auth/token/lookup-self", token: "root", status: 200, want: map[string]any{"data.id": root, "data.ttl": 0.0, "data.expire_time": nil, "data.renewable": false}},
		{method: "POST", path: "auth/token/renew-self", token: "root", status: 400, want: map[string]any{"errors": []any{"lease is not renewable"}}},
	})

	login := func(role string) string {
		t.Helper()
		_, data := send(t, s, "", call{method: "POST", path: "auth/approle/login", body: `{"role_id":"` + role + `","secret_id":"s"}`})
		var r struct {
			Auth struct {
				ClientToken string `json:"client_token"`
			} `json:"auth"`
		}
		json.Unmarshal(data, &r)
		return r.Auth.ClientToken
	}
	tok := login("r")
	run(t, s, root, []call{
		{method: "GET", path: "auth/token/lookup-self", token: tok, status: 200, want: map[string]any{"data.ttl": "<set>", "data.creation_ttl": 3600.0, "data.renewable": true, "data.path": "auth/approle/login", "data.expire_time": "<set>"}},
		{method: "PUT", path: "auth/token/renew-self", token: tok, body: `{"increment":"30m"}`, status: 200, want: map[string]any{"auth.lease_duration": 1800.0, "warnings": nil}},
		{method: "POST", path: "auth/token/renew-self", token: tok, body: `{"increment":7200}`, status: 200, want: map[string]any{"auth.lease_duration": 5399.0, "warnings.0": "<set>"}},
		{method: "POST", path: "auth/token/renew-self", token: login("fixed"), status: 400, want: map[string]any{"errors": []any{"lease is not renewable"}}},
		{method: "POST", path: "auth/token/revoke-self", token: tok, status: 204},
		{method: "GET", path: "auth/token/lookup-self", token: tok, status: 403, want: map[string]any{"errors.0": msgInvalidToken}},
	})

	// Fault injection.
	s.FailLogins(1)
	s.FailRenewals(1)
	tok = login("r") // fails
	if tok != "" {
		t.Errorf("login with FailLogins(1) = %q, want a failure", tok)
	}
	tok = login("r")
	run(t, s, root, []call{
		{method: "POST", path: "auth/token/renew-self", token: tok, status: 500, want: map[string]any{"errors": []any{"internal error"}}},
		{method: "POST", path: "auth/token/renew-self", token: tok, status: 200},
	})
	s.ExpireAll()
	run(t, s, root, []call{
		{method: "GET", path: "kv/x", token: tok, status: 403, want: map[string]any{"errors.0": msgInvalidToken}},
		{method: "GET", path: "kv/x", token: "root", status: 403},
	})
	if n := s.ValidTokens(); n != 0 {
		t.Errorf("ValidTokens() after ExpireAll = %d, want 0", n)
	}
	if n := s.Count(CountLogin); n != 10 {
		t.Errorf("Count(login) = %d, want 10", n)
	}
}

func TestSealAndHealth(t *testing.T) {
	t.Parallel()
	s := New(t, Options{Version: "1.15.0"})
	s.MountKV("", "kv", 1)
	root := s.NewToken("", TokenOptions{})
	run(t, s, root, []call{
		{method: "GET", path: "sys/health", status: 200, want: map[string]any{"initialized": true, "sealed": false, "standby": false, "version": "1.15.0", "cluster_id": "<set>"}},
		{method: "HEAD", path: "sys/health", status: 200, wantBody: ""},
		{method: "POST", path: "sys/health", status: 405},
		{method: "GET", path: "sys/seal-status", status: 200, want: map[string]any{"sealed": false, "t": 1.0, "type": "shamir"}},
	})
	s.SetStandby(true)
	run(t, s, root, []call{
		{method: "GET", path: "sys/health", status: 429, want: map[string]any{"standby": true}},
		{method: "GET", path: "sys/health?standbyok=true", status: 200},
		{method: "GET", path: "sys/health?standbycode=200", status: 200},
	})
	s.SetStandby(false)
	s.Seal()
	run(t, s, root, []call{
		{method: "GET", path: "sys/health", status: 503, want: map[string]any{"sealed": true, "initialized": true, "cluster_id": "<absent>"}},
		{method: "GET", path: "sys/health?sealedcode=299", status: 299},
		{method: "GET", path: "sys/seal-status", status: 200, want: map[string]any{"sealed": true}},
		{method: "GET", path: "kv/x", token: "root", status: 503, wantBody: `{"errors":["Vault is sealed"]}` + "\n"},
		{method: "POST", path: "auth/approle/login", status: 503},
	})
	s.Unseal()
	s.SetInitialized(false)
	run(t, s, root, []call{
		{method: "GET", path: "sys/health", status: 501, want: map[string]any{"initialized": false, "sealed": true}},
		{method: "GET", path: "kv/x", token: "root", status: 503},
	})
	s.SetInitialized(true)
	run(t, s, root, []call{{method: "GET", path: "kv/x", token: "root", status: 404}})
	if n := s.Count(CountSealed); n != 3 {
		t.Errorf("Count(sealed) = %d, want 3", n)
	}
	for _, r := range s.Requests() {
		if r.Path == "/v1/kv/x" && !r.HasToken {
			t.Errorf("request %+v has no token", r)
		}
	}
}

func TestNamespacesAndACL(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.MountKV("", "kv", 1)
	s.MountKV("ns1", "kv", 1)
	s.MountKV("ns1/team", "kv", 1)
	root := s.NewToken("", TokenOptions{})
	ns1 := s.NewToken("ns1", TokenOptions{})
	limited := s.NewToken("", TokenOptions{Paths: []string{"kv/allowed/*", "kv/+/x"}})
	run(t, s, root, []call{
		{method: "PUT", path: "kv/k", token: "root", body: `{"k":"root"}`, status: 204},
		{method: "PUT", path: "kv/k", token: "root", namespace: "ns1", body: `{"k":"ns1"}`, status: 204},
		{method: "PUT", path: "team/kv/k", token: "root", namespace: "ns1", body: `{"k":"team"}`, status: 204},
		{method: "GET", path: "ns1/kv/k", token: "root", status: 200, want: map[string]any{"data.k": "ns1"}},
		{method: "GET", path: "kv/k", token: "root", namespace: "ns1/team", status: 200, want: map[string]any{"data.k": "team"}},
		{method: "GET", path: "kv/k", token: "root", namespace: "/ns1/team/", status: 200, want: map[string]any{"data.k": "team"}},
		{method: "GET", path: "kv/k", token: "root", status: 200, want: map[string]any{"data.k": "root"}},
		{method: "GET", path: "kv/k", token: "root", namespace: "nope", status: 404},
		{method: "GET", path: "kv/k", token: ns1, namespace: "ns1/team", status: 200},
		{method: "GET", path: "kv/k", token: ns1, status: 403, want: map[string]any{"errors.0": msgInvalidToken}},
		{method: "GET", path: "kv/k", token: limited, status: 403, wantBody: `{"errors":["permission denied"]}` + "\n"},
		{method: "GET", path: "kv/allowed/k", token: limited, status: 404},
		{method: "GET", path: "kv/any/x", token: limited, status: 404},
		{method: "GET", path: "kv/any/y", token: limited, status: 403},
		{method: "LIST", path: "kv/allowed", token: limited, status: 404},
		{method: "GET", path: "auth/token/lookup-self", token: limited, status: 200},
	})
}

func TestTransit(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.MountTransit("", "transit")
	root := s.NewToken("", TokenOptions{})
	pt := base64.StdEncoding.EncodeToString([]byte("secret value"))
	encrypt := func() string {
		t.Helper()
		resp, data := send(t, s, root, call{method: "POST", path: "transit/encrypt/k", token: "root", body: `{"plaintext":"` + pt + `"}`})
		var r struct {
			Data struct {
				Ciphertext string `json:"ciphertext"`
				KeyVersion int    `json:"key_version"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &r); err != nil || resp.StatusCode != 200 {
			t.Fatalf("encrypt = %d, %v", resp.StatusCode, err)
		}
		return r.Data.Ciphertext
	}
	ct1 := encrypt()
	s.RotateTransitKey("", "transit", "k")
	ct2 := encrypt()
	if !strings.HasPrefix(ct1, "vault:v1:") || !strings.HasPrefix(ct2, "vault:v2:") {
		t.Fatalf("ciphertexts %q, %q; want vault:v1: and vault:v2:", ct1, ct2)
	}
	tampered := ct1[:len(ct1)-4] + "AAA="
	run(t, s, root, []call{
		{method: "POST", path: "transit/decrypt/k", token: "root", body: `{"ciphertext":"` + ct1 + `"}`, status: 200, want: map[string]any{"data.plaintext": pt}},
		{method: "POST", path: "transit/decrypt/k", token: "root", body: `{"ciphertext":"` + ct2 + `"}`, status: 200, want: map[string]any{"data.plaintext": pt}},
		{method: "POST", path: "transit/decrypt/k", token: "root", body: `{"ciphertext":"` + tampered + `"}`, status: 400, want: map[string]any{"errors.0": "<set>"}},
		{method: "POST", path: "transit/decrypt/k", token: "root", body: `{"ciphertext":"v1:abc"}`, status: 400, want: map[string]any{"errors": []any{"invalid ciphertext: no prefix"}}},
		{method: "POST", path: "transit/decrypt/k", token: "root", body: `{"ciphertext":"vault:v3:abc"}`, status: 400},
		{method: "POST", path: "transit/decrypt/other", token: "root", body: `{"ciphertext":"` + ct1 + `"}`, status: 400, want: map[string]any{"errors": []any{"encryption key not found"}}},
		{method: "POST", path: "transit/encrypt/k", token: "root", body: `{"plaintext":"***"}`, status: 400, want: map[string]any{"errors": []any{"failed to base64-decode plaintext"}}},
		{method: "GET", path: "transit/keys/k", token: "root", status: 200, want: map[string]any{"data.latest_version": 2.0}},
	})
	if n := s.Count(CountDecrypt); n != 6 {
		t.Errorf("Count(decrypt) = %d, want 6", n)
	}
}

func TestMatchPolicyPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern        string
		match, noMatch []string // paths
	}{
		{"kv/*", []string{"kv/a/b", "kv/"}, []string{"kv"}},
		{"kv/a", []string{"kv/a"}, []string{"kv/ab"}},
		{"kv/+/x", []string{"kv/a/x"}, []string{"kv//x", "kv/a/b/x"}},
		{"kv/+/*", []string{"kv/a/b/c"}, nil},
		{"+/data/*", []string{"kv/data/k"}, nil},
	}
	for _, tt := range tests {
		for want, paths := range map[bool][]string{true: tt.match, false: tt.noMatch} {
			for _, path := range paths {
				if got := matchPolicyPath(tt.pattern, path); got != want {
					t.Errorf("matchPolicyPath(%q, %q) = %v, want %v", tt.pattern, path, got, want)
				}
			}
		}
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	s := New(t, Options{})
	s.SetLatency(300 * time.Millisecond)
	start := time.Now()
	resp, err := s.Client().Get(s.URL + "/v1/sys/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("request took %v, want at least the latency", elapsed)
	}
}
