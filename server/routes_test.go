package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/kes"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// /version needs no identity: the stranger may call it.
	var v api.VersionResponse
	do(t, e.client(t, e.stranger), "GET", e.url("/version"), "").decode(t, &v)
	if v.Version == "" || v.Commit == "" {
		t.Errorf("version = %+v, want non-empty fields", v)
	}
}

func TestKeyLifecycle(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t)

	do(t, c, "POST", e.url("/v1/key/create/my-key"), "").wantEmpty(t)
	do(t, c, "PUT", e.url("/v1/key/create/my-key"), "").wantError(t, 400, "key already exists")
	do(t, c, "POST", e.url("/v1/key/create/my.key"), "").
		wantError(t, 400, "key name 'my.key' is empty, too long or contains invalid characters")
	// kms-go's CreateKey(ctx, "") sends the path without trailing slash.
	do(t, c, "POST", e.url("/v1/key/create"), "").
		wantError(t, 400, "key name '' is empty, too long or contains invalid characters")

	var desc api.DescribeKeyResponse
	do(t, c, "GET", e.url("/v1/key/describe/my-key"), "").decode(t, &desc)
	if desc.Name != "my-key" || (desc.Algorithm != "AES256" && desc.Algorithm != "ChaCha20") || desc.CreatedBy != e.admin.Identity() {
		t.Errorf("describe = %+v", desc)
	}
	if d := time.Since(desc.CreatedAt); d < 0 || d > time.Minute || desc.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at = %v, want now in UTC", desc.CreatedAt)
	}
	do(t, c, "GET", e.url("/v1/key/describe/nope"), "").wantError(t, 404, "key does not exist")

	// Import.
	key := bytes.Repeat([]byte{7}, 32)
	do(t, c, "POST", e.url("/v1/key/import/imported"), `{"key":"`+b64(key)+`","cipher":"AES256"}`).wantEmpty(t)
	do(t, c, "POST", e.url("/v1/key/import/imported"), `{"key":"`+b64(key)+`","cipher":"AES256"}`).
		wantError(t, 400, "key already exists")
	do(t, c, "POST", e.url("/v1/key/import/chacha"), `{"key":"`+b64(key)+`","cipher":"XCHACHA20-POLY1305"}`).wantEmpty(t)
	do(t, c, "GET", e.url("/v1/key/describe/chacha"), "").decode(t, &desc)
	if desc.Algorithm != "ChaCha20" {
		t.Errorf("algorithm = %q, want ChaCha20", desc.Algorithm)
	}
	do(t, c, "POST", e.url("/v1/key/import/x1"), `{"key":"`+b64(key)+`","cipher":"DES"}`).
		wantError(t, 406, "algorithm 'DES' is not supported")
	do(t, c, "POST", e.url("/v1/key/import/x1"), `{"key":"`+b64(key)+`"}`).
		wantError(t, 406, "algorithm '' is not supported")
	do(t, c, "POST", e.url("/v1/key/import/x1"), `{"key":"`+b64(key[:16])+`","cipher":"AES256"}`).
		wantError(t, 406, "invalid key size for 'AES256'")
	do(t, c, "POST", e.url("/v1/key/import/x1"), `{"key":"%%%","cipher":"AES256"}`).
		wantError(t, 400, "invalid import key request body")
	do(t, c, "POST", e.url("/v1/key/import/x1"), "").
		wantError(t, 400, "invalid import key request body")

	// Listing, with the trailing-'*' fix.
	for _, name := range []string{"my-key2", "my_app", "other"} {
		do(t, c, "POST", e.url("/v1/key/create/"+name), "").wantEmpty(t)
	}
	all := []string{"chacha", "imported", "my-key", "my-key2", "my_app", "other"}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"empty pattern", "/v1/key/list/", all},
		{"no trailing slash", "/v1/key/list", all},
		{"star", "/v1/key/list/*", all},
		{"escaped star", "/v1/key/list/%2A", all},
		{"prefix star", "/v1/key/list/my*", []string{"my-key", "my-key2", "my_app"}},
		{"prefix", "/v1/key/list/my-", nil}, // invalid pattern: '-' last
		{"plain prefix", "/v1/key/list/my-key", []string{"my-key", "my-key2"}},
		{"no match", "/v1/key/list/zzz", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, c, "GET", e.url(tt.path), "")
			if tt.want == nil {
				resp.wantError(t, 400, "listing pattern 'my-' is empty, too long or is invalid")
				return
			}
			var list api.ListKeysResponse
			resp.decode(t, &list)
			if diff := cmp.Diff(tt.want, list.Names); diff != "" {
				t.Errorf("names mismatch (-want +got):\n%s", diff)
			}
			if bytes.Contains(resp.body, []byte("continue_at")) || bytes.Contains(resp.body, []byte("null")) {
				t.Errorf("body = %s", resp.body)
			}
		})
	}

	// Delete.
	do(t, c, "DELETE", e.url("/v1/key/delete/my-key"), "").wantEmpty(t)
	do(t, c, "DELETE", e.url("/v1/key/delete/my-key"), "").wantError(t, 404, "key does not exist")
	do(t, c, "GET", e.url("/v1/key/describe/my-key"), "").wantError(t, 404, "key does not exist")

	// Audit records of the successful create/import/delete.
	var msgs []string
	for _, r := range e.audit.all() {
		if r.Status == 200 && strings.HasPrefix(r.Message, "secret key") {
			msgs = append(msgs, r.Message)
			if r.KeyName == "" || r.Identity != e.admin.Identity() || r.IP != "127.0.0.1" || r.Method == "" {
				t.Errorf("audit record %+v", r)
			}
		}
	}
	want := []string{
		"secret key 'my-key' created", "secret key 'imported' created", "secret key 'chacha' created",
		"secret key 'my-key2' created", "secret key 'my_app' created", "secret key 'other' created",
		"secret key 'my-key' deleted",
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("audit messages mismatch (-want +got):\n%s", diff)
	}
}

