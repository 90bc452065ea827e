package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/keystore/fs"
	"github.com/openkes/openkes/keystore/mem"
)

// dek is a decoded generate answer.
type dek struct {
	Plaintext  []byte `json:"plaintext"`
	Ciphertext []byte `json:"ciphertext"`
	Version    int    `json:"version"`
}

// generate asks for a DEK of key name and returns it with the raw body.
func generate(t *testing.T, c *http.Client, e *env, name, body string) (dek, []byte) {
	t.Helper()
	r := do(t, c, "POST", e.url("/v1/key/generate/"+name), body)
	var d dek
	r.decode(t, &d)
	return d, r.body
}

// openBody is a decrypt or rewrap request body; version is added as
// raw JSON unless it is empty.
func openBody(ciphertext, context []byte, version string) string {
	s := `{"ciphertext":"` + b64(ciphertext) + `"`
	if context != nil {
		s += `,"context":"` + b64(context) + `"`
	}
	if version != "" {
		s += `,"version":` + version
	}
	return s + "}"
}

func decrypt(t *testing.T, c *http.Client, e *env, name, body string) response {
	t.Helper()
	return do(t, c, "POST", e.url("/v1/key/decrypt/"+name), body)
}

func rotate(t *testing.T, c *http.Client, e *env, name string) int {
	t.Helper()
	var r api.RotateKeyResponse
	do(t, c, "PUT", e.url("/v1/key/rotate/"+name), "").decode(t, &r)
	return r.Version
}

func describe(t *testing.T, c *http.Client, e *env, name string) (api.DescribeKeyResponse, []byte) {
	t.Helper()
	r := do(t, c, "GET", e.url("/v1/key/describe/"+name), "")
	var d api.DescribeKeyResponse
	r.decode(t, &d)
	return d, r.body
}

const decryptFailed = "decryption failed: ciphertext is not authentic"

