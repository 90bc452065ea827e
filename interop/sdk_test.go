package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
	"github.com/openkes/openkes/internal/testpki"
)

// routes are the 22 routes of the KES v1 API and the 3 key lifecycle
// routes of OpenKES with their methods.
var routes = map[string]string{
	"/version": "GET", "/v1/status": "GET", "/v1/ready": "GET", "/v1/metrics": "GET", "/v1/api": "GET",
	"/v1/key/create/": "PUT", "/v1/key/import/": "PUT", "/v1/key/describe/": "GET",
	"/v1/key/list/": "GET", "/v1/key/delete/": "DELETE", "/v1/key/generate/": "PUT",
	"/v1/key/encrypt/": "PUT", "/v1/key/decrypt/": "PUT", "/v1/key/hmac/": "PUT",
	"/v1/policy/describe/": "GET", "/v1/policy/read/": "GET", "/v1/policy/list/": "GET",
	"/v1/identity/describe/": "GET", "/v1/identity/list/": "GET", "/v1/identity/self/describe": "GET",
	"/v1/log/error": "GET", "/v1/log/audit": "GET",
	"/v1/key/rotate/": "PUT", "/v1/key/rewrap/": "PUT", "/v1/key/restore/": "PUT",
}

// appPolicy grants everything an application needs on keys that start
// with prefix, and read access to the rest of the API, except keys that
// start with prefix+"internal".
func appPolicy(name, prefix, identity string) string {
	return fmt.Sprintf(`  %s:
    allow:
    - /v1/key/*/%s*
    - /v1/key/list/*
    - /v1/policy/*
    - /v1/identity/*
    - /v1/status
    - /v1/ready
    - /v1/api
    - /v1/metrics
    - /v1/log/*
    deny:
    - /v1/key/*/%sinternal*
    identities:
    - %s
`, name, prefix, prefix, identity)
}

// principal is a client and what the server should say about it.
type principal struct {
	client   *kes.Client
	identity kes.Identity
	policy   string // "" for the admin
	prefix   string // key names this principal may use
}

// TestSDK drives every method of the upstream SDK against one server with
// three kinds of principals: the admin (API key), an application bound to
// a policy (API key) and an application bound to a policy that holds a
// certificate issued by a CA.
func TestSDK(t *testing.T) {
	ca := testpki.NewCA(t)
	adminKey, appKey := newAPIKey(t), newAPIKey(t)
	caCert := ca.Issue(t, testpki.Options{CommonName: "app-with-cert"})
	caIdentity := kes.Identity(caCert.Identity())

	config := fmt.Sprintf("admin:\n  identity: %s\npolicy:\n%s%s", adminKey.Identity(),
		appPolicy("app", "app", appKey.Identity().String()),
		appPolicy("certapp", "cert", caIdentity.String()))
	srv := startServer(t, serverOptions{Config: config})

	principals := map[string]principal{
		"admin":   {client: srv.apiKeyClient(t, adminKey), identity: adminKey.Identity(), prefix: "admin"},
		"apikey":  {client: srv.apiKeyClient(t, appKey), identity: appKey.Identity(), policy: "app", prefix: "app"},
		"ca-cert": {client: srv.certClient(caCert.TLS), identity: caIdentity, policy: "certapp", prefix: "cert"},
	}
	for name, p := range principals {
		t.Run(name, func(t *testing.T) { exerciseSDK(t, p, adminKey.Identity()) })
	}

	t.Run("denied", func(t *testing.T) {
		app := principals["apikey"].client
		ctx := t.Context()
		for _, call := range []struct {
			name string
			err  error
		}{
			{"create other prefix", app.CreateKey(ctx, "adminkey")},
			{"create internal", app.CreateKey(ctx, "appinternal-key")},
			{"delete other", app.DeleteKey(ctx, "certkey")},
			{"decrypt internal", func() error { _, err := app.Decrypt(ctx, "appinternal", []byte("x"), nil); return err }()},
		} {
			if !errors.Is(call.err, kes.ErrNotAllowed) {
				t.Errorf("%s: err = %v, want %v", call.name, call.err, kes.ErrNotAllowed)
			}
		}
		unknown := srv.apiKeyClient(t, newAPIKey(t))
		if _, err := unknown.DescribeKey(ctx, "appkey"); !errors.Is(err, kes.ErrNotAllowed) {
			t.Errorf("unknown identity: DescribeKey err = %v, want %v", err, kes.ErrNotAllowed)
		}
		if _, _, err := unknown.DescribeSelf(ctx); !errors.Is(err, kes.ErrIdentityNotFound) {
			t.Errorf("unknown identity: DescribeSelf err = %v, want %v", err, kes.ErrIdentityNotFound)
		}
		if v, err := unknown.Version(ctx); err != nil || v == "" {
			t.Errorf("unknown identity: Version() = %q, %v, want a version", v, err)
		}
	})
}