func TestCrypto(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t, "my-key")

	// generate → decrypt with context
	ctx := b64([]byte(`{"bucket":"b"}`))
	var gen api.GenerateKeyResponse
	do(t, c, "POST", e.url("/v1/key/generate/my-key"), `{"context":"`+ctx+`"}`).decode(t, &gen)
	if len(gen.Plaintext) != 32 || len(gen.Ciphertext) != 76 {
		t.Fatalf("generate: len(plaintext) = %d, len(ciphertext) = %d", len(gen.Plaintext), len(gen.Ciphertext))
	}
	var dec api.DecryptKeyResponse
	do(t, c, "POST", e.url("/v1/key/decrypt/my-key"), `{"ciphertext":"`+b64(gen.Ciphertext)+`","context":"`+ctx+`"}`).decode(t, &dec)
	if !bytes.Equal(dec.Plaintext, gen.Plaintext) {
		t.Errorf("decrypt = %x, want %x", dec.Plaintext, gen.Plaintext)
	}
	do(t, c, "POST", e.url("/v1/key/decrypt/my-key"), `{"ciphertext":"`+b64(gen.Ciphertext)+`"}`).
		wantError(t, 400, "decryption failed: ciphertext is not authentic")
	do(t, c, "POST", e.url("/v1/key/decrypt/my-key"), `{"ciphertext":"AAAA"}`).
		wantError(t, 400, "decryption failed: ciphertext is not authentic")

	// generate without body, with an empty object, and with a bad body
	do(t, c, "POST", e.url("/v1/key/generate/my-key"), "").decode(t, &gen)
	do(t, c, "POST", e.url("/v1/key/generate/my-key"), "{}").decode(t, &gen)
	do(t, c, "POST", e.url("/v1/key/decrypt/my-key"), `{"ciphertext":"`+b64(gen.Ciphertext)+`"}`).decode(t, &dec)
	if !bytes.Equal(dec.Plaintext, gen.Plaintext) {
		t.Errorf("decrypt without context = %x, want %x", dec.Plaintext, gen.Plaintext)
	}
	do(t, c, "POST", e.url("/v1/key/generate/my-key"), "{").wantError(t, 400, "invalid request body")
	do(t, c, "POST", e.url("/v1/key/generate/nope"), "").wantError(t, 404, "key does not exist")

	// encrypt → decrypt
	var enc api.EncryptKeyResponse
	do(t, c, "POST", e.url("/v1/key/encrypt/my-key"), `{"plaintext":"`+b64([]byte("hello"))+`","context":"`+ctx+`"}`).decode(t, &enc)
	if len(enc.Ciphertext) != 5+44 {
		t.Errorf("len(ciphertext) = %d, want 49", len(enc.Ciphertext))
	}
	do(t, c, "PUT", e.url("/v1/key/decrypt/my-key"), `{"ciphertext":"`+b64(enc.Ciphertext)+`","context":"`+ctx+`"}`).decode(t, &dec)
	if string(dec.Plaintext) != "hello" {
		t.Errorf("decrypt = %q, want hello", dec.Plaintext)
	}
	do(t, c, "POST", e.url("/v1/key/encrypt/my-key"), "").wantError(t, 400, "invalid request body")
	do(t, c, "POST", e.url("/v1/key/encrypt/my-key"), "{}").decode(t, &enc)
	if len(enc.Ciphertext) != 44 {
		t.Errorf("len(ciphertext of empty plaintext) = %d, want 44", len(enc.Ciphertext))
	}

	// HMAC is deterministic and key-dependent.
	var h1, h2, h3 api.HMACResponse
	msg := `{"message":"` + b64([]byte("msg")) + `"}`
	do(t, c, "PUT", e.url("/v1/key/hmac/my-key"), msg).decode(t, &h1)
	do(t, c, "POST", e.url("/v1/key/hmac/my-key"), msg).decode(t, &h2)
	do(t, c, "POST", e.url("/v1/key/create/other"), "").wantEmpty(t)
	do(t, c, "PUT", e.url("/v1/key/hmac/other"), msg).decode(t, &h3)
	if len(h1.HMAC) != 32 || !hmac.Equal(h1.HMAC, h2.HMAC) || hmac.Equal(h1.HMAC, h3.HMAC) {
		t.Errorf("hmac: %x %x %x", h1.HMAC, h2.HMAC, h3.HMAC)
	}
	do(t, c, "PUT", e.url("/v1/key/hmac/my-key"), "").wantError(t, 400, "invalid request body")
}

