package vault

// The tests run against an in-process fake of Vault's HTTP API
// (keystore/vault/vaulttest) and, in addition, against a real Vault or OpenBao
// server when these environment variables are set:
//
//	KES_TEST_VAULT_ADDR             the server's base URL (required), e.g. https://127.0.0.1:8200
//	KES_TEST_VAULT_ROLE_ID          AppRole role ID    } the credentials of the store
//	KES_TEST_VAULT_SECRET_ID        AppRole secret ID  } (required for the store tests)
//	KES_TEST_VAULT_APPROLE_ENGINE   AppRole mount below auth/ (default approle)
//	KES_TEST_VAULT_TOKEN            a token for direct API access (optional): enables
//	                                the layout tests, which read and write entries
//	                                themselves, against the real server
//	KES_TEST_VAULT_KV_V1_ENGINE     a K/V version 1 mount (tests of v1 run if set)
//	KES_TEST_VAULT_KV_V2_ENGINE     a K/V version 2 mount (tests of v2 run if set)
//	KES_TEST_VAULT_TRANSIT_ENGINE   a transit mount (default transit)
//	KES_TEST_VAULT_TRANSIT_KEY      a transit key (transit tests run if set)
//	KES_TEST_VAULT_NAMESPACE        the namespace of all of the above (optional)
//	KES_TEST_VAULT_CACERT           a CA file for the server's certificate (optional)
//
// The role's policy must allow create, read, update, delete and list on
// the K/V mounts and update on the transit key's encrypt and decrypt
// paths. Every store uses a fresh random prefix and deletes its keys when
// its test ends. Tests that inject faults (expired tokens, sealing,
// failed renewals) run only against the fake.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// Credentials of the fake's roles.
const (
	testRoleID   = "kes-role-id-0123"
	testSecretID = "kes-secret-id-4567-never-logged"
	testJWT      = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a2VzIn0.c2lnbmF0dXJl"
	testNS       = "ns1"
)

// testTiming makes waits short so that the token tests run in seconds.
var testTiming = timing{
	requestTimeout: 5 * time.Second,
	activation:     50 * time.Millisecond,
	backoffMin:     20 * time.Millisecond,
	backoffMax:     200 * time.Millisecond,
	unhealthyPing:  50 * time.Millisecond,
}

// server is a Vault to test against: the fake or a real one.
type server struct {
	name      string
	addr      string
	caFile    string
	namespace string // of every mount and the AppRole
	roleID    string
	secretID  string
	approle   string // AppRole mount
	kv1, kv2  string // K/V mounts; "" if not available
	transit   string // transit mount
	key       string // transit key; "" if not available
	token     string // for direct API access; "" if not available
	fake      *vaulttest.Server

	mounts atomic.Int64 // counts fresh mounts of the fake
}

