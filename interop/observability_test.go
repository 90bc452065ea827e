package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/kms-go/kes"
)

// TestObservability drives the log streams and the metrics endpoint with
// the upstream SDK: AuditLog and ErrorLog deliver the events of a request
// within a second, and Client.Metrics parses the exposition (with the
// OpenKES families in it) and its counters move by exactly what the test
// caused.
func TestObservability(t *testing.T) {
	adminKey, strangerKey := newAPIKey(t), newAPIKey(t)
	srv := startServer(t, serverOptions{Config: fmt.Sprintf("admin:\n  identity: %s\nlog:\n  error: debug\n", adminKey.Identity())})
	ctx := t.Context()
	c := srv.apiKeyClient(t, adminKey)

	// The streams get their own context: cancelling it ends both
	// responses, so the readers below return before the streams are
	// closed (the SDK's streams must not be closed while Next runs).
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	audit, err := c.AuditLog(sctx)
	if err != nil {
		t.Fatalf("AuditLog: %v", err)
	}
	errLog, err := c.ErrorLog(sctx)
	if err != nil {
		audit.Close()
		t.Fatalf("ErrorLog: %v", err)
	}
	auditEvents := make(chan kes.AuditEvent, 100)
	go func() {
		defer close(auditEvents)
		for audit.Next() {
			auditEvents <- audit.Event()
		}
	}()
	errorEvents := make(chan kes.ErrorEvent, 100)
	go func() {
		defer close(errorEvents)
		for errLog.Next() {
			errorEvents <- errLog.Event()
		}
	}()
	defer func() {
		stopStreams()
		for range auditEvents {
		}
		for range errorEvents {
		}
		audit.Close()
		errLog.Close()
	}()

	// Audit: the record of a request arrives within a second.
	if err := c.CreateKey(ctx, "obs-a"); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	done := time.Now()
	waitAudit := func(path string, status int) {
		t.Helper()
		timeout := time.After(time.Second - time.Since(done))
		for {
			select {
			case ev, ok := <-auditEvents:
				if !ok {
					t.Fatal("audit stream ended")
				}
				if ev.APIPath != path {
					continue
				}
				if ev.StatusCode != status || ev.ClientIdentity != adminKey.Identity() || ev.ClientIP == nil {
					t.Errorf("audit event %+v, want status %d, identity %s and an IP", ev, status, adminKey.Identity())
				}
				return
			case <-timeout:
				t.Fatalf("no audit event for %s within 1s", path)
			}
		}
	}
	waitAudit("/v1/key/create/obs-a", 200)

	// Error log: an invalid request body is the client's mistake, logged
	// at DEBUG (ERROR is for server and key store failures).
	resp, err := c.HTTPClient.Post(srv.URL+"/v1/key/encrypt/obs-a", "application/json", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	done = time.Now()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("encrypt with an invalid body: status %d, want 400", resp.StatusCode)
	}
	timeout := time.After(time.Second - time.Since(done))
wait:
	for {
		select {
		case ev, ok := <-errorEvents:
			if !ok {
				t.Fatal("error stream ended")
			}
			if strings.Contains(ev.Message, "level=DEBUG") && strings.Contains(ev.Message, "invalid request body") &&
				strings.Contains(ev.Message, "req.path=/v1/key/encrypt/obs-a") {
				break wait
			}
			if strings.Contains(ev.Message, "level=ERROR") {
				t.Fatalf("error event at ERROR: %s", ev.Message)
			}
		case <-timeout:
			t.Fatal("no error event for the invalid body within 1s")
		}
	}
	waitAudit("/v1/key/encrypt/obs-a", 400)

	// Metrics: a scrape is not counted, and the counters move by exactly
	// the requests of the test.
	m0, err := c.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	m1, err := c.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	if m1.RequestOK != m0.RequestOK || m1.RequestErr != m0.RequestErr || m1.RequestFail != m0.RequestFail {
		t.Errorf("a scrape moved the counters: %+v → %+v", m0, m1)
	}
	if m0.RequestOK != 1 || m0.RequestErr != 1 {
		t.Errorf("after one create and one bad encrypt: RequestOK %d, RequestErr %d, want 1, 1", m0.RequestOK, m0.RequestErr)
	}
	// 3 × 2xx.
	if err := c.CreateKey(ctx, "obs-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKey(ctx, "obs-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateKey(ctx, "obs-a", nil); err != nil {
		t.Fatal(err)
	}
	// 2 × 4xx.
	if _, err := c.DescribeKey(ctx, "obs-missing"); !errors.Is(err, kes.ErrKeyNotFound) {
		t.Fatalf("DescribeKey(missing) = %v, want %v", err, kes.ErrKeyNotFound)
	}
	if err := c.CreateKey(ctx, "obs-a"); !errors.Is(err, kes.ErrKeyExists) {
		t.Fatalf("CreateKey(exists) = %v, want %v", err, kes.ErrKeyExists)
	}
	// Not counted (docs/monitoring.md#upstream-kes-metrics): a policy denial, and /v1/status.
	if _, err := srv.apiKeyClient(t, strangerKey).DescribeKey(ctx, "obs-a"); !errors.Is(err, kes.ErrNotAllowed) {
		t.Fatalf("stranger DescribeKey = %v, want %v", err, kes.ErrNotAllowed)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	m2, err := c.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	if got := m2.RequestOK - m1.RequestOK; got != 3 {
		t.Errorf("RequestOK moved by %d, want 3", got)
	}
	if got := m2.RequestErr - m1.RequestErr; got != 2 {
		t.Errorf("RequestErr moved by %d, want 2", got)
	}
	if got := m2.RequestFail - m1.RequestFail; got != 0 {
		t.Errorf("RequestFail moved by %d, want 0", got)
	}
	if got := m2.RequestN() - m1.RequestN(); got != 5 {
		t.Errorf("RequestN moved by %d, want 5", got)
	}
	if m2.AuditEvents <= m0.AuditEvents {
		t.Errorf("AuditEvents %d → %d, want it to grow (a subscriber is connected)", m0.AuditEvents, m2.AuditEvents)
	}

	// The OpenKES families are in the same exposition that kms-go just
	// accepted.
	code, b := sendHTTP(t, c, http.MethodGet, srv.URL+"/v1/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/metrics = %d %s", code, b)
	}
	body := string(b)
	for _, want := range []string{
		"kes_policy_denials_total 1\n",
		"kes_keystore_create_errors_total 0\n",
		"kes_cache_offline_hits_total 0\n",
		"kes_tls_handshake_failures_no_certificate_total 0\n",
		"kes_log_audit_dropped_events_total 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/v1/metrics lacks %q", want)
		}
	}
}