func TestLifecycleRotate(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t)
	ctx := []byte("bucket/object")
	ctxBody := `{"context":"` + b64(ctx) + `"}`

	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)
	stored, err := e.store.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	old, raw := generate(t, c, e, "k", ctxBody)
	if bytes.Contains(raw, []byte("version")) || old.Version != 0 {
		t.Errorf("generate of an unrotated key = %s, want no version", raw)
	}
	if _, _, ok := crypto.SplitVersioned(old.Ciphertext); ok && bytes.HasPrefix(old.Ciphertext, []byte("KESv")) {
		t.Errorf("version 1 ciphertext has a version header")
	}
	hmac1 := do(t, c, "PUT", e.url("/v1/key/hmac/k"), `{"message":"`+b64([]byte("m"))+`"}`).want(t, 200).body
	_, rawDesc := describe(t, c, e, "k")
	if bytes.Contains(rawDesc, []byte("version")) || bytes.Contains(rawDesc, []byte("deletion")) {
		t.Errorf("describe of an unrotated key = %s", rawDesc)
	}

	if n := rotate(t, c, e, "k"); n != 2 {
		t.Fatalf("rotate = %d, want 2", n)
	}
	if after, err := e.store.Get(t.Context(), "k"); err != nil || !bytes.Equal(after, stored) {
		t.Errorf("stored first version changed by rotation (err %v)", err)
	}
	cur, raw := generate(t, c, e, "k", ctxBody)
	if cur.Version != 2 || !bytes.HasSuffix(raw, []byte(`,"version":2}`+"\n")) {
		t.Errorf("generate after rotation = %s, want version 2 as last field", raw)
	}
	if n, _, ok := crypto.SplitVersioned(cur.Ciphertext); !ok || n != 2 {
		t.Errorf("ciphertext of version 2 has header %d, %v", n, ok)
	}
	var enc struct {
		Ciphertext []byte `json:"ciphertext"`
		Version    int    `json:"version"`
	}
	do(t, c, "PUT", e.url("/v1/key/encrypt/k"), `{"plaintext":"`+b64([]byte("hi"))+`"}`).decode(t, &enc)
	if enc.Version != 2 {
		t.Errorf("encrypt after rotation: version %d, want 2", enc.Version)
	}

	tests := []struct {
		name       string
		ciphertext []byte
		context    []byte
		version    string
		want       []byte // nil: decrypt error
	}{
		{"old without version", old.Ciphertext, ctx, "", old.Plaintext},
		{"new without version", cur.Ciphertext, ctx, "", cur.Plaintext},
		{"encrypted", enc.Ciphertext, nil, "", []byte("hi")},
		{"old with version 1", old.Ciphertext, ctx, "1", old.Plaintext},
		{"new with version 2", cur.Ciphertext, ctx, "2", cur.Plaintext},
		{"old with version 2", old.Ciphertext, ctx, "2", nil},
		{"new with version 1", cur.Ciphertext, ctx, "1", nil},
		{"new with version 3", cur.Ciphertext, ctx, "3", nil},
		{"version 0", old.Ciphertext, ctx, "0", nil},
		{"fractional version", old.Ciphertext, ctx, "1.5", nil},
		{"negative version", old.Ciphertext, ctx, "-1", nil},
		{"string version ignored", cur.Ciphertext, ctx, `"v1"`, cur.Plaintext},
		{"empty string version ignored", old.Ciphertext, ctx, `""`, old.Plaintext},
		{"null version", cur.Ciphertext, ctx, "null", cur.Plaintext},
		{"new wrong context", cur.Ciphertext, []byte("other"), "", nil},
		{"old wrong context", old.Ciphertext, []byte("other"), "", nil},
		{"header of a missing version", crypto.AppendVersioned(nil, 7, cur.Ciphertext[crypto.VersionHeaderSize:]), ctx, "", nil},
		{"header changed to version 1's", crypto.AppendVersioned(nil, 2, old.Ciphertext), ctx, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decrypt(t, c, e, "k", openBody(tt.ciphertext, tt.context, tt.version))
			if tt.want == nil {
				r.wantError(t, 400, decryptFailed)
				return
			}
			var got api.DecryptKeyResponse
			r.decode(t, &got)
			if !bytes.Equal(got.Plaintext, tt.want) || bytes.Contains(r.body, []byte("version")) {
				t.Errorf("decrypt = %s, want plaintext %x", r.body, tt.want)
			}
		})
	}
	decrypt(t, c, e, "k", `{"ciphertext":"AAAA","version":true}`).wantError(t, 400, "invalid request body")

	hmac2 := do(t, c, "PUT", e.url("/v1/key/hmac/k"), `{"message":"`+b64([]byte("m"))+`"}`).want(t, 200).body
	if !bytes.Equal(hmac1, hmac2) {
		t.Errorf("HMAC changed by rotation: %s, was %s", hmac2, hmac1)
	}

	if n := rotate(t, c, e, "k"); n != 3 {
		t.Fatalf("second rotate = %d, want 3", n)
	}
	desc, _ := describe(t, c, e, "k")
	if desc.Version != 3 || len(desc.Versions) != 3 || desc.Deletion != nil {
		t.Fatalf("describe after two rotations = %+v", desc)
	}
	for i, v := range desc.Versions {
		if v.Version != i+1 || string(v.CreatedBy) != e.admin.Identity() || v.CreatedAt.IsZero() || v.CreatedAt.Location() != time.UTC {
			t.Errorf("versions[%d] = %+v", i, v)
		}
	}
	if !desc.Versions[0].CreatedAt.Equal(desc.CreatedAt) {
		t.Errorf("versions[0].created_at = %v, want the key's %v", desc.Versions[0].CreatedAt, desc.CreatedAt)
	}

	do(t, c, "PUT", e.url("/v1/key/rotate/nope"), "").wantError(t, 404, "key does not exist")
	do(t, c, "PUT", e.url("/v1/key/rotate/a.b"), "").
		wantError(t, 400, "key name 'a.b' is empty, too long or contains invalid characters")
	do(t, c, "GET", e.url("/v1/key/rotate/k"), "").wantError(t, 405, "received method 'GET' expected 'PUT'")

	// Delete removes every version: a new key of the same name starts
	// at version 1 and cannot read the old ciphertexts.
	do(t, c, "DELETE", e.url("/v1/key/delete/k"), "").wantEmpty(t)
	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)
	if _, raw := generate(t, c, e, "k", ""); bytes.Contains(raw, []byte("version")) {
		t.Errorf("generate of a new key of a deleted rotated key's name = %s", raw)
	}
	decrypt(t, c, e, "k", openBody(cur.Ciphertext, ctx, "")).wantError(t, 400, decryptFailed)
}

