package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// variants are the store configurations the conformance suite runs for.
var variants = []struct {
	name string
	sc   storeConfig
}{
	{"kv1", storeConfig{version: "v1"}},
	{"kv1-prefix", storeConfig{version: "v1", prefix: true}},
	{"kv1-nested-prefix", storeConfig{version: "v1", nested: true}},
	{"kv1-namespace", storeConfig{version: "v1", prefix: true, namespace: true}},
	{"kv1-transit", storeConfig{version: "v1", prefix: true, transit: true}},
	{"kv2", storeConfig{version: "v2"}},
	{"kv2-prefix", storeConfig{version: "v2", prefix: true}},
	{"kv2-nested-prefix", storeConfig{version: "v2", nested: true}},
	{"kv2-namespace", storeConfig{version: "v2", prefix: true, namespace: true}},
	{"kv2-transit", storeConfig{version: "v2", prefix: true, transit: true}},
	{"kv2-namespace-transit", storeConfig{version: "v2", nested: true, namespace: true, transit: true}},
}

// TestConformance runs the key store conformance suite for every
// variant. The strict Delete contract holds (a missing key is
// ErrNotFound); values are text only. On K/V v1 the suite's create race
// passes because Creates of one name are serialised inside a Store: K/V
// v1 has no check-and-set, so across stores (servers) it is not atomic.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, srv := range servers(t) {
		for _, v := range variants {
			t.Run(srv.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				if _, ok := srv.config(t, v.sc); !ok {
					t.Skipf("%s cannot provide %s", srv.name, v.name)
				}
				keystoretest.RunWith(t, func(t *testing.T) keystore.Store {
					conf, _ := srv.config(t, v.sc)
					if srv.fake == nil {
						t.Cleanup(func() { cleanup(t, conf) })
					}
					return connectStore(t, conf, nil)
				}, keystoretest.Options{TextOnly: true})
			})
		}
	}
}

// TestCreateRaceAcrossStores checks that on K/V v2 check-and-set makes
// Create atomic across stores (servers): exactly one of many concurrent
// Creates through different clients wins.
func TestCreateRaceAcrossStores(t *testing.T) {
	t.Parallel()
	for _, srv := range servers(t) {
		t.Run(srv.name, func(t *testing.T) {
			conf, ok := srv.config(t, storeConfig{version: "v2", prefix: true})
			if !ok {
				t.Skip("no K/V v2")
			}
			if srv.fake == nil {
				t.Cleanup(func() { cleanup(t, conf) })
			}
			const n = 6
			stores := make([]*Store, n)
			for i := range stores {
				stores[i] = open(t, conf, nil)
			}
			for round := range 5 {
				name := "race-" + string(rune('a'+round))
				winner := keystoretest.RaceCreate(t, fmt.Sprintf("round %d: Create(%q)", round, name), n, func(i int) error {
					return stores[i].Create(t.Context(), name, []byte("value-"+string(rune('0'+i))))
				})
				if winner < 0 {
					t.Errorf("round %d: no Create of %q succeeded, want exactly 1", round, name)
				}
			}
		})
	}
}