// exerciseSDK calls every SDK method as p.
func exerciseSDK(t *testing.T, p principal, admin kes.Identity) {
	ctx := t.Context()
	c := p.client
	name := p.prefix + "key"

	if v, err := c.Version(ctx); err != nil || v == "" {
		t.Fatalf("Version() = %q, %v", v, err)
	}
	if ok, err := c.IsReady(ctx); !ok || err != nil {
		t.Errorf("IsReady() = %v, %v, want true, nil", ok, err)
	}
	state, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status(): %v", err)
	}
	if state.OS == "" || state.Arch == "" || state.CPUs == 0 || state.HeapAlloc == 0 || state.StackAlloc == 0 {
		t.Errorf("Status() = %+v, want OS, Arch, CPUs, heap and stack", state)
	}
	apis, err := c.APIs(ctx)
	if err != nil {
		t.Fatalf("APIs(): %v", err)
	}
	got := map[string]string{}
	for _, api := range apis {
		got[api.Path] = api.Method
		wantBody := int64(0)
		if strings.Contains("/v1/key/import/ /v1/key/generate/ /v1/key/encrypt/ /v1/key/decrypt/ /v1/key/hmac/ /v1/key/rewrap/", api.Path) {
			wantBody = 1_000_000
		}
		if api.MaxBody != wantBody {
			t.Errorf("APIs(): %s max body = %d, want %d", api.Path, api.MaxBody, wantBody)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(routes) {
		t.Errorf("APIs() = %v, want %v", got, routes)
	}

	// Keys.
	if err := c.CreateKey(ctx, name); err != nil {
		t.Fatalf("CreateKey(%q): %v", name, err)
	}
	if err := c.CreateKey(ctx, name); !errors.Is(err, kes.ErrKeyExists) {
		t.Errorf("CreateKey(%q) again: err = %v, want %v", name, err, kes.ErrKeyExists)
	}
	info, err := c.DescribeKey(ctx, name)
	if err != nil {
		t.Fatalf("DescribeKey(%q): %v", name, err)
	}
	if info.Name != name || info.CreatedBy != p.identity || time.Since(info.CreatedAt) > time.Minute {
		t.Errorf("DescribeKey(%q) = %+v, want name, creator %s and a recent time", name, info, p.identity)
	}
	for _, alg := range []kes.KeyAlgorithm{kes.AES256, kes.ChaCha20} {
		imported := fmt.Sprintf("%simported-%d", p.prefix, alg)
		if err := c.ImportKey(ctx, imported, &kes.ImportKeyRequest{Key: make([]byte, 32), Cipher: alg}); err != nil {
			t.Fatalf("ImportKey(%q, %v): %v", imported, alg, err)
		}
		info, err := c.DescribeKey(ctx, imported)
		if err != nil || info.Algorithm != alg {
			t.Errorf("DescribeKey(%q) = %+v, %v, want algorithm %v", imported, info, err, alg)
		}
	}
	err = c.ImportKey(ctx, p.prefix+"short", &kes.ImportKeyRequest{Key: make([]byte, 16), Cipher: kes.AES256})
	if want := kes.NewError(406, "invalid key size for 'AES256'"); !errors.Is(err, want) {
		t.Errorf("ImportKey(16 bytes): err = %v, want %v", err, want)
	}

	assoc := bytes.Repeat([]byte("c"), 80)
	dek, err := c.GenerateKey(ctx, name, assoc)
	if err != nil {
		t.Fatalf("GenerateKey(%q): %v", name, err)
	}
	if len(dek.Plaintext) != 32 || len(dek.Ciphertext) != 76 {
		t.Errorf("GenerateKey: plaintext %d bytes, ciphertext %d bytes, want 32 and 76", len(dek.Plaintext), len(dek.Ciphertext))
	}
	pt, err := c.Decrypt(ctx, name, dek.Ciphertext, assoc)
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Errorf("Decrypt(DEK) = %x, %v, want %x", pt, err, dek.Plaintext)
	}
	if _, err := c.Decrypt(ctx, name, dek.Ciphertext, []byte("other")); !errors.Is(err, kes.ErrDecrypt) {
		t.Errorf("Decrypt with wrong context: err = %v, want %v", err, kes.ErrDecrypt)
	}
	msg := bytes.Repeat([]byte("m"), 1000)
	ct, err := c.Encrypt(ctx, name, msg, assoc)
	if err != nil || len(ct) != len(msg)+44 {
		t.Fatalf("Encrypt() = %d bytes, %v, want %d bytes", len(ct), err, len(msg)+44)
	}
	if pt, err := c.Decrypt(ctx, name, ct, assoc); err != nil || !bytes.Equal(pt, msg) {
		t.Errorf("Decrypt(Encrypt(msg)) = %d bytes, %v, want msg", len(pt), err)
	}
	mac1, err1 := c.HMAC(ctx, name, []byte("hello"))
	mac2, err2 := c.HMAC(ctx, name, []byte("hello"))
	mac3, err3 := c.HMAC(ctx, name, []byte("world"))
	if err := errors.Join(err1, err2, err3); err != nil || len(mac1) != 32 || !bytes.Equal(mac1, mac2) || bytes.Equal(mac1, mac3) {
		t.Errorf("HMAC: %x %x %x, %v: want deterministic, 32 bytes, message-dependent", mac1, mac2, mac3, err)
	}

	wantKeys := []string{name, p.prefix + "imported-0", p.prefix + "imported-1"}
	slices.Sort(wantKeys)
	names, next, err := c.ListKeys(ctx, p.prefix, -1)
	if err != nil || next != "" || !slices.Equal(names, wantKeys) {
		t.Errorf("ListKeys(%q) = %v, %q, %v, want %v", p.prefix, names, next, err, wantKeys)
	}
	names, _, err = c.ListKeys(ctx, p.prefix+"*", -1)
	if err != nil || !slices.Equal(names, wantKeys) {
		t.Errorf("ListKeys(%q) = %v, %v, want %v", p.prefix+"*", names, err, wantKeys)
	}
	all, _, err := c.ListKeys(ctx, "", -1)
	if err != nil || !isSubset(wantKeys, all) {
		t.Errorf("ListKeys(\"\") = %v, %v, want a superset of %v", all, err, wantKeys)
	}
	iter := kes.ListIter[string]{NextFunc: c.ListKeys}
	var iterated []string
	for name, err := iter.SeekTo(ctx, p.prefix); err == nil; name, err = iter.Next(ctx) {
		iterated = append(iterated, name)
	}
	if !slices.Equal(iterated, wantKeys) {
		t.Errorf("ListIter from %q = %v, want %v", p.prefix, iterated, wantKeys)
	}

	missing := p.prefix + "missing"
	if _, err := c.DescribeKey(ctx, missing); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Errorf("DescribeKey(missing): err = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if _, err := c.GenerateKey(ctx, missing, nil); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Errorf("GenerateKey(missing): err = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if err := c.DeleteKey(ctx, name); err != nil {
		t.Fatalf("DeleteKey(%q): %v", name, err)
	}
	if _, err := c.DescribeKey(ctx, name); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Errorf("DescribeKey after delete: err = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if err := c.DeleteKey(ctx, name); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Errorf("DeleteKey again: err = %v, want %v", err, kes.ErrKeyNotFound)
	}

	// Policies and identities.
	policies, _, err := c.ListPolicies(ctx, "", -1)
	if err != nil || !slices.Equal(policies, []string{"app", "certapp"}) {
		t.Errorf("ListPolicies() = %v, %v, want [app certapp]", policies, err)
	}
	pinfo, err := c.DescribePolicy(ctx, "app")
	if err != nil || pinfo.Name != "app" || pinfo.CreatedBy != admin {
		t.Errorf("DescribePolicy(app) = %+v, %v", pinfo, err)
	}
	pol, err := c.GetPolicy(ctx, "app")
	if err != nil {
		t.Fatalf("GetPolicy(app): %v", err)
	}
	if _, ok := pol.Allow["/v1/key/*/app*"]; !ok || len(pol.Allow) != 9 || len(pol.Deny) != 1 {
		t.Errorf("GetPolicy(app) = %+v", pol)
	}
	if _, err := c.DescribePolicy(ctx, "nope"); !errors.Is(err, kes.ErrPolicyNotFound) {
		t.Errorf("DescribePolicy(nope): err = %v, want %v", err, kes.ErrPolicyNotFound)
	}
	ids, _, err := c.ListIdentities(ctx, "", -1)
	if err != nil || !slices.Contains(ids, admin) || !slices.Contains(ids, p.identity) || len(ids) != 3 {
		t.Errorf("ListIdentities() = %v, %v, want admin and the two applications", ids, err)
	}
	idInfo, err := c.DescribeIdentity(ctx, p.identity)
	if err != nil || idInfo.Policy != p.policy || idInfo.IsAdmin != (p.policy == "") {
		t.Errorf("DescribeIdentity(self) = %+v, %v, want policy %q", idInfo, err, p.policy)
	}
	self, selfPolicy, err := c.DescribeSelf(ctx)
	if err != nil {
		t.Fatalf("DescribeSelf(): %v", err)
	}
	if self.Identity != p.identity || self.IsAdmin != (p.policy == "") || self.Policy != p.policy {
		t.Errorf("DescribeSelf() = %+v, want identity %s, policy %q", self, p.identity, p.policy)
	}
	if p.policy != "" && (selfPolicy == nil || len(selfPolicy.Allow) != 9) {
		t.Errorf("DescribeSelf() policy = %+v, want the %s policy", selfPolicy, p.policy)
	}

	// Metrics and logs.
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics(): %v", err)
	}
	if m.RequestOK == 0 || m.RequestErr == 0 || m.CPUs == 0 || m.HeapAlloc == 0 || len(m.LatencyHistogram) != 10 {
		t.Errorf("Metrics() = %+v", m)
	}
	// Cancelling streamCtx ends the stream, so the reader returns before
	// the stream is closed (the SDK's streams are not safe for a Close
	// during Next).
	streamCtx, stopStream := context.WithCancel(ctx)
	audit, err := c.AuditLog(streamCtx)
	if err != nil {
		stopStream()
		t.Fatalf("AuditLog(): %v", err)
	}
	readerDone := make(chan struct{})
	defer func() {
		stopStream()
		<-readerDone
		audit.Close()
	}()
	errLog, err := c.ErrorLog(ctx)
	if err != nil {
		t.Fatalf("ErrorLog(): %v", err)
	}
	errLog.Close()
	path := "/v1/key/describe/" + p.prefix + "imported-0"
	if _, err := c.DescribeKey(ctx, p.prefix+"imported-0"); err != nil {
		t.Fatal(err)
	}
	found := make(chan kes.AuditEvent, 1)
	go func() {
		defer close(readerDone)
		for audit.Next() {
			if ev := audit.Event(); ev.APIPath == path {
				found <- ev
				return
			}
		}
	}()
	select {
	case ev := <-found:
		if ev.ClientIdentity != p.identity || ev.StatusCode != 200 {
			t.Errorf("audit event = %+v, want identity %s, status 200", ev, p.identity)
		}
	case <-time.After(time.Second):
		t.Errorf("no audit event for %s within one second", path)
	}
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}