// uniqueID returns a random name part.
func uniqueID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeCA writes the fake's certificate to a file.
func writeCA(t testing.TB, f *vaulttest.Server) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(name, f.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// newFake starts a fake with K/V v1 and v2 mounts ("kv1", "kv2"), a
// transit mount and an AppRole, in the root namespace and, with the same
// names, in namespace ns1. tok configures the AppRole's tokens.
func newFake(t testing.TB, tok vaulttest.TokenOptions) *server {
	t.Helper()
	f := vaulttest.New(t, vaulttest.Options{})
	for _, ns := range []string{"", testNS} {
		f.MountKV(ns, "kv1", 1)
		f.MountKV(ns, "kv2", 2)
		f.MountTransit(ns, "transit")
		f.AddAppRole(ns, "approle", vaulttest.AppRole{Name: "kes", RoleID: testRoleID, SecretID: testSecretID, Token: tok})
	}
	return &server{
		name:     "fake",
		addr:     f.URL,
		caFile:   writeCA(t, f),
		roleID:   testRoleID,
		secretID: testSecretID,
		approle:  "approle",
		kv1:      "kv1",
		kv2:      "kv2",
		transit:  "transit",
		key:      "kes-transit",
		token:    f.NewToken("", vaulttest.TokenOptions{}),
		fake:     f,
	}
}

// realServer returns the server of the KES_TEST_VAULT_* variables, or
// nil if KES_TEST_VAULT_ADDR is not set.
func realServer(t testing.TB) *server {
	addr := os.Getenv("KES_TEST_VAULT_ADDR")
	if addr == "" {
		return nil
	}
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	s := &server{
		name:      "real",
		addr:      addr,
		caFile:    os.Getenv("KES_TEST_VAULT_CACERT"),
		namespace: os.Getenv("KES_TEST_VAULT_NAMESPACE"),
		roleID:    os.Getenv("KES_TEST_VAULT_ROLE_ID"),
		secretID:  os.Getenv("KES_TEST_VAULT_SECRET_ID"),
		approle:   env("KES_TEST_VAULT_APPROLE_ENGINE", "approle"),
		kv1:       os.Getenv("KES_TEST_VAULT_KV_V1_ENGINE"),
		kv2:       os.Getenv("KES_TEST_VAULT_KV_V2_ENGINE"),
		transit:   env("KES_TEST_VAULT_TRANSIT_ENGINE", "transit"),
		key:       os.Getenv("KES_TEST_VAULT_TRANSIT_KEY"),
		token:     os.Getenv("KES_TEST_VAULT_TOKEN"),
	}
	if s.roleID == "" || s.secretID == "" {
		t.Logf("KES_TEST_VAULT_ADDR is set, but KES_TEST_VAULT_ROLE_ID or KES_TEST_VAULT_SECRET_ID is not: store tests against %s are skipped", addr)
		s.roleID = ""
	}
	return s
}

// servers returns the fake and, if configured, the real server.
func servers(t *testing.T) []*server {
	t.Helper()
	out := []*server{newFake(t, vaulttest.TokenOptions{TTL: time.Hour})}
	if s := realServer(t); s != nil {
		out = append(out, s)
	}
	return out
}

// storeConfig describes a store on a server.
type storeConfig struct {
	version   string // "v1" or "v2"
	prefix    bool   // use a fresh prefix (a fresh mount on the fake otherwise)
	nested    bool   // a nested prefix with a foreign sub-folder in it
	namespace bool   // use the fake's namespace ns1
	transit   bool
}

// config returns the Config of a fresh, empty store. ok is false if the
// server cannot provide it.
func (s *server) config(t testing.TB, sc storeConfig) (conf *Config, ok bool) {
	t.Helper()
	engine := s.kv1
	if sc.version == "v2" {
		engine = s.kv2
	}
	if engine == "" || s.roleID == "" || (sc.transit && s.key == "") {
		return nil, false
	}
	ns := s.namespace
	if sc.namespace {
		if s.fake == nil {
			return nil, false
		}
		ns = testNS
	}
	var prefix string
	switch {
	case sc.nested:
		prefix = "/tenants/t-" + uniqueID() + "/"
	case sc.prefix || s.fake == nil:
		prefix = "kes-test-" + uniqueID()
	default:
		engine = fmt.Sprintf("%s-%d", engine, s.mounts.Add(1))
		s.fake.MountKV(ns, engine, map[string]int{"v1": 1, "v2": 2}[sc.version])
	}
	conf = &Config{
		ClientConfig: ClientConfig{
			Endpoint:  s.addr,
			Namespace: ns,
			AppRole:   AppRoleConfig{Engine: s.approle, ID: s.roleID, Secret: keystore.NewSecret(s.secretID)},
			TLS:       TLSConfig{CA: s.caFile},
			Status:    StatusConfig{Ping: 100 * time.Millisecond},
			timing:    testTiming,
		},
		Engine:  engine,
		Version: sc.version,
		Prefix:  prefix,
	}
	if sc.transit {
		conf.Transit = TransitConfig{Engine: s.transit, Key: s.key}
	}
	if sc.nested && s.fake != nil {
		// A sub-folder the store must skip.
		s.fake.WriteKV(ns, engine, strings.Trim(prefix, "/")+"/sub-folder/inner", map[string]any{"inner": "x"})
	}
	return conf, true
}

// open connects a store and closes it when the test ends. On a real
// server it also deletes the store's keys then.
func open(t testing.TB, conf *Config, log *slog.Logger) *Store {
	t.Helper()
	s := connectStore(t, conf, log)
	t.Cleanup(func() { s.Close() })
	return s
}

func connectStore(t testing.TB, conf *Config, log *slog.Logger) *Store {
	t.Helper()
	st, err := conf.Connect(context.Background(), log)
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	return st.(*Store)
}

// cleanup deletes every key of a store's folder through a new store.
func cleanup(t testing.TB, conf *Config) {
	s := connectStore(t, conf, nil)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names, _, err := s.List(ctx, "", 0)
	if err != nil {
		t.Errorf("cleanup: List() = %v", err)
		return
	}
	for _, name := range names {
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("cleanup: Delete(%q) = %v", name, err)
		}
	}
}

// captureHandler is a slog handler that keeps every record as text.
type captureHandler struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
	h   slog.Handler
}

func newCapture() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := &captureHandler{mu: &mu, buf: &buf, h: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})}
	return slog.New(h), func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

func (c *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h.Handle(ctx, r)
}
func (c *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &captureHandler{mu: c.mu, buf: c.buf, h: c.h.WithAttrs(attrs)}
}
func (c *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{mu: c.mu, buf: c.buf, h: c.h.WithGroup(name)}
}

// raw is direct access to a server's API with a token, for tests that
// read and write entries in the layout themselves.
type raw struct {
	t         testing.TB
	addr      string
	token     string
	namespace string
	client    *http.Client
}

func (s *server) raw(t testing.TB, namespace string) *raw {
	t.Helper()
	if s.token == "" {
		t.Skipf("%s: no token for direct API access (KES_TEST_VAULT_TOKEN)", s.name)
	}
	r := &raw{t: t, addr: s.addr, token: s.token, namespace: namespace, client: http.DefaultClient}
	if s.fake != nil {
		r.client = s.fake.Client()
	} else if s.caFile != "" {
		pool, err := https.LoadCertPool(s.caFile)
		if err != nil {
			t.Fatal(err)
		}
		r.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	return r
}

// do sends a request and returns status and body.
func (r *raw) do(method, path string, body any) (int, []byte) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.addr+"/v1/"+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", r.token)
	if r.namespace != "" {
		req.Header.Set("X-Vault-Namespace", r.namespace)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// must sends a request and fails the test unless the status is one of
// want.
func (r *raw) must(method, path string, body any, want ...int) []byte {
	r.t.Helper()
	status, data := r.do(method, path, body)
	for _, w := range want {
		if status == w {
			return data
		}
	}
	r.t.Fatalf("%s %s = %d %s, want %v", method, path, status, data, want)
	return nil
}

// entryPath returns the API path of a key in the layout of the original.
func entryPath(conf *Config, sub, name string) string {
	prefix := strings.Trim(conf.Prefix, "/")
	if conf.Version != "v2" {
		sub = ""
	}
	return join(conf.Engine, sub, prefix, url.PathEscape(name))
}
