package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitAudit waits until the recorder holds more than n records and
// returns them; finish() emits a record after the response is written, so
// the client can see the response first.
func waitAudit(t *testing.T, a *auditRecorder, n int) []AuditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := a.all()
		if len(recs) > n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record after %d records", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// publicMessage returns the error message of an error response: the
// "message" of a JSON error, or the text of a plain-text one.
func publicMessage(r response) string {
	var e struct{ Message string }
	if json.Unmarshal(r.body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(r.body))
}

// TestAuditCompleteness sends one request to each of the 22 routes and
// the error cases of the router, and checks that each yields exactly one
// AuditRecord with the right fields. A TLS handshake that fails (no
// client certificate) is no HTTP request and yields no record; it is
// counted in kes_tls_handshake_failures_*_total instead.
func TestAuditCompleteness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin, user, stranger := e.client(t, e.admin), e.client(t, e.user), e.client(t, e.stranger)
	ids := map[*http.Client]*testpki.Cert{admin: e.admin, user: e.user, stranger: e.stranger}
	policies := map[*http.Client]string{admin: "", user: "my-app", stranger: ""}

	key := bytes.Repeat([]byte{0x42}, 32)
	importBody := `{"key":"` + base64.StdEncoding.EncodeToString(key) + `","cipher":"AES256"}`
	plaintext := `{"plaintext":"` + base64.StdEncoding.EncodeToString([]byte("audit me")) + `"}`
	var ciphertext string // set by the encrypt case

	type tc struct {
		name    string
		c       *http.Client
		method  string
		path    string
		body    func() string
		keyName string
		status  int
		stream  bool
	}
	body := func(s string) func() string { return func() string { return s } }
	cases := []tc{
		{name: "version", c: admin, method: "GET", path: "/version", status: 200},
		{name: "ready", c: admin, method: "GET", path: "/v1/ready", status: 200},
		{name: "status", c: admin, method: "GET", path: "/v1/status", status: 200},
		{name: "metrics", c: admin, method: "GET", path: "/v1/metrics", status: 200},
		{name: "api", c: admin, method: "GET", path: "/v1/api", status: 200},
		{name: "create", c: admin, method: "POST", path: "/v1/key/create/k1", keyName: "k1", status: 200},
		{name: "import", c: admin, method: "POST", path: "/v1/key/import/k2", body: body(importBody), keyName: "k2", status: 200},
		{name: "describe", c: admin, method: "GET", path: "/v1/key/describe/k1", keyName: "k1", status: 200},
		{name: "list", c: admin, method: "GET", path: "/v1/key/list/*", status: 200},
		{name: "generate", c: admin, method: "POST", path: "/v1/key/generate/k1", keyName: "k1", status: 200},
		{name: "encrypt", c: admin, method: "POST", path: "/v1/key/encrypt/k1", body: body(plaintext), keyName: "k1", status: 200},
		{name: "decrypt", c: admin, method: "POST", path: "/v1/key/decrypt/k1", body: func() string { return `{"ciphertext":"` + ciphertext + `"}` }, keyName: "k1", status: 200},
		{name: "hmac", c: admin, method: "PUT", path: "/v1/key/hmac/k1", body: body(`{"message":"aGVsbG8="}`), keyName: "k1", status: 200},
		{name: "policy-describe", c: admin, method: "GET", path: "/v1/policy/describe/my-app", status: 200},
		{name: "policy-read", c: admin, method: "GET", path: "/v1/policy/read/my-app", status: 200},
		{name: "policy-list", c: admin, method: "GET", path: "/v1/policy/list/*", status: 200},
		{name: "identity-describe", c: admin, method: "GET", path: "/v1/identity/describe/" + e.user.Identity(), status: 200},
		{name: "identity-list", c: admin, method: "GET", path: "/v1/identity/list/*", status: 200},
		{name: "identity-self", c: user, method: "GET", path: "/v1/identity/self/describe", status: 200},
		{name: "delete", c: admin, method: "DELETE", path: "/v1/key/delete/k2", keyName: "k2", status: 200},
		{name: "log-error", c: admin, method: "GET", path: "/v1/log/error", status: 200, stream: true},
		{name: "log-audit", c: admin, method: "GET", path: "/v1/log/audit", status: 200, stream: true},

		{name: "denied", c: user, method: "GET", path: "/v1/key/describe/my-app-internal-x", keyName: "my-app-internal-x", status: 403},
		{name: "denied-stranger", c: stranger, method: "GET", path: "/v1/key/describe/k1", keyName: "k1", status: 403},
		{name: "malformed", c: admin, method: "POST", path: "/v1/key/encrypt/k1", body: body(`{"plaintext":`), keyName: "k1", status: 400},
		{name: "oversized", c: admin, method: "POST", path: "/v1/key/encrypt/k1", body: body(`{"plaintext":"` + strings.Repeat("A", 2<<20) + `"}`), keyName: "k1", status: 400},
		{name: "unknown-key", c: admin, method: "GET", path: "/v1/key/describe/nope", keyName: "nope", status: 404},
		{name: "wrong-method", c: admin, method: "GET", path: "/v1/key/create/k3", keyName: "k3", status: 405},
		{name: "unknown-path", c: admin, method: "GET", path: "/v1/nope", status: 404},
		{name: "redirect", c: admin, method: "GET", path: "/v1//status", status: 301},
		{name: "version-stranger", c: stranger, method: "GET", path: "/version", status: 200},
		{name: "self-stranger", c: stranger, method: "GET", path: "/v1/identity/self/describe", status: 404},
	}

	n := 0
	for _, c := range cases {
		before := time.Now()
		var resp response
		if c.stream {
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, c.method, e.url(c.path), nil)
			r, err := c.c.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			resp.status = r.StatusCode
			cancel()
			r.Body.Close()
		} else {
			var b string
			if c.body != nil {
				b = c.body()
			}
			resp = do(t, c.c, c.method, e.url(c.path), b)
		}
		if c.name == "encrypt" {
			var v struct{ Ciphertext []byte }
			json.Unmarshal(resp.body, &v)
			ciphertext = base64.StdEncoding.EncodeToString(v.Ciphertext)
		}
		if resp.status != c.status {
			t.Errorf("%s: %s %s = %d, want %d (%q)", c.name, c.method, c.path, resp.status, c.status, resp.body)
		}
		recs := waitAudit(t, e.audit, n)
		n++
		rec := recs[n-1]
		after := time.Now()
		want := AuditRecord{
			Method: c.method, Path: c.path, IP: "127.0.0.1",
			Identity: ids[c.c].Identity(), Policy: policies[c.c], KeyName: c.keyName,
			Status: resp.status,
		}
		got := rec
		got.Time, got.Latency, got.Message = time.Time{}, 0, ""
		if got != want {
			t.Errorf("%s: record\n %+v, want\n %+v", c.name, got, want)
		}
		if rec.Time.Before(before.Add(-time.Millisecond)) || rec.Time.After(after) || rec.Latency <= 0 {
			t.Errorf("%s: time %v latency %v, want within [%v, %v] and > 0", c.name, rec.Time, rec.Latency, before, after)
		}
		if resp.status >= 400 && !c.stream {
			if msg := publicMessage(resp); rec.Message != msg {
				t.Errorf("%s: message %q, want the public error %q", c.name, rec.Message, msg)
			}
		}
	}

	// A handshake without a client certificate: no HTTP request, no
	// record, one handshake failure.
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	if _, err := (&http.Client{Transport: tr}).Get(e.url("/version")); err == nil {
		t.Error("request without a client certificate succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(e.audit.all()); got != n {
		t.Errorf("%d audit records for %d requests", got, n)
	}
	if v := counterValue(t, e.srv.metrics.x.tlsFailures[tlsNoCertificate]); v != 1 {
		t.Errorf("kes_tls_handshake_failures_no_certificate_total = %v, want 1", v)
	}
	if v := counterValue(t, e.srv.metrics.x.policyDenials); v != 2 {
		t.Errorf("kes_policy_denials_total = %v, want 2", v)
	}
}