// TestMinIOStartup replays what a MinIO server does with KES at start-up
// and for SSE-S3 (docs/production.md#11-minio), with a policy as MinIO deployments write it.
func TestMinIOStartup(t *testing.T) {
	adminKey, minioKey := newAPIKey(t), newAPIKey(t)
	config := fmt.Sprintf(`admin:
  identity: %s
policy:
  minio:
    allow:
    - /v1/key/create/*
    - /v1/key/generate/*
    - /v1/key/decrypt/*
    - /v1/key/encrypt/*
    - /v1/key/describe/*
    - /v1/key/list/*
    - /v1/key/hmac/*
    - /v1/status
    - /v1/api
    - /v1/metrics
    identities:
    - %s
`, adminKey.Identity(), minioKey.Identity())
	srv := startServer(t, serverOptions{Config: config})

	const defaultKey = "minio-default-key"
	ctx := t.Context()
	// Two MinIO nodes start at once: each generates a DEK with the default
	// key, creates the key when it is missing, and tolerates ErrKeyExists.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			c := srv.apiKeyClient(t, minioKey)
			_, err := c.GenerateKey(ctx, defaultKey, []byte("{}"))
			if errors.Is(err, kes.ErrKeyNotFound) {
				err = c.CreateKey(ctx, defaultKey)
				if errors.Is(err, kes.ErrKeyExists) {
					err = nil
				}
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("MinIO start-up: %v", err)
		}
	}
	c := srv.apiKeyClient(t, minioKey)
	if _, err := c.DescribeKey(ctx, defaultKey); err != nil {
		t.Fatalf("DescribeKey(default): %v", err)
	}
	objCtx := []byte(`{"mybucket":"mybucket/myobject"}`)
	dek, err := c.GenerateKey(ctx, defaultKey, objCtx)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	pt, err := c.Decrypt(ctx, defaultKey, dek.Ciphertext, objCtx)
	if err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Fatalf("Decrypt(DEK) = %x, %v, want %x", pt, err, dek.Plaintext)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Errorf("Status: %v", err)
	}
	if _, err := c.APIs(ctx); err != nil {
		t.Errorf("APIs: %v", err)
	}
	if names, _, err := c.ListKeys(ctx, "", 0); err != nil || !slices.Equal(names, []string{defaultKey}) {
		t.Errorf("ListKeys = %v, %v, want [%s]", names, err, defaultKey)
	}
	if err := c.DeleteKey(ctx, defaultKey); !errors.Is(err, kes.ErrNotAllowed) {
		t.Errorf("DeleteKey by MinIO: err = %v, want %v", err, kes.ErrNotAllowed)
	}
}