// TestLegacyKey uses the original server's legacy JSON key fixture: it
// decrypts, describes, but has no HMAC key (409).
func TestLegacyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "kes-fixtures", "keystore", "fixture-legacy-json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Create(t.Context(), "legacy", raw); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, e.admin)
	do(t, c, "PUT", e.url("/v1/key/hmac/legacy"), `{"message":"AA=="}`).wantError(t, 409, "key does not support HMAC")
	var desc api.DescribeKeyResponse
	do(t, c, "GET", e.url("/v1/key/describe/legacy"), "").decode(t, &desc)
	if desc.Algorithm != "AES256" || desc.CreatedAt.Year() != 2020 {
		t.Errorf("describe legacy = %+v", desc)
	}
	// A corrupt stored value is a 502.
	if err := e.store.Create(t.Context(), "corrupt", []byte("not a key")); err != nil {
		t.Fatal(err)
	}
	do(t, c, "GET", e.url("/v1/key/describe/corrupt"), "").wantError(t, 502, "failed to read key")
	if !strings.Contains(e.errLog.String(), "level=ERROR") {
		t.Errorf("error log has no ERROR record:\n%s", e.errLog)
	}
}

func TestBadBodies(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t, "k")
	tests := []struct {
		name, path, body string
	}{
		{"bad json", "/v1/key/decrypt/k", `{"ciphertext":`},
		{"bad base64", "/v1/key/decrypt/k", `{"ciphertext":"!!!!"}`},
		{"url-safe base64", "/v1/key/encrypt/k", `{"plaintext":"-_-_"}`},
		{"wrong type", "/v1/key/encrypt/k", `{"plaintext":42}`},
		{"array", "/v1/key/hmac/k", `[1]`},
		{"empty", "/v1/key/decrypt/k", ``},
		{"oversized", "/v1/key/encrypt/k", `{"plaintext":"` + strings.Repeat("A", 1_000_000) + `"}`},
		{"oversized generate", "/v1/key/generate/k", `{"context":"` + strings.Repeat("A", 1_000_004) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := do(t, c, "POST", e.url(tt.path), tt.body)
			resp.wantError(t, 400, "invalid request body")
			if want := "{\"message\":\"invalid request body\"\n}"; string(resp.body) != want {
				t.Errorf("body = %q, want %q", resp.body, want)
			}
		})
	}
	// Tolerated: unknown fields, trailing data, null.
	do(t, c, "POST", e.url("/v1/key/encrypt/k"), `{"plaintext":null,"foo":1} trailing`).want(t, 200)
}

func TestPolicyAndIdentityRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Policies["other"] = Policy{Allow: []string{"/v1/key/list/*"}}
	})
	admin := e.client(t, e.admin)

	var pd api.DescribePolicyResponse
	do(t, admin, "GET", e.url("/v1/policy/describe/my-app"), "").decode(t, &pd)
	if pd.Name != "my-app" || string(pd.CreatedBy) != e.admin.Identity() || !pd.CreatedAt.Equal(e.srv.started) {
		t.Errorf("policy describe = %+v", pd)
	}
	do(t, admin, "GET", e.url("/v1/policy/describe/nope"), "").wantError(t, 404, "policy does not exist")
	do(t, admin, "GET", e.url("/v1/policy/describe/a.b"), "").
		wantError(t, 400, "policy name 'a.b' is empty, too long or contains invalid characters")

	var pr api.ReadPolicyResponse
	do(t, admin, "GET", e.url("/v1/policy/read/my-app"), "").decode(t, &pr)
	wantAllow := map[string]struct{}{}
	for _, p := range testPolicy.Allow {
		wantAllow[p] = struct{}{}
	}
	if diff := cmp.Diff(wantAllow, pr.Allow); diff != "" {
		t.Errorf("allow mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]struct{}{testPolicy.Deny[0]: {}}, pr.Deny); diff != "" {
		t.Errorf("deny mismatch (-want +got):\n%s", diff)
	}
	resp := do(t, admin, "GET", e.url("/v1/policy/read/other"), "")
	if bytes.Contains(resp.body, []byte(`"deny"`)) {
		t.Errorf("empty deny not omitted: %s", resp.body)
	}

	listTests := []struct {
		name, path, want string
	}{
		{"policies all", "/v1/policy/list/", `{"names":["my-app","other"],"continue_at":""}`},
		{"policies bare", "/v1/policy/list", `{"names":["my-app","other"],"continue_at":""}`},
		{"policies star", "/v1/policy/list/*", `{"names":["my-app","other"],"continue_at":""}`},
		{"policies prefix star", "/v1/policy/list/my*", `{"names":["my-app"],"continue_at":""}`},
		{"policies none", "/v1/policy/list/x", `{"names":[],"continue_at":""}`},
	}
	for _, tt := range listTests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, admin, "GET", e.url(tt.path), "").want(t, 200)
			if got := string(resp.body); got != tt.want+"\n" {
				t.Errorf("body = %q, want %q", got, tt.want+"\n")
			}
		})
	}

	var ids api.ListIdentitiesResponse
	do(t, admin, "GET", e.url("/v1/identity/list"), "").decode(t, &ids)
	wantIDs := []string{e.admin.Identity(), e.user.Identity()}
	slices.Sort(wantIDs)
	if diff := cmp.Diff(wantIDs, ids.Identities); diff != "" {
		t.Errorf("identities mismatch (-want +got):\n%s", diff)
	}
	do(t, admin, "GET", e.url("/v1/identity/list/"+e.user.Identity()[:10]+"*"), "").decode(t, &ids)
	if diff := cmp.Diff([]string{e.user.Identity()}, ids.Identities); diff != "" {
		t.Errorf("identities by prefix mismatch (-want +got):\n%s", diff)
	}

	var id api.DescribeIdentityResponse
	do(t, admin, "GET", e.url("/v1/identity/describe/"+e.admin.Identity()), "").decode(t, &id)
	if !id.IsAdmin || id.Policy != "" {
		t.Errorf("describe admin = %+v", id)
	}
	id = api.DescribeIdentityResponse{}
	do(t, admin, "GET", e.url("/v1/identity/describe/"+e.user.Identity()), "").decode(t, &id)
	if id.IsAdmin || id.Policy != "my-app" || id.CreatedBy != e.admin.Identity() {
		t.Errorf("describe user = %+v", id)
	}
	do(t, admin, "GET", e.url("/v1/identity/describe/"+e.stranger.Identity()), "").wantError(t, 404, "identity does not exist")
	do(t, admin, "GET", e.url("/v1/identity/describe/a.b"), "").
		wantError(t, 400, "identity 'a.b' is empty, too long or contains invalid characters")
}

func TestSelfDescribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var self api.SelfDescribeResponse
	resp := do(t, e.client(t, e.admin), "GET", e.url("/v1/identity/self/describe"), "")
	resp.decode(t, &self)
	if self.Identity != e.admin.Identity() || !self.IsAdmin || self.Policy != "" {
		t.Errorf("self admin = %+v", self)
	}
	var raw map[string]any
	json.Unmarshal(resp.body, &raw)
	if len(raw) != 3 {
		t.Errorf("self admin has fields %v, want identity, admin, created_at", raw)
	}

	self = api.SelfDescribeResponse{}
	do(t, e.client(t, e.user), "GET", e.url("/v1/identity/self/describe"), "").decode(t, &self)
	if self.Identity != e.user.Identity() || self.IsAdmin || self.Policy != "my-app" ||
		self.CreatedBy != e.admin.Identity() || len(self.Allow) != len(testPolicy.Allow) || len(self.Deny) != 1 {
		t.Errorf("self user = %+v", self)
	}

	do(t, e.client(t, e.stranger), "GET", e.url("/v1/identity/self/describe"), "").
		wantError(t, 404, "identity does not exist")
}

func TestStatusReadyAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Routes = map[string]RouteConfig{"/v1/status": {Timeout: 42 * time.Second}}
	})
	c := e.client(t, e.admin)

	resp := do(t, c, "GET", e.url("/v1/status"), "")
	var st api.StatusResponse
	resp.decode(t, &st)
	if st.OS != runtime.GOOS || st.Arch != runtime.GOARCH || st.CPUs != runtime.NumCPU() ||
		st.UsableCPUs != runtime.GOMAXPROCS(0) || st.HeapAlloc == 0 || st.StackAlloc == 0 ||
		st.KeyStoreLatency < 1 || st.KeyStoreUnreachable || st.Version == "" {
		t.Errorf("status = %+v", st)
	}
	var fields map[string]any
	json.Unmarshal(resp.body, &fields)
	wantFields := []string{"arch", "keystore_latency", "mem_heap_used", "mem_stack_used", "num_cpu", "num_cpu_used", "os", "uptime", "version"}
	var got []string
	for k := range fields {
		got = append(got, k)
	}
	slices.Sort(got)
	if diff := cmp.Diff(wantFields, got); diff != "" {
		t.Errorf("status fields mismatch (-want +got):\n%s", diff)
	}

	do(t, c, "GET", e.url("/v1/ready"), "").wantEmpty(t)

	var routes []api.RouteResponse
	do(t, c, "GET", e.url("/v1/api"), "").decode(t, &routes)
	if len(routes) != 25 {
		t.Fatalf("len(/v1/api) = %d, want 25 (22 upstream, rotate, rewrap, restore)", len(routes))
	}
	byPath := map[string]api.RouteResponse{}
	for _, r := range routes {
		byPath[r.Path] = r
	}
	wantRoutes := map[string]api.RouteResponse{
		"/v1/status":         {Method: "GET", Path: "/v1/status", Timeout: 42},
		"/version":           {Method: "GET", Path: "/version", Timeout: 10},
		"/v1/key/decrypt/":   {Method: "PUT", Path: "/v1/key/decrypt/", MaxBody: 1_000_000, Timeout: 15},
		"/v1/log/audit":      {Method: "GET", Path: "/v1/log/audit"},
		"/v1/key/delete/":    {Method: "DELETE", Path: "/v1/key/delete/", Timeout: 15},
		"/v1/identity/list/": {Method: "GET", Path: "/v1/identity/list/", Timeout: 15},
		"/v1/key/rotate/":    {Method: "PUT", Path: "/v1/key/rotate/", Timeout: 15},
		"/v1/key/rewrap/":    {Method: "PUT", Path: "/v1/key/rewrap/", MaxBody: 1_000_000, Timeout: 15},
		"/v1/key/restore/":   {Method: "PUT", Path: "/v1/key/restore/", Timeout: 15},
	}
	for p, want := range wantRoutes {
		if got := byPath[p]; got != want {
			t.Errorf("/v1/api %s = %+v, want %+v", p, got, want)
		}
	}
}