func TestLifecycleRewrap(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t)
	ctx := []byte("ctx")
	for _, name := range []string{"k", "other"} {
		do(t, c, "POST", e.url("/v1/key/create/"+name), "").wantEmpty(t)
	}
	old, _ := generate(t, c, e, "k", `{"context":"`+b64(ctx)+`"}`)
	foreign, _ := generate(t, c, e, "other", `{"context":"`+b64(ctx)+`"}`)

	// Rewrap of an unrotated key answers version 1 and the upstream format.
	var rw struct {
		Ciphertext []byte `json:"ciphertext"`
		Version    int    `json:"version"`
	}
	do(t, c, "PUT", e.url("/v1/key/rewrap/k"), openBody(old.Ciphertext, ctx, "")).decode(t, &rw)
	if rw.Version != 1 || bytes.HasPrefix(rw.Ciphertext, []byte("KESv")) || bytes.Equal(rw.Ciphertext, old.Ciphertext) {
		t.Errorf("rewrap before rotation = version %d, ciphertext %q", rw.Version, rw.Ciphertext)
	}

	rotate(t, c, e, "k")
	r := do(t, c, "POST", e.url("/v1/key/rewrap/k"), openBody(old.Ciphertext, ctx, ""))
	r.decode(t, &rw)
	if rw.Version != 2 || bytes.Contains(r.body, old.Plaintext) || bytes.Contains(r.body, []byte(b64(old.Plaintext))) {
		t.Fatalf("rewrap = %s, want version 2 and no plaintext", r.body)
	}
	if n, _, ok := crypto.SplitVersioned(rw.Ciphertext); !ok || n != 2 {
		t.Errorf("rewrapped ciphertext has header %d, %v, want version 2", n, ok)
	}
	for _, version := range []string{"", "2"} {
		var got api.DecryptKeyResponse
		decrypt(t, c, e, "k", openBody(rw.Ciphertext, ctx, version)).decode(t, &got)
		if !bytes.Equal(got.Plaintext, old.Plaintext) {
			t.Errorf("rewrapped ciphertext (version %q) decrypts to %x, want %x", version, got.Plaintext, old.Plaintext)
		}
	}

	// Every failure to decrypt answers exactly as decrypt does.
	for _, tt := range []struct {
		name string
		body string
	}{
		{"wrong context", openBody(old.Ciphertext, []byte("other"), "")},
		{"no context", openBody(old.Ciphertext, nil, "")},
		{"other key", openBody(foreign.Ciphertext, ctx, "")},
		{"garbage", openBody([]byte("garbage ciphertext garbage ciphertext"), ctx, "")},
		{"empty", `{"ciphertext":""}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := decrypt(t, c, e, "k", tt.body)
			got := do(t, c, "PUT", e.url("/v1/key/rewrap/k"), tt.body)
			if got.status != want.status || !bytes.Equal(got.body, want.body) {
				t.Errorf("rewrap = %d %q, decrypt = %d %q", got.status, got.body, want.status, want.body)
			}
			got.wantError(t, 400, decryptFailed)
		})
	}
	do(t, c, "PUT", e.url("/v1/key/rewrap/k"), `{"ciphertext":"%%%"}`).wantError(t, 400, "invalid request body")
	do(t, c, "PUT", e.url("/v1/key/rewrap/k"), "").wantError(t, 400, "invalid request body")
	do(t, c, "PUT", e.url("/v1/key/rewrap/nope"), openBody(old.Ciphertext, ctx, "")).wantError(t, 404, "key does not exist")
}

// TestLifecycleUnrotated pins that a key that was never rotated, and a
// server without a deletion window, answer as upstream: no new fields.
func TestLifecycleUnrotated(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t, "k")
	for _, tt := range []struct {
		method, path, body string
		fields             []string
	}{
		{"POST", "/v1/key/generate/k", "", []string{"plaintext", "ciphertext"}},
		{"POST", "/v1/key/encrypt/k", `{"plaintext":"AAAA"}`, []string{"ciphertext"}},
		{"GET", "/v1/key/describe/k", "", []string{"name", "algorithm", "created_at", "created_by"}},
		{"GET", "/v1/key/list/", "", []string{"names"}},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, c, tt.method, e.url(tt.path), tt.body).want(t, 200)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatal(err)
			}
			var got []string
			for k := range m {
				got = append(got, k)
			}
			if diff := cmp.Diff(tt.fields, got, cmpSorted); diff != "" {
				t.Errorf("fields of %s (-want +got):\n%s", r.body, diff)
			}
		})
	}
	// Without a window delete deletes at once, and restore has nothing
	// to restore; a key scheduled while a window was configured is not
	// deleted behind its schedule.
	now := time.Now().UTC()
	do(t, c, "POST", e.url("/v1/key/create/scheduled"), "").wantEmpty(t)
	if err := keyring.New(e.store).ScheduleDeletion(t.Context(), "scheduled", keyring.Deletion{ScheduledAt: now, DeleteAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	do(t, c, "DELETE", e.url("/v1/key/delete/scheduled"), "").wantError(t, 409, "key is scheduled for deletion")
	do(t, c, "PUT", e.url("/v1/key/restore/scheduled"), "").wantEmpty(t)
	do(t, c, "DELETE", e.url("/v1/key/delete/scheduled"), "").wantEmpty(t)
	do(t, c, "DELETE", e.url("/v1/key/delete/k"), "").wantEmpty(t)
	do(t, c, "PUT", e.url("/v1/key/restore/k"), "").wantError(t, 404, "key does not exist")
	if names, _, err := e.store.List(t.Context(), "", 0); err != nil || len(names) != 0 {
		t.Errorf("store after delete = %q, %v, want empty", names, err)
	}
}

var cmpSorted = cmp.Transformer("sort", func(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
})

func TestLifecycleDeletionProtection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Deletion.Window = time.Hour })
	c := e.client(t, e.admin)
	ctx := []byte("ctx")
	for _, name := range []string{"k", "k2"} {
		do(t, c, "POST", e.url("/v1/key/create/"+name), "").wantEmpty(t)
	}
	d, _ := generate(t, c, e, "k", `{"context":"`+b64(ctx)+`"}`)
	rotate(t, c, e, "k")
	d2, _ := generate(t, c, e, "k", `{"context":"`+b64(ctx)+`"}`)

	before := time.Now().UTC()
	do(t, c, "DELETE", e.url("/v1/key/delete/k"), "").wantEmpty(t)

	const scheduled = "key is scheduled for deletion"
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/v1/key/generate/k", ""},
		{"POST", "/v1/key/encrypt/k", `{"plaintext":"AAAA"}`},
		{"PUT", "/v1/key/rotate/k", ""},
		{"PUT", "/v1/key/rewrap/k", openBody(d.Ciphertext, ctx, "")},
		{"DELETE", "/v1/key/delete/k", ""},
	} {
		do(t, c, tt.method, e.url(tt.path), tt.body).wantError(t, 409, scheduled)
	}
	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantError(t, 400, "key already exists")
	for _, dk := range []dek{d, d2} {
		var got api.DecryptKeyResponse
		decrypt(t, c, e, "k", openBody(dk.Ciphertext, ctx, "")).decode(t, &got)
		if !bytes.Equal(got.Plaintext, dk.Plaintext) {
			t.Errorf("decrypt of a scheduled key = %x, want %x", got.Plaintext, dk.Plaintext)
		}
	}
	desc, _ := describe(t, c, e, "k")
	if desc.Deletion == nil || string(desc.Deletion.ScheduledBy) != e.admin.Identity() ||
		desc.Deletion.ScheduledAt.Before(before.Add(-time.Second)) ||
		!desc.Deletion.DeleteAt.Equal(desc.Deletion.ScheduledAt.Add(time.Hour)) || desc.Version != 2 {
		t.Errorf("describe of a scheduled key = %+v", desc)
	}
	var list api.ListKeysResponse
	do(t, c, "GET", e.url("/v1/key/list/"), "").decode(t, &list)
	if diff := cmp.Diff(api.ListKeysResponse{Names: []string{"k", "k2"}, Scheduled: []string{"k"}}, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	do(t, c, "PUT", e.url("/v1/key/restore/k"), "").wantEmpty(t)
	do(t, c, "PUT", e.url("/v1/key/restore/k"), "").wantError(t, 400, "key is not scheduled for deletion")
	do(t, c, "PUT", e.url("/v1/key/restore/nope"), "").wantError(t, 404, "key does not exist")
	if d3, _ := generate(t, c, e, "k", ""); d3.Version != 2 {
		t.Errorf("generate after restore: version %d, want 2", d3.Version)
	}
	if desc, _ := describe(t, c, e, "k"); desc.Deletion != nil {
		t.Errorf("describe after restore = %+v", desc)
	}
	r := do(t, c, "GET", e.url("/v1/key/list/"), "")
	if bytes.Contains(r.body, []byte("scheduled")) {
		t.Errorf("list after restore = %s", r.body)
	}
	do(t, c, "DELETE", e.url("/v1/key/delete/nope"), "").wantError(t, 404, "key does not exist")

	// The audit log has a record of every lifecycle event.
	var msgs []string
	for _, rec := range e.audit.all() {
		if rec.Status == 200 && rec.KeyName == "k" && !strings.HasSuffix(rec.Message, "created") && rec.Message != "" {
			msgs = append(msgs, rec.Message)
		}
	}
	want := []string{
		"secret key 'k' rotated to version 2",
		"secret key 'k' scheduled for deletion at " + desc.Deletion.DeleteAt.Format(time.RFC3339),
		"secret key 'k' restored",
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("audit messages (-want +got):\n%s", diff)
	}
}

// startOnDir starts a server with a deletion window over an fs store in
// dir, and returns it and a stop function.
func startOnDir(t *testing.T, dir string, window time.Duration) *env {
	t.Helper()
	store, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *Config) {
		c.Store = store
		c.Deletion.Window = window
	})
}

// TestLifecycleRestart stops a server with a rotated key and a scheduled
// deletion and starts another on the same fs store: nothing is lost, and
// the new server's sweeper removes the key once the window has ended.
func TestLifecycleRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const window = 5 * time.Second
	a := startOnDir(t, dir, window)
	ca := a.client(t, a.admin)
	for _, name := range []string{"gone", "kept"} {
		do(t, ca, "POST", a.url("/v1/key/create/"+name), "").wantEmpty(t)
		rotate(t, ca, a, name)
	}
	dk, _ := generate(t, ca, a, "kept", "")
	for _, name := range []string{"gone", "kept"} {
		do(t, ca, "DELETE", a.url("/v1/key/delete/"+name), "").wantEmpty(t)
	}
	if err := a.srv.Close(); err != nil {
		t.Fatal(err)
	}

	b := startOnDir(t, dir, window)
	cb := b.client(t, b.admin)
	for _, name := range []string{"gone", "kept"} {
		desc, _ := describe(t, cb, b, name)
		if desc.Version != 2 || len(desc.Versions) != 2 || desc.Deletion == nil {
			t.Errorf("describe %q after restart = %+v", name, desc)
		}
	}
	do(t, cb, "PUT", b.url("/v1/key/restore/kept"), "").wantEmpty(t)
	var got api.DecryptKeyResponse
	decrypt(t, cb, b, "kept", openBody(dk.Ciphertext, nil, "")).decode(t, &got)
	if !bytes.Equal(got.Plaintext, dk.Plaintext) {
		t.Errorf("decrypt after restart = %x, want %x", got.Plaintext, dk.Plaintext)
	}

	deadline := time.Now().Add(30 * time.Second)
	for do(t, cb, "GET", b.url("/v1/key/describe/gone"), "").status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("scheduled key not removed 30s after its window of 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if names, _, err := b.store.List(t.Context(), "gone", 0); err != nil || len(names) != 0 {
		t.Errorf("store entries of the swept key: %q, %v", names, err)
	}
	if d, _ := generate(t, cb, b, "kept", ""); d.Version != 2 {
		t.Errorf("restored key generates with version %d, want 2", d.Version)
	}
	var swept bool
	for _, rec := range b.audit.all() {
		if rec.KeyName == "gone" && rec.Message == "secret key 'gone' deleted: its deletion window ended" && rec.Status == 200 {
			swept = true
		}
	}
	if !swept {
		t.Error("no audit record of the sweep")
	}
	if !strings.Contains(b.errLog.String(), "secret key 'gone' deleted: its deletion window ended") {
		t.Errorf("no log line of the sweep in %q", b.errLog.String())
	}
}

// twoServers starts two servers on one store with the same admin.
func twoServers(t *testing.T) (a, b *env) {
	a = newEnv(t)
	b = newEnv(t, func(c *Config) {
		c.Store = a.store
		c.Admin = a.conf.Admin
	})
	return a, b
}

// TestLifecycleTwoServers: a server that cached a key before another
// rotated it decrypts the other's new ciphertexts at once.
func TestLifecycleTwoServers(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	c := a.client(t, a.admin)
	cb := b.client(t, a.admin)
	do(t, c, "POST", a.url("/v1/key/create/k"), "").wantEmpty(t)
	generate(t, cb, b, "k", "") // b caches version 1
	rotate(t, c, a, "k")
	d, _ := generate(t, c, a, "k", "")
	if d.Version != 2 {
		t.Fatalf("generate after rotation: version %d", d.Version)
	}
	var got api.DecryptKeyResponse
	decrypt(t, cb, b, "k", openBody(d.Ciphertext, nil, "")).decode(t, &got)
	if !bytes.Equal(got.Plaintext, d.Plaintext) {
		t.Errorf("decrypt through the other server = %x, want %x", got.Plaintext, d.Plaintext)
	}
}

func TestLifecyclePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		p := c.Policies["my-app"]
		p.Allow = []string{"/v1/key/rotate/*"}
		p.Deny = nil
		c.Policies["my-app"] = p
		c.Deletion.Window = time.Hour
	})
	admin, user := e.client(t, e.admin), e.client(t, e.user)
	do(t, admin, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)
	d, _ := generate(t, admin, e, "k", "")

	if got := rotate(t, user, e, "k"); got != 2 {
		t.Errorf("rotate by the policy identity = %d, want 2", got)
	}
	const denied = "not authorized: insufficient permissions"
	do(t, user, "PUT", e.url("/v1/key/rewrap/k"), openBody(d.Ciphertext, nil, "")).wantError(t, 403, denied)
	do(t, user, "PUT", e.url("/v1/key/restore/k"), "").wantError(t, 403, denied)
	do(t, user, "DELETE", e.url("/v1/key/delete/k"), "").wantError(t, 403, denied)
	do(t, e.client(t, e.stranger), "PUT", e.url("/v1/key/rotate/k"), "").wantError(t, 403, denied)
}

// TestLifecycleConcurrentRotations rotates one key from many clients at
// once through two servers on one store: every success gets its own
// version, and every failure is the conflict error.
func TestLifecycleConcurrentRotations(t *testing.T) {
	t.Parallel()
	a, b := twoServers(t)
	ca, cb := a.client(t, a.admin), b.client(t, a.admin)
	do(t, ca, "POST", a.url("/v1/key/create/k"), "").wantEmpty(t)
	type result struct {
		status int
		body   []byte
	}
	results := make(chan result, 20)
	for i := range 20 {
		c, e := ca, a
		if i%2 == 1 {
			c, e = cb, b
		}
		go func() {
			req, _ := http.NewRequestWithContext(context.Background(), "PUT", e.url("/v1/key/rotate/k"), nil)
			resp, err := c.Do(req)
			if err != nil {
				results <- result{status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			results <- result{resp.StatusCode, buf.Bytes()}
		}()
	}
	seen := map[int]bool{}
	for range 20 {
		r := <-results
		switch r.status {
		case 200:
			var v api.RotateKeyResponse
			if err := json.Unmarshal(r.body, &v); err != nil || seen[v.Version] || v.Version < 2 {
				t.Errorf("rotation answered %s (err %v), seen %v", r.body, err, seen)
			}
			seen[v.Version] = true
		case 409:
			if string(r.body) != `{"message":"key rotation conflict"`+"\n}" {
				t.Errorf("409 %s", r.body)
			}
		default:
			t.Errorf("rotation answered %d %s", r.status, r.body)
		}
	}
	desc, _ := describe(t, ca, a, "k")
	if len(desc.Versions) != 1+len(seen) {
		t.Errorf("describe lists %d versions, want 1 + %d successful rotations", len(desc.Versions), len(seen))
	}
	for i, v := range desc.Versions {
		if v.Version != i+1 {
			t.Errorf("versions[%d] = %d", i, v.Version)
		}
	}
}

func TestSweepInterval(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ window, want time.Duration }{
		{time.Second, time.Second},
		{2 * time.Second, time.Second},
		{8 * time.Second, 2 * time.Second},
		{time.Hour, time.Minute},
		{168 * time.Hour, time.Minute},
	} {
		if got := sweepInterval(tt.window); got != tt.want {
			t.Errorf("sweepInterval(%v) = %v, want %v", tt.window, got, tt.want)
		}
	}
}

func TestDeletionWindowValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		window time.Duration
		ok     bool
	}{{0, true}, {time.Second, true}, {168 * time.Hour, true}, {time.Millisecond, false}, {-time.Hour, false}} {
		c := Config{Store: mem.New(), TLS: TLSConfig{GetCertificate: (&env{}).getCertificate}, Deletion: DeletionConfig{Window: tt.window}}
		err := c.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "deletion.window")) {
			t.Errorf("Validate with window %v = %v, want ok %v", tt.window, err, tt.ok)
		}
	}
}