// TestAuthOn checks tls.auth: on. A certificate issued by the configured
// CA is accepted; a self-signed API-key certificate is refused in the TLS
// handshake.
func TestAuthOn(t *testing.T) {
	ca := testpki.NewCA(t)
	adminKey := newAPIKey(t)
	cert := ca.Issue(t, testpki.Options{CommonName: "app"})
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", ca.CertPEM())
	config := fmt.Sprintf(`admin:
  identity: %s
tls:
  key: server.key
  cert: server.cert
  auth: on
  ca: %s/ca.pem
policy:
  app:
    allow: [/v1/key/*/app-*]
    identities: [%s]
`, adminKey.Identity(), dir, cert.Identity())
	srv := startServer(t, serverOptions{Config: config})
	ctx := t.Context()

	app := srv.certClient(cert.TLS)
	if err := app.CreateKey(ctx, "app-key"); err != nil {
		t.Fatalf("CA-issued certificate: CreateKey: %v", err)
	}
	if _, err := app.GenerateKey(ctx, "app-key", nil); err != nil {
		t.Fatalf("CA-issued certificate: GenerateKey: %v", err)
	}
	if err := srv.apiKeyClient(t, adminKey).CreateKey(ctx, "x"); err == nil || errors.As(err, new(kes.Error)) {
		t.Fatalf("self-signed API key with auth on: CreateKey err = %v, want a TLS handshake failure", err)
	}
	other := testpki.SelfSigned(t, testpki.Options{})
	c := srv.certClient(tls.Certificate(other.TLS))
	if _, err := c.Version(ctx); err == nil {
		t.Fatal("self-signed certificate with auth on: Version succeeded, want a TLS handshake failure")
	}
}