func TestStoreFailures(t *testing.T) {
	t.Parallel()
	store := newFlakyStore(newMemStore())
	e := newEnv(t, func(c *Config) { c.Store = store })
	c := e.client(t, e.admin)
	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)

	store.broken.Store(true)
	do(t, c, "GET", e.url("/v1/ready"), "").wantError(t, 502, "key store is unavailable")
	do(t, c, "POST", e.url("/v1/key/create/k2"), "").wantError(t, 502, "failed to create key")
	do(t, c, "GET", e.url("/v1/key/list/"), "").wantError(t, 502, "failed to list keys")
	do(t, c, "DELETE", e.url("/v1/key/delete/k"), "").wantError(t, 502, "failed to delete key")
	do(t, c, "GET", e.url("/v1/key/describe/k2"), "").wantError(t, 502, "failed to read key")
	var st api.StatusResponse
	do(t, c, "GET", e.url("/v1/status"), "").decode(t, &st)
	if !st.KeyStoreUnreachable || st.KeyStoreLatency != 0 {
		t.Errorf("status with broken store = %+v", st)
	}
	if log := e.errLog.String(); !strings.Contains(log, errBroken.Error()) || !strings.Contains(log, "identity="+e.admin.Identity()) {
		t.Errorf("error log lacks the cause or request attributes:\n%s", log)
	}

	store.broken.Store(false)
	store.down.Store(true)
	do(t, c, "GET", e.url("/v1/ready"), "").wantError(t, 504, "key store is not reachable")

	store.down.Store(false)
	store.panicky.Store(true)
	do(t, c, "POST", e.url("/v1/key/create/boom"), "").wantError(t, 500, "internal error")
	if !strings.Contains(e.errLog.String(), "panic serving request") {
		t.Errorf("panic not logged")
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t)

	scrape := func() map[string]*familySnapshot {
		t.Helper()
		resp := do(t, c, "GET", e.url("/v1/metrics"), "").want(t, 200)
		if ct := resp.header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" {
			t.Errorf("Content-Type = %q", ct)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(resp.body))
		if err != nil {
			t.Fatalf("parse metrics: %v\n%s", err, resp.body)
		}
		out := map[string]*familySnapshot{}
		for name, mf := range mfs {
			f := &familySnapshot{typ: mf.GetType().String(), help: mf.GetHelp(), values: map[string]float64{}}
			for _, m := range mf.Metric {
				label := ""
				for _, l := range m.Label {
					label = l.GetName() + "=" + l.GetValue()
				}
				switch {
				case m.Counter != nil:
					f.values[label] = m.Counter.GetValue()
				case m.Gauge != nil:
					f.values[label] = m.Gauge.GetValue()
				case m.Histogram != nil:
					f.values[label] = float64(m.Histogram.GetSampleCount())
					f.buckets = len(m.Histogram.Bucket)
				}
			}
			out[name] = f
		}
		return out
	}

	fresh := scrape()
	wantFresh := []string{
		"kes_http_request_active", "kes_http_response_time", "kes_log_audit_events", "kes_log_error_events",
		"kes_system_mem_heap_objects", "kes_system_mem_heap_used", "kes_system_mem_stack_used",
		"kes_system_num_cpu", "kes_system_num_cpu_used", "kes_system_num_threads", "kes_system_up_time",
	}
	var names []string
	for n, f := range fresh {
		// OpenKES families (metrics.go) all end in _total or _seconds;
		// no upstream family does.
		if !strings.HasSuffix(n, "_total") && !strings.HasSuffix(n, "_seconds") {
			names = append(names, n)
		}
		if len(f.values) != 1 {
			t.Errorf("%s has %d samples, want 1", n, len(f.values))
		}
	}
	slices.Sort(names)
	if diff := cmp.Diff(wantFresh, names); diff != "" {
		t.Errorf("fresh families mismatch (-want +got):\n%s", diff)
	}
	if f := fresh["kes_http_response_time"]; f.typ != "HISTOGRAM" || f.buckets != 11 || f.help != "Histogram of request response times spawning from 10ms to 10s." {
		t.Errorf("response_time = %+v", f)
	}

	// Counted: routes 6-20 after authentication. Not counted: 403, 404,
	// 405, /v1/status and the like.
	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)
	do(t, c, "POST", e.url("/v1/key/create/k"), "").want(t, 400)
	do(t, c, "GET", e.url("/v1/key/describe/nope"), "").want(t, 404)
	do(t, c, "GET", e.url("/v1/identity/self/describe"), "").want(t, 200)
	do(t, c, "GET", e.url("/v1/status"), "").want(t, 200)
	do(t, c, "GET", e.url("/v1/nope"), "").want(t, 404)
	do(t, c, "GET", e.url("/v1/key/create/k"), "").want(t, 405)
	do(t, e.client(t, e.stranger), "GET", e.url("/v1/key/describe/k"), "").want(t, 403)

	m := scrape()
	check := []struct {
		family, label string
		want          float64
		help          string
		typ           string
	}{
		{"kes_http_request_success", "code=200", 2, "Number of requests that have been served successfully.", "COUNTER"},
		{"kes_http_request_error", "code=400", 1, "Number of request that failed due to some error. (HTTP 4xx status code)", "COUNTER"},
		{"kes_http_request_error", "code=404", 1, "Number of request that failed due to some error. (HTTP 4xx status code)", "COUNTER"},
		{"kes_http_response_time", "", 4, "Histogram of request response times spawning from 10ms to 10s.", "HISTOGRAM"},
		{"kes_http_request_active", "", 0, "Number of active requests that are not finished, yet.", "GAUGE"},
		{"kes_system_num_cpu", "", float64(runtime.NumCPU()), "The number of logical CPUs available on the system. It may be larger than the number of usable CPUs.", "GAUGE"},
		{"kes_log_audit_events", "", 0, "Number of audit log events written to the audit log targets.", "COUNTER"},
		// OpenKES families: the stranger's 403; two store creates (the
		// second finds the key: no error); one store read of "nope"
		// (not found: no error), a cache miss.
		{"kes_policy_denials_total", "", 1, "Number of requests denied because the identity is unknown or its policy does not allow the path.", "COUNTER"},
		{"kes_keystore_create_seconds", "", 2, "Latency of key store create operations in seconds.", "HISTOGRAM"},
		{"kes_keystore_create_errors_total", "", 0, "Number of key store create operations that failed (not found and already exists are no failures).", "COUNTER"},
		{"kes_keystore_get_errors_total", "", 0, "Number of key store get operations that failed (not found and already exists are no failures).", "COUNTER"},
		{"kes_cache_misses_total", "", 1, "Number of key reads that had to ask the key store.", "COUNTER"},
		{"kes_cache_hits_total", "", 0, "Number of key reads served from the key cache.", "COUNTER"},
	}
	for _, tt := range check {
		f := m[tt.family]
		if f == nil {
			t.Errorf("family %s missing", tt.family)
			continue
		}
		if got := f.values[tt.label]; got != tt.want || f.help != tt.help || f.typ != tt.typ {
			t.Errorf("%s{%s} = %v %q %s, want %v %q %s", tt.family, tt.label, got, f.help, f.typ, tt.want, tt.help, tt.typ)
		}
	}
	if _, ok := m["kes_http_request_error"].values["code=403"]; ok {
		t.Error("403 counted")
	}
	if _, ok := m["kes_http_request_failure"]; ok {
		t.Error("kes_http_request_failure present without any 5xx")
	}
	if up := m["kes_system_up_time"].values[""]; up < 0 || up > 60 {
		t.Errorf("up_time = %v", up)
	}
}