// TestAuditNoSecrets runs create, import (known key bytes), generate,
// encrypt (known plaintext), decrypt and hmac, plus failing variants, and
// scans every audit record (as %+v and as JSON), both log streams and the
// error log (DEBUG) for the key bytes, plaintexts, data keys, ciphertexts
// and HMACs in base64 and hex.
func TestAuditNoSecrets(t *testing.T) {
	t.Parallel()
	e, admin := adminEnv(t)

	// Subscribe to both streams for the whole sequence.
	var streams syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, p := range []string{"/v1/log/audit", "/v1/log/error"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url(p), nil)
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer resp.Body.Close()
			io.Copy(&streams, resp.Body)
		}()
	}

	var secrets [][]byte
	secret := func(b []byte) { secrets = append(secrets, append([]byte(nil), b...)) }
	b64 := base64.StdEncoding.EncodeToString

	key := bytes.Repeat([]byte{0xA7}, 32)
	plaintext := []byte("the quick brown fox: top secret plaintext")
	message := []byte("hmac me, a secret message of some length")
	secret(key)
	secret(plaintext)
	secret(message)

	do(t, admin, "POST", e.url("/v1/key/create/s1"), "").want(t, 200)
	do(t, admin, "POST", e.url("/v1/key/import/s2"), `{"key":"`+b64(key)+`","cipher":"AES256"}`).want(t, 200)
	var dek struct{ Plaintext, Ciphertext []byte }
	do(t, admin, "POST", e.url("/v1/key/generate/s1"), `{"context":"`+b64([]byte("ctx"))+`"}`).decode(t, &dek)
	secret(dek.Plaintext)
	secret(dek.Ciphertext)
	for _, k := range []string{"s1", "s2"} {
		var enc struct{ Ciphertext []byte }
		do(t, admin, "POST", e.url("/v1/key/encrypt/"+k), `{"plaintext":"`+b64(plaintext)+`"}`).decode(t, &enc)
		secret(enc.Ciphertext)
		var dec struct{ Plaintext []byte }
		do(t, admin, "POST", e.url("/v1/key/decrypt/"+k), `{"ciphertext":"`+b64(enc.Ciphertext)+`"}`).decode(t, &dec)
		if !bytes.Equal(dec.Plaintext, plaintext) {
			t.Fatalf("decrypt(%s) = %q", k, dec.Plaintext)
		}
		var mac struct{ HMAC []byte }
		do(t, admin, "PUT", e.url("/v1/key/hmac/"+k), `{"message":"`+b64(message)+`"}`).decode(t, &mac)
		secret(mac.HMAC)
	}
	// Failures that carry secrets in the request: a ciphertext under the
	// wrong key, a body with trailing garbage, a wrong context.
	var enc struct{ Ciphertext []byte }
	do(t, admin, "POST", e.url("/v1/key/encrypt/s1"), `{"plaintext":"`+b64(plaintext)+`"}`).decode(t, &enc)
	secret(enc.Ciphertext)
	do(t, admin, "POST", e.url("/v1/key/decrypt/s2"), `{"ciphertext":"`+b64(enc.Ciphertext)+`"}`).want(t, 400)
	do(t, admin, "POST", e.url("/v1/key/decrypt/s1"), `{"ciphertext":"`+b64(enc.Ciphertext)+`","context":"`+b64(key)+`"}`).want(t, 400)
	do(t, admin, "POST", e.url("/v1/key/import/s3"), `{"key":"`+b64(key)+`","cipher":"bogus"}`)
	do(t, admin, "POST", e.url("/v1/key/encrypt/s1"), `{"plaintext":"`+b64(plaintext)+`"} `+b64(key))

	waitAudit(t, e.audit, 12)
	time.Sleep(100 * time.Millisecond) // let the streams catch up
	cancel()

	var out bytes.Buffer
	for _, r := range e.audit.all() {
		fmt.Fprintf(&out, "%+v\n", r)
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(j)
		out.WriteByte('\n')
	}
	out.WriteString(streams.String())
	out.WriteString(e.errLog.String())
	if !strings.Contains(out.String(), "/v1/key/hmac/s2") || !strings.Contains(streams.String(), "/v1/key/hmac/s2") {
		t.Fatalf("audit output lacks the requests:\n%s", out.String())
	}
	all := out.String()
	for _, s := range secrets {
		for _, form := range []string{
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s),
			base64.URLEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s),
			hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)), string(s),
		} {
			if len(form) >= 8 && strings.Contains(all, form) {
				t.Errorf("audit/error output contains a secret (%q)", form)
			}
		}
	}
}
