package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/openkes/openkes/keystore/etcd/etcdtest"
)

// The key lifecycle extensions of OpenKES (rotate, rewrap; docs/keys.md)
// driven with the upstream kms-go client, which knows nothing of them,
// and with plain HTTP for the new routes.

// sendHTTP sends one request through the TLS client of c (its API
// key's certificate) and returns the status and body.
func sendHTTP(t *testing.T, c *kes.Client, method, url, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// rotateHTTP rotates name through srv and returns the new version.
func rotateHTTP(t *testing.T, srv *kesServer, c *kes.Client, name string) int {
	t.Helper()
	code, body := sendHTTP(t, c, http.MethodPut, srv.URL+"/v1/key/rotate/"+name, "")
	var v struct {
		Version int `json:"version"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		t.Fatalf("rotate %s: %d %s", name, code, body)
	}
	return v.Version
}

// describeVersions returns the "versions" of a describe through srv.
func describeVersions(t *testing.T, srv *kesServer, c *kes.Client, name string) []int {
	t.Helper()
	code, body := sendHTTP(t, c, http.MethodGet, srv.URL+"/v1/key/describe/"+name, "")
	var d struct {
		Versions []struct {
			Version int `json:"version"`
		} `json:"versions"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &d) != nil {
		t.Fatalf("describe %s: %d %s", name, code, body)
	}
	var out []int
	for _, v := range d.Versions {
		out = append(out, v.Version)
	}
	return out
}

// TestLifecycleKMSGo: create, generate, rotate (plain HTTP), generate;
// kms-go decrypts both without a version; a rewrap of the old
// ciphertext decrypts to the same plaintext; the wrong context fails.
func TestLifecycleKMSGo(t *testing.T) {
	admin := newAPIKey(t)
	srv := startServer(t, serverOptions{Config: "admin:\n  identity: " + admin.Identity().String() + "\n"})
	c := srv.apiKeyClient(t, admin)
	ctx := t.Context()
	kctx := []byte("bucket/object")

	if err := c.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	old, err := c.GenerateKey(ctx, "k", kctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := rotateHTTP(t, srv, c, "k"); v != 2 {
		t.Fatalf("rotate = %d, want 2", v)
	}
	cur, err := c.GenerateKey(ctx, "k", kctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(old.Ciphertext, []byte("KESv")) || !bytes.HasPrefix(cur.Ciphertext, []byte("KESv")) {
		t.Errorf("ciphertext headers: old %q, new %q", old.Ciphertext[:4], cur.Ciphertext[:4])
	}
	for _, d := range []kes.DEK{old, cur} {
		pt, err := c.Decrypt(ctx, "k", d.Ciphertext, kctx)
		if err != nil || !bytes.Equal(pt, d.Plaintext) {
			t.Errorf("kms-go Decrypt = %x, %v; want %x", pt, err, d.Plaintext)
		}
		if _, err := c.Decrypt(ctx, "k", d.Ciphertext, []byte("wrong")); !errors.Is(err, kes.ErrDecrypt) {
			t.Errorf("kms-go Decrypt with the wrong context = %v, want ErrDecrypt", err)
		}
	}

	body := `{"ciphertext":"` + base64.StdEncoding.EncodeToString(old.Ciphertext) + `","context":"` + base64.StdEncoding.EncodeToString(kctx) + `"}`
	code, resp := sendHTTP(t, c, http.MethodPost, srv.URL+"/v1/key/rewrap/k", body)
	var rw struct {
		Ciphertext []byte `json:"ciphertext"`
		Version    int    `json:"version"`
	}
	if code != http.StatusOK || json.Unmarshal(resp, &rw) != nil || rw.Version != 2 {
		t.Fatalf("rewrap: %d %s", code, resp)
	}
	if pt, err := c.Decrypt(ctx, "k", rw.Ciphertext, kctx); err != nil || !bytes.Equal(pt, old.Plaintext) {
		t.Errorf("kms-go Decrypt of the rewrapped ciphertext = %x, %v; want %x", pt, err, old.Plaintext)
	}
	wrong := `{"ciphertext":"` + base64.StdEncoding.EncodeToString(old.Ciphertext) + `","context":"` + base64.StdEncoding.EncodeToString([]byte("wrong")) + `"}`
	code, resp = sendHTTP(t, c, http.MethodPut, srv.URL+"/v1/key/rewrap/k", wrong)
	if want := `{"message":"decryption failed: ciphertext is not authentic"` + "\n}"; code != http.StatusBadRequest || string(resp) != want {
		t.Errorf("rewrap with the wrong context: %d %q, want 400 %q", code, resp, want)
	}

	// kms-go reads the describe of a rotated key; HMACs do not change.
	if info, err := c.DescribeKey(ctx, "k"); err != nil || info.Name != "k" {
		t.Errorf("kms-go DescribeKey of a rotated key = %+v, %v", info, err)
	}
	if got := describeVersions(t, srv, c, "k"); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("versions = %v, want [1 2]", got)
	}
}

// TestLifecycleEtcd: two servers on one real etcd. A DEK made through A
// after a rotation through A decrypts through B at once; concurrent
// rotations through both lose no version.
func TestLifecycleEtcd(t *testing.T) {
	cluster := etcdtest.Start(t, 1)
	srv, c := etcdNodes(t, cluster, 2, "", nil)
	ctx := t.Context()

	if err := c[0].CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(ctx, c[1], c[1], "k"); err != nil { // B caches version 1
		t.Fatal(err)
	}
	if v := rotateHTTP(t, srv[0], c[0], "k"); v != 2 {
		t.Fatalf("rotate = %d, want 2", v)
	}
	if err := roundTrip(ctx, c[0], c[1], "k"); err != nil {
		t.Fatalf("DEK of version 2 made through A, decrypted through B: %v", err)
	}

	const perServer = 10
	type result struct {
		code int
		body []byte
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []result
	)
	for i := range 2 * perServer {
		s, cl := srv[i%2], c[i%2]
		wg.Go(func() {
			code, body := sendHTTP(t, cl, http.MethodPut, s.URL+"/v1/key/rotate/k", "")
			mu.Lock()
			results = append(results, result{code, body})
			mu.Unlock()
		})
	}
	wg.Wait()
	versions := map[int]bool{}
	for _, r := range results {
		switch r.code {
		case http.StatusOK:
			var v struct {
				Version int `json:"version"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || v.Version < 3 || versions[v.Version] {
				t.Errorf("rotation answered %s (seen %v)", r.body, versions)
			}
			versions[v.Version] = true
		case http.StatusConflict:
			if string(r.body) != `{"message":"key rotation conflict"`+"\n}" {
				t.Errorf("409 %q", r.body)
			}
		default:
			t.Errorf("rotation answered %d %q", r.code, r.body)
		}
	}
	for i, s := range srv {
		got := describeVersions(t, s, c[i], "k")
		if len(got) != 2+len(versions) {
			t.Errorf("server %d lists %d versions %v, want 2 + %d successful concurrent rotations", i, len(got), got, len(versions))
		}
		seen := map[int]bool{}
		for _, v := range got {
			if seen[v] {
				t.Errorf("version %d listed twice: %v", v, got)
			}
			seen[v] = true
		}
		for v := range versions {
			if !seen[v] {
				t.Errorf("server %d: version %d of a successful rotation is missing: %v", i, v, got)
			}
		}
	}
	// Both servers generate with, and decrypt, the newest version.
	if err := roundTrip(ctx, c[1], c[0], "k"); err != nil {
		t.Error(err)
	}
}

// TestLifecycleEtcdRestart: deletion protection on a real etcd with a
// restart in between. A server schedules the deletion of two rotated
// keys and stops; a new server on the same etcd sees both versions and
// both schedules, restores one, decrypts its old DEK and removes the
// other when its window ends.
func TestLifecycleEtcdRestart(t *testing.T) {
	cluster := etcdtest.Start(t, 1)
	admin := newAPIKey(t)
	opts := serverOptions{
		Config: "admin:\n  identity: " + admin.Identity().String() + "\n" + "deletion:\n  window: 10s\n",
		KeyStore: fmt.Sprintf("  etcd:\n    endpoints: [%s]\n    prefix: kes/\n    timeout: 2s\n",
			strings.Join(cluster.Endpoints(), ", ")),
	}
	ctx := t.Context()
	a := startServer(t, opts)
	ca := a.apiKeyClient(t, admin)
	for _, name := range []string{"gone", "kept"} {
		if err := ca.CreateKey(ctx, name); err != nil {
			t.Fatal(err)
		}
		rotateHTTP(t, a, ca, name)
	}
	dek, err := ca.GenerateKey(ctx, "kept", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another server that has the key cached learns of the schedule
	// through the etcd watch.
	other := startServer(t, opts)
	co := other.apiKeyClient(t, admin)
	if err := roundTrip(ctx, co, co, "kept"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone", "kept"} {
		if err := ca.DeleteKey(ctx, name); err != nil {
			t.Fatalf("DeleteKey(%s) with a window: %v", name, err)
		}
	}
	if _, err := ca.GenerateKey(ctx, "kept", nil); status(err) != http.StatusConflict {
		t.Errorf("GenerateKey of a scheduled key = %v, want 409", err)
	}
	if took, err := within(2*time.Second, func() error {
		if _, err := co.GenerateKey(ctx, "kept", nil); status(err) != http.StatusConflict {
			return fmt.Errorf("GenerateKey through the other server = %v, want 409", err)
		}
		return nil
	}); err != nil {
		t.Errorf("after %v: %v", took, err)
	}
	other.signal(t, syscall.SIGTERM)
	if exited, err := other.wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("kes did not exit after SIGTERM: exited %v, err %v", exited, err)
	}
	a.signal(t, syscall.SIGTERM)
	if exited, err := a.wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("kes did not exit after SIGTERM: exited %v, err %v", exited, err)
	}

	b := startServer(t, opts)
	cb := b.apiKeyClient(t, admin)
	for _, name := range []string{"gone", "kept"} {
		code, body := sendHTTP(t, cb, http.MethodGet, b.URL+"/v1/key/describe/"+name, "")
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"deletion":{`)) || !bytes.Contains(body, []byte(`"version":2,`)) {
			t.Errorf("describe %s after the restart: %d %s", name, code, body)
		}
	}
	if code, body := sendHTTP(t, cb, http.MethodPut, b.URL+"/v1/key/restore/kept", ""); code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, body)
	}
	if pt, err := cb.Decrypt(ctx, "kept", dek.Ciphertext, nil); err != nil || !bytes.Equal(pt, dek.Plaintext) {
		t.Errorf("Decrypt after the restart = %x, %v", pt, err)
	}
	if _, err := within(30*time.Second, func() error {
		_, err := cb.DescribeKey(ctx, "gone")
		if errors.Is(err, kes.ErrKeyNotFound) {
			return nil
		}
		return fmt.Errorf("DescribeKey(gone) = %v", err)
	}); err != nil {
		t.Fatalf("scheduled key not removed 30s after its 10s window: %v", err)
	}
	if err := roundTrip(ctx, cb, cb, "kept"); err != nil {
		t.Errorf("restored key: %v", err)
	}
	keys, err := cluster.Client(t).Get(ctx, "kes/gone", clientv3.WithPrefix())
	if err != nil || len(keys.Kvs) != 0 {
		t.Errorf("etcd entries left of the removed key: %v (err %v)", keys, err)
	}
}