// TestLayout checks the entries a store writes, field by field, against
// the layout of the original server.
func TestLayout(t *testing.T) {
	t.Parallel()
	eachKV(t, func(t *testing.T, srv *server, version string, conf *Config, r *raw) {
		s := open(t, conf, nil)
		const name, value = "my-key", `{"bytes":"AAEC","algorithm":"AES256-GCM_SHA256"}`
		if err := s.Create(t.Context(), name, []byte(value)); err != nil {
			t.Fatalf("Create() = %v", err)
		}
		body := r.must(http.MethodGet, entryPath(conf, "data", name), nil, http.StatusOK)
		var got struct {
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		data := got.Data
		if version == "v2" {
			md, _ := data["metadata"].(map[string]any)
			if v, _ := md["version"].(float64); v != 1 {
				t.Errorf("K/V v2 entry version = %v, want 1", md["version"])
			}
			data, _ = data["data"].(map[string]any)
		}
		if diff := cmp.Diff(map[string]any{name: value}, data); diff != "" {
			t.Errorf("entry data mismatch (-want +got):\n%s", diff)
		}

		// Delete removes the entry (on v2 with its metadata).
		if err := s.Delete(t.Context(), name); err != nil {
			t.Fatalf("Delete() = %v", err)
		}
		r.must(http.MethodGet, entryPath(conf, "data", name), nil, http.StatusNotFound)
		if version == "v2" {
			r.must(http.MethodGet, entryPath(conf, "metadata", name), nil, http.StatusNotFound)
		}
	})
}

// TestForeignEntries checks entries written by others: in the original's
// layout (read unchanged), without the key's field, with a field that is
// not a string, and K/V v2 versions deleted, destroyed or added by
// someone else.
func TestForeignEntries(t *testing.T) {
	t.Parallel()
	eachKV(t, func(t *testing.T, srv *server, version string, conf *Config, r *raw) {
		put := func(name string, data map[string]any) {
			t.Helper()
			var body any = data
			if version == "v2" {
				body = map[string]any{"data": data}
			}
			r.must(http.MethodPut, entryPath(conf, "data", name), body, http.StatusOK, http.StatusNoContent)
		}
		s := open(t, conf, nil)
		ctx := t.Context()

		put("upstream", map[string]any{"upstream": "CiQKIAABAgMEBQYH"})
		if got, err := s.Get(ctx, "upstream"); err != nil || string(got) != "CiQKIAABAgMEBQYH" {
			t.Errorf("Get(upstream) = %q, %v; want the stored value", got, err)
		}
		if err := s.Create(ctx, "upstream", []byte("x")); !errors.Is(err, keystore.ErrExists) {
			t.Errorf("Create(upstream) = %v, want ErrExists", err)
		}

		put("no-field", map[string]any{"other": "value"})
		var nf *NoFieldError
		if _, err := s.Get(ctx, "no-field"); !errors.As(err, &nf) {
			t.Errorf("Get(no-field) = %v, want *NoFieldError", err)
		}
		if err := s.Create(ctx, "no-field", []byte("x")); !errors.As(err, &nf) {
			t.Errorf("Create(no-field) = %v, want *NoFieldError", err)
		}
		if err := s.Delete(ctx, "no-field"); !errors.As(err, &nf) {
			t.Errorf("Delete(no-field) = %v, want *NoFieldError", err)
		}

		put("number", map[string]any{"number": 42})
		if _, err := s.Get(ctx, "number"); err == nil || !strings.Contains(err.Error(), "not a string") {
			t.Errorf("Get(number) = %v, want an error about the field type", err)
		}

		put("transit-value", map[string]any{"transit-value": "vault:v1:AAAA"})
		if _, err := s.Get(ctx, "transit-value"); err == nil || !strings.Contains(err.Error(), "no transit key is configured") {
			t.Errorf("Get(transit-value) = %v, want an error about transit", err)
		}

		names, _, err := s.List(ctx, "", 0)
		if err != nil {
			t.Fatalf("List() = %v", err)
		}
		if want := []string{"no-field", "number", "transit-value", "upstream"}; !slices.Equal(names, want) {
			t.Errorf("List() = %q, want %q", names, want)
		}

		if version != "v2" {
			return
		}
		// A second version by someone else: version 1 is the key.
		put("upstream", map[string]any{"upstream": "changed"})
		if got, err := s.Get(ctx, "upstream"); err != nil || string(got) != "CiQKIAABAgMEBQYH" {
			t.Errorf("Get(upstream) after a second version = %q, %v; want version 1", got, err)
		}
		for _, op := range []string{"delete", "destroy"} {
			name := op + "d"
			if err := s.Create(ctx, name, []byte("v")); err != nil {
				t.Fatal(err)
			}
			r.must(http.MethodPost, join(conf.Engine, op, strings.Trim(conf.Prefix, "/"), name), map[string]any{"versions": []int{1}}, http.StatusNoContent)
			if _, err := s.Get(ctx, name); !errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("Get(%s) of a %sd version = %v, want ErrNotFound", name, op, err)
			}
			if err := s.Create(ctx, name, []byte("v")); err == nil || !strings.Contains(err.Error(), "deleted outside of KES") {
				t.Errorf("Create(%s) over a %sd version = %v, want an error", name, op, err)
			}
			if err := s.Delete(ctx, name); !errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("Delete(%s) of a %sd version = %v, want ErrNotFound", name, op, err)
			}
			if err := s.Create(ctx, name, []byte("again")); err != nil {
				t.Errorf("Create(%s) after Delete = %v", name, err)
			}
		}
	})
}