type familySnapshot struct {
	typ, help string
	values    map[string]float64
	buckets   int
}

func TestRouting(t *testing.T) {
	t.Parallel()
	e, admin := adminEnv(t)
	user := e.client(t, e.user)

	t.Run("405", func(t *testing.T) {
		tests := []struct {
			name, method, path, want string
		}{
			{"post on get", "POST", "/v1/status", "GET"},
			{"head on get", "HEAD", "/v1/key/list/", "GET"},
			{"get on put", "GET", "/v1/key/create/x", "PUT"},
			{"post on delete", "POST", "/v1/key/delete/x", "DELETE"},
			{"delete on version", "DELETE", "/version", "GET"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Method check comes before authentication: the stranger
				// sees the 405 too.
				resp := do(t, e.client(t, e.stranger), tt.method, e.url(tt.path), "")
				resp.want(t, 405)
				if got := resp.header.Get("Accept"); got != tt.want {
					t.Errorf("Accept = %q, want %q", got, tt.want)
				}
				want := "{\"message\":\"received method '" + tt.method + "' expected '" + tt.want + "'\"\n}"
				if tt.method != "HEAD" && string(resp.body) != want {
					t.Errorf("body = %q, want %q", resp.body, want)
				}
			})
		}
	})

	t.Run("404", func(t *testing.T) {
		for _, p := range []string{"/", "/v1", "/v1/key/bulk/decrypt/x", "/v1/status/", "/V1/status", "/v1/secret/create/x", "/v1/identity/self/describe/x", "/v1/log/audit/trace"} {
			resp := do(t, admin, "GET", e.url(p), "")
			resp.want(t, 404)
			if string(resp.body) != "404 page not found\n" ||
				resp.header.Get("Content-Type") != "text/plain; charset=utf-8" ||
				resp.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s = %q %v", p, resp.body, resp.header)
			}
		}
	})

	t.Run("redirect", func(t *testing.T) {
		tests := []struct {
			name, path, location string
		}{
			{"double slash", "/v1//status", "/v1/status"},
			{"dot", "/v1/./status", "/v1/status"},
			{"dotdot", "/v1/key/describe/../list/", "/v1/key/list/"},
			{"query kept", "/v1/key//list/x?a=b", "/v1/key/list/x?a=b"},
			{"encoded dotdot", "/v1/key/describe/a%2F..%2F..%2Fcreate%2Fx", "/v1/key/create/x"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp := do(t, admin, "GET", e.url(tt.path), "")
				resp.want(t, 301)
				if got := resp.header.Get("Location"); got != tt.location {
					t.Errorf("Location = %q, want %q", got, tt.location)
				}
				want := `<a href="` + strings.ReplaceAll(tt.location, "&", "&amp;") + `">Moved Permanently</a>.` + "\n\n"
				if string(resp.body) != want || resp.header.Get("Content-Type") != "text/html; charset=utf-8" {
					t.Errorf("body = %q (%s), want %q", resp.body, resp.header.Get("Content-Type"), want)
				}
			})
		}
		// The redirect target is authorised anew: the user may describe
		// keys but not create them.
		resp := do(t, user, "PUT", e.url("/v1/key/describe/../create/x"), "")
		resp.want(t, 301)
		if len(resp.body) != 0 {
			t.Errorf("redirect body for PUT = %q, want none", resp.body)
		}
		do(t, user, "PUT", e.url(resp.header.Get("Location")), "").wantError(t, 403, "not authorized: insufficient permissions")
	})

	t.Run("authorization", func(t *testing.T) {
		do(t, admin, "POST", e.url("/v1/key/create/my-app-internal"), "").wantEmpty(t)
		do(t, admin, "POST", e.url("/v1/key/create/other"), "").wantEmpty(t)
		tests := []struct {
			name, method, path string
			status             int
		}{
			{"allowed", "POST", "/v1/key/create/my-app-1", 200},
			{"allowed describe", "GET", "/v1/key/describe/other", 200},
			{"denied", "GET", "/v1/key/describe/my-app-internal", 403},
			{"not allowed", "POST", "/v1/key/create/other2", 403},
			{"not allowed delete", "DELETE", "/v1/key/delete/other", 403},
			{"not allowed before validation", "POST", "/v1/key/create/a.b", 403},
			{"status allowed", "GET", "/v1/status", 200},
			{"ready not allowed", "GET", "/v1/ready", 403},
			{"version always", "GET", "/version", 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp := do(t, user, tt.method, e.url(tt.path), "")
				if tt.status == 403 {
					resp.wantError(t, 403, "not authorized: insufficient permissions")
					return
				}
				resp.want(t, tt.status)
			})
		}
		stranger := e.client(t, e.stranger)
		do(t, stranger, "GET", e.url("/v1/key/describe/other"), "").wantError(t, 403, "not authorized: insufficient permissions")
		do(t, stranger, "GET", e.url("/v1/status"), "").wantError(t, 403, "not authorized: insufficient permissions")
	})

	t.Run("percent-encoding", func(t *testing.T) {
		do(t, admin, "POST", e.url("/v1/key/create/enc-key"), "").wantEmpty(t)
		do(t, admin, "GET", e.url("/v1/key/describe/enc%2Dkey"), "").want(t, 200)
		do(t, admin, "GET", e.url("/v1/key/describe/a%2Fb"), "").
			wantError(t, 400, "key name 'a/b' is empty, too long or contains invalid characters")
	})
}

func TestPredefinedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Keys = []string{"k1", "k2"} })
	c := e.client(t, e.admin)
	for _, name := range []string{"k1", "k2"} {
		var desc api.DescribeKeyResponse
		do(t, c, "GET", e.url("/v1/key/describe/"+name), "").decode(t, &desc)
		if desc.CreatedBy != e.admin.Identity() {
			t.Errorf("%s created_by = %q, want admin", name, desc.CreatedBy)
		}
	}

	// Existing keys are kept: a second server on the same store starts.
	conf := *e.conf
	conf.Store = e.store
	srv, err := New(t.Context(), &conf)
	if err != nil {
		t.Fatalf("New with existing keys: %v", err)
	}
	// (srv shares e.store; do not Close it, which would close the store.)
	srv.state.Load().cache.Close()
}

func TestPredefinedKeysUnreachable(t *testing.T) {
	t.Parallel()
	store := newFlakyStore(newMemStore())
	store.down.Store(true)
	e := newEnv(t, func(c *Config) {
		c.Store = store
		c.Keys = []string{"k1"}
	})
	if !strings.Contains(e.errLog.String(), "retrying in the background") {
		t.Errorf("error log = %s", e.errLog)
	}
	store.down.Store(false)
	keystoretest.WaitUntil(t, "k1 to be created in the background", func() bool {
		_, err := store.Store.Get(t.Context(), "k1")
		return err == nil
	})

	// A non-transient error fails New and leaves the store open.
	store2 := newFlakyStore(newMemStore())
	store2.broken.Store(true)
	conf := *e.conf
	conf.Store = store2
	if _, err := New(t.Context(), &conf); err == nil {
		t.Fatal("New with a broken store succeeded")
	}
}

func TestNewInvalidConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		conf Config
	}{
		{"no store", Config{TLS: TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}}},
		{"no certificate", Config{Store: newMemStore()}},
		{"bad policy name", Config{Store: newMemStore(), Policies: map[string]Policy{"a.b": {}},
			TLS: TLSConfig{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(t.Context(), &tt.conf); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	if _, err := New(t.Context(), nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestAuditRecordFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	do(t, e.client(t, e.user), "POST", e.url("/v1/key/generate/my-app-x"), "").want(t, 404)
	recs := e.audit.all()
	if len(recs) == 0 {
		t.Fatal("no audit records")
	}
	r := recs[len(recs)-1]
	want := AuditRecord{
		Method: "POST", Path: "/v1/key/generate/my-app-x", IP: "127.0.0.1",
		Identity: e.user.Identity(), Policy: "my-app", KeyName: "my-app-x",
		Status: 404, Message: "key does not exist",
	}
	got := r
	got.Time, got.Latency = time.Time{}, 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit record mismatch (-want +got):\n%s", diff)
	}
	if time.Since(r.Time) > time.Minute || r.Latency <= 0 {
		t.Errorf("time %v latency %v", r.Time, r.Latency)
	}
}

func TestIdentifyErrors(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	leaf1 := testpki.SelfSigned(t, testpki.Options{})
	leaf2 := testpki.SelfSigned(t, testpki.Options{})
	tests := []struct {
		name string
		cs   *tls.ConnectionState
		want string
	}{
		{"no tls", nil, "insecure connection: TLS is required"},
		{"no certs", &tls.ConnectionState{}, "tls: client certificate is required"},
		{"only ca", &tls.ConnectionState{PeerCertificates: certs(ca.X509)}, "tls: client certificate is required"},
		{"two leaves", &tls.ConnectionState{PeerCertificates: certs(leaf1.X509, leaf2.X509)}, "tls: received more than one client certificate"},
		{"ca then leaf", &tls.ConnectionState{PeerCertificates: certs(ca.X509, leaf1.X509)}, "tls: client certificate is required"},
		{"two cas then leaf", &tls.ConnectionState{PeerCertificates: certs(ca.X509, ca.X509, leaf1.X509)}, "tls: client certificate is required"},
		{"leaf, ca and leaf", &tls.ConnectionState{PeerCertificates: certs(leaf1.X509, ca.X509, leaf2.X509)}, "tls: received more than one client certificate"},
		{"leaf and ca", &tls.ConnectionState{PeerCertificates: certs(leaf1.X509, ca.X509)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := identify(tt.cs)
			if tt.want == "" {
				if err != nil || id != leaf1.Identity() {
					t.Errorf("identify = %q, %v, want %q", id, err, leaf1.Identity())
				}
				return
			}
			if e, ok := err.(kes.Error); !ok || e.Error() != tt.want || e.Status() != 400 {
				t.Errorf("identify error = %v, want 400 %q", err, tt.want)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "/"}, {"/", "/"}, {"/v1/status", "/v1/status"}, {"/v1/key/list/", "/v1/key/list/"},
		{"/v1//status", "/v1/status"}, {"/v1/./x", "/v1/x"}, {"/v1/../x", "/x"}, {"/v1/x/..", "/v1"},
		{"/v1/x/.", "/v1/x"}, {"/v1/x/./", "/v1/x/"}, {"/v1/.x/..y", "/v1/.x/..y"}, {"v1", "/v1"},
		{"/..", "/"}, {"//", "/"}, {"/a//", "/a/"},
	}
	for _, tt := range tests {
		if got := cleanPath(tt.in); got != tt.want {
			t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidIdentity(t *testing.T) {
	t.Parallel()
	id := testpki.SelfSigned(t, testpki.Options{}).Identity()
	tests := []struct {
		in   string
		want bool
	}{
		{id, true}, {strings.ToUpper(id), false}, {"disabled", false}, {"", false}, {id[:63], false}, {id + "0", false},
	}
	for _, tt := range tests {
		if got := validIdentity(tt.in); got != tt.want {
			t.Errorf("validIdentity(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestDisabledAdmin checks that a non-hex admin disables admin access but
// is still listed as an identity.
func TestDisabledAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Admin = "disabled" })
	do(t, e.client(t, e.admin), "GET", e.url("/v1/status"), "").want(t, 403)
	do(t, e.client(t, e.admin), "GET", e.url("/v1/identity/self/describe"), "").want(t, 404)
	p := testPolicy
	p.Allow = append(slices.Clone(p.Allow), "/v1/identity/list/*")
	p.Identities = []string{e.user.Identity()}
	e.conf.Policies = map[string]Policy{"my-app": p}
	if err := e.srv.Update(t.Context(), e.conf); err != nil {
		t.Fatal(err)
	}
	var ids api.ListIdentitiesResponse
	do(t, e.client(t, e.user), "GET", e.url("/v1/identity/list/"), "").decode(t, &ids)
	if !slices.Contains(ids.Identities, "disabled") {
		t.Errorf("identities = %v, want to include %q", ids.Identities, "disabled")
	}
}

func certs(c ...*x509.Certificate) []*x509.Certificate { return c }
