package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/minio/kms-go/kes"

	"github.com/openkes/openkes/keystore/etcd/etcdtest"
)

// The key lifecycle extensions of OpenKES (rotate, rewrap; docs/keys.md)
// driven with the upstream kms-go client, which knows nothing of them,
// and with plain HTTP for the new routes.

// lifecycleHTTP sends one request through the TLS client of c (its API
// key's certificate) and returns the status and body.
func lifecycleHTTP(t *testing.T, c *kes.Client, method, url, body string) (int, []byte) {
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
	code, body := lifecycleHTTP(t, c, http.MethodPut, srv.URL+"/v1/key/rotate/"+name, "")
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
	code, body := lifecycleHTTP(t, c, http.MethodGet, srv.URL+"/v1/key/describe/"+name, "")
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
	code, resp := lifecycleHTTP(t, c, http.MethodPost, srv.URL+"/v1/key/rewrap/k", body)
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
	code, resp = lifecycleHTTP(t, c, http.MethodPut, srv.URL+"/v1/key/rewrap/k", wrong)
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
			code, body := lifecycleHTTP(t, cl, http.MethodPut, s.URL+"/v1/key/rotate/k", "")
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