// TestTransit checks that values are stored as transit ciphertexts,
// that old ciphertexts decrypt after a key rotation, and that values
// written before transit was turned on are still read.
func TestTransit(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	plain, _ := srv.config(t, storeConfig{version: "v2", prefix: true})
	conf := *plain
	conf.Transit = TransitConfig{Key: "kes-key"} // default engine "transit"
	ctx := t.Context()

	s0 := open(t, plain, nil)
	if err := s0.Create(ctx, "plain", []byte("plain-value")); err != nil {
		t.Fatal(err)
	}
	s := open(t, &conf, nil)
	if err := s.Create(ctx, "k1", []byte("value-1")); err != nil {
		t.Fatal(err)
	}
	srv.fake.RotateTransitKey("", "transit", "kes-key")
	if err := s.Create(ctx, "k2", []byte("value-2")); err != nil {
		t.Fatal(err)
	}
	for name, wantPrefix := range map[string]string{"k1": "vault:v1:", "k2": "vault:v2:"} {
		data, ok := srv.fake.ReadKV("", conf.Engine, strings.Trim(conf.Prefix, "/")+"/"+name)
		if v, _ := data[name].(string); !ok || !strings.HasPrefix(v, wantPrefix) || strings.Contains(v, "value") {
			t.Errorf("stored %s = %q, want a %s... ciphertext", name, v, wantPrefix)
		}
	}
	for name, want := range map[string]string{"k1": "value-1", "k2": "value-2", "plain": "plain-value"} {
		if got, err := s.Get(ctx, name); err != nil || string(got) != want {
			t.Errorf("Get(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	// The store without transit cannot read the ciphertexts.
	if _, err := s0.Get(ctx, "k1"); err == nil {
		t.Error("Get(k1) without transit succeeded, want an error")
	}

	// The Transit API on its own.
	tr := s.Client().Transit("", "other-key")
	ct, err := tr.Encrypt(ctx, []byte{0, 1, 2, 0xff})
	if err != nil || !isTransitCiphertext(ct) {
		t.Fatalf("Encrypt() = %q, %v", ct, err)
	}
	if pt, err := tr.Decrypt(ctx, ct); err != nil || string(pt) != "\x00\x01\x02\xff" {
		t.Errorf("Decrypt() = %x, %v", pt, err)
	}
	var re *ResponseError
	if _, err := tr.Decrypt(ctx, "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="); !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Errorf("Decrypt(tampered) = %v, want a 400 ResponseError", err)
	}
	if _, err := s.Client().Transit("transit", "missing-key").Decrypt(ctx, ct); !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Errorf("Decrypt(with another key) = %v, want a 400 ResponseError", err)
	}
}

// TestRequests checks what the store sends: the namespace of data
// requests and logins (approle.namespace: empty is the store's, "/" the
// root), no namespace and no token on sys/health, LIST as GET
// ?list=true, K/V v2 reads of version 1.
func TestRequests(t *testing.T) {
	t.Parallel()
	const storeNS = testNS + "/team"
	tests := []struct {
		name      string
		authNS    string // approle.namespace
		wantLogin string // X-Vault-Namespace of the login
	}{
		{name: "store-namespace", authNS: "", wantLogin: storeNS},
		{name: "root", authNS: "/", wantLogin: ""},
		{name: "parent", authNS: testNS, wantLogin: testNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
			srv.fake.MountKV(storeNS, "kv2", 2)
			srv.fake.AddAppRole(storeNS, "approle", vaulttest.AppRole{RoleID: testRoleID, SecretID: testSecretID, Token: vaulttest.TokenOptions{TTL: time.Hour}})
			conf, _ := srv.config(t, storeConfig{version: "v2", prefix: true})
			conf.Namespace = storeNS + "/"
			conf.AppRole.Namespace = tt.authNS
			s := open(t, conf, nil)
			ctx := t.Context()
			if err := s.Create(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.List(ctx, "", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Status(ctx); err != nil {
				t.Fatal(err)
			}
			if paths := srv.fake.KVPaths(storeNS, "kv2"); len(paths) != 1 {
				t.Errorf("entries in namespace %s = %q, want the one key", storeNS, paths)
			}
			var sawHealth, sawList, sawRead bool
			for _, r := range srv.fake.Requests() {
				switch {
				case r.Path == "/v1/sys/health":
					sawHealth = true
					if r.Namespace != "" || r.HasToken {
						t.Errorf("sys/health sent with namespace %q, token %v; want neither", r.Namespace, r.HasToken)
					}
				case strings.HasSuffix(r.Path, "/login"):
					if r.Namespace != tt.wantLogin || r.HasToken {
						t.Errorf("login sent with namespace %q, token %v; want %q and no token", r.Namespace, r.HasToken, tt.wantLogin)
					}
				default:
					if r.Namespace != storeNS || !r.HasToken {
						t.Errorf("%s %s sent with namespace %q, token %v; want %q and a token", r.Method, r.Path, r.Namespace, r.HasToken, storeNS)
					}
					if r.Query == "list=true" {
						sawList = r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/")
					}
					if r.Method == http.MethodGet && strings.Contains(r.Path, "/data/") {
						sawRead = true
						if r.Query != "version=1" {
							t.Errorf("K/V v2 read with query %q, want version=1", r.Query)
						}
					}
				}
			}
			if !sawHealth || !sawList || !sawRead {
				t.Errorf("requests: health %v, list (GET ?list=true with trailing slash) %v, read %v; want all", sawHealth, sawList, sawRead)
			}
		})
	}
}

// TestListEmptyEngine checks that a folder that does not exist (and an
// engine without any entry) lists as no keys.
func TestListEmptyEngine(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	for _, version := range []string{"v1", "v2"} {
		conf, _ := srv.config(t, storeConfig{version: version, nested: true})
		conf.Prefix += "/missing/folder"
		s := open(t, conf, nil)
		names, next, err := s.List(t.Context(), "", 10)
		if err != nil || len(names) != 0 || next != "" {
			t.Errorf("%s: List() of a missing folder = %q, %q, %v; want no names", version, names, next, err)
		}
	}
}

// TestPermissionDenied checks that a path the token's policy denies
// gives Vault's 403 error without a storm of logins: the token is
// checked once per denied request (lookup-self) and kept.
func TestPermissionDenied(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	srv.fake.AddAppRole("", "approle", vaulttest.AppRole{RoleID: testRoleID, SecretID: testSecretID,
		Token: vaulttest.TokenOptions{TTL: time.Hour, Paths: []string{"kv2/data/allowed/*", "kv2/metadata/allowed/*"}}})
	conf, _ := srv.config(t, storeConfig{version: "v2", prefix: true})
	s := open(t, conf, nil)
	ctx := t.Context()
	for range 3 {
		_, err := s.Get(ctx, "k")
		var re *ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("Get() of a denied path = %v, want a 403 ResponseError", err)
		}
		if keystore.IsUnreachable(err) {
			t.Errorf("Get() of a denied path = %v, want no UnreachableError", err)
		}
	}
	if n := srv.fake.Count(vaulttest.CountLogin); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
	if n := srv.fake.Count(vaulttest.CountLookupSelf); n != 3 {
		t.Errorf("%d lookup-self requests, want 3 (one per denied request)", n)
	}
	conf.Prefix = "allowed"
	s = open(t, conf, nil)
	if err := s.Create(ctx, "k", []byte("v")); err != nil {
		t.Errorf("Create() of an allowed path = %v", err)
	}
}

// TestNames checks that names the store cannot hold are refused without
// asking Vault.
func TestNames(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
	s := open(t, conf, nil)
	ctx := t.Context()
	for _, name := range []string{"", ".", "..", "a/b", "/a", "\xff"} {
		if err := s.Create(ctx, name, []byte("v")); err == nil || !strings.Contains(err.Error(), "invalid key name") {
			t.Errorf("Create(%q) = %v, want invalid key name", name, err)
		}
		if _, err := s.Get(ctx, name); err == nil || !strings.Contains(err.Error(), "invalid key name") {
			t.Errorf("Get(%q) = %v, want invalid key name", name, err)
		}
		if err := s.Delete(ctx, name); err == nil || !strings.Contains(err.Error(), "invalid key name") {
			t.Errorf("Delete(%q) = %v, want invalid key name", name, err)
		}
	}
	if err := s.Create(ctx, "binary", []byte{0xff, 0xfe}); err == nil {
		t.Error("Create() of a non-UTF-8 value succeeded, want an error")
	}
	if n := srv.fake.Count(vaulttest.CountWrite); n != 0 {
		t.Errorf("%d writes reached Vault, want 0", n)
	}
}

// TestString checks the banner name.
func TestString(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
	conf.Endpoint += "/"
	s := open(t, conf, nil)
	if got, want := s.String(), "Hashicorp Vault: "+srv.addr; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestClose checks that Close stops all background work: no request
// reaches Vault after it, and operations fail.
func TestClose(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: 2 * time.Second})
	conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
	conf.Status.Ping = 10 * time.Millisecond
	s := connectStore(t, conf, nil)
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	// A request sent just before Close may still reach the server.
	time.Sleep(100 * time.Millisecond)
	n := len(srv.fake.Requests())
	time.Sleep(300 * time.Millisecond)
	if got := len(srv.fake.Requests()); got != n {
		t.Errorf("%d requests after Close, want none", got-n)
	}
	if _, err := s.Get(t.Context(), "k"); !errors.Is(err, errClosed) {
		t.Errorf("Get() after Close = %v, want %v", err, errClosed)
	}
	if _, err := s.Status(t.Context()); !errors.Is(err, errClosed) {
		t.Errorf("Status() after Close = %v, want %v", err, errClosed)
	}
}

// TestConnectErrors checks the configuration problems Connect reports.
func TestConnectErrors(t *testing.T) {
	t.Parallel()
	base := func() *Config {
		return &Config{ClientConfig: ClientConfig{
			Endpoint: "https://127.0.0.1:1",
			AppRole:  AppRoleConfig{ID: "id", Secret: keystore.NewSecret("secret")},
		}}
	}
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string
	}{
		{name: "invalid", change: func(c *Config) { c.Endpoint = "" }, wantErr: "vault: endpoint: required"},
		{name: "not a URL", change: func(c *Config) { c.Endpoint = "vault:8200" }, wantErr: "is not an http or https URL"},
		{name: "ftp", change: func(c *Config) { c.Endpoint = "ftp://vault" }, wantErr: "is not an http or https URL"},
		{name: "prefix", change: func(c *Config) { c.Prefix = "a/../b" }, wantErr: "vault: prefix: invalid path segment '..'"},
		{name: "engine", change: func(c *Config) { c.Engine = "/./" }, wantErr: "vault: engine: invalid mount path"},
		{name: "auth engine", change: func(c *Config) { c.AppRole.Engine = ".." }, wantErr: "vault: invalid auth engine"},
		{name: "transit engine", change: func(c *Config) { c.Transit = TransitConfig{Engine: "..", Key: "k"} }, wantErr: "vault: transit.engine: invalid mount path"},
		{name: "ca", change: func(c *Config) { c.TLS.CA = "/does/not/exist" }, wantErr: "vault: tls.ca:"},
		{name: "cert", change: func(c *Config) { c.TLS.Cert, c.TLS.Key = "/does/not/exist", "/nor/this" }, wantErr: "vault: tls:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tt.change(c)
			s, err := c.Connect(t.Context(), nil)
			if err == nil {
				s.Close()
				t.Fatalf("Connect() = nil, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Connect() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := base().Connect(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect(canceled) = %v, want context.Canceled", err)
	}
}

// eachKV runs f as a parallel subtest for every server and K/V version,
// with the config of a store below a prefix and a raw client in its
// namespace. Entries a test writes to a real Vault are removed
// afterwards; a server that is not available is skipped.
func eachKV(t *testing.T, f func(t *testing.T, srv *server, version string, conf *Config, r *raw)) {
	t.Helper()
	for _, srv := range servers(t) {
		for _, version := range []string{"v1", "v2"} {
			t.Run(srv.name+"/"+version, func(t *testing.T) {
				t.Parallel()
				conf, ok := srv.config(t, storeConfig{version: version, prefix: true})
				if !ok {
					t.Skip("not available")
				}
				r := srv.raw(t, conf.Namespace)
				if srv.fake == nil {
					t.Cleanup(func() { cleanup(t, conf) })
				}
				f(t, srv, version, conf, r)
			})
		}
	}
}
