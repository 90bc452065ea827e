package server

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// openStream starts a log stream and returns its lines on a channel that
// is closed when the stream ends.
func openStream(t *testing.T, e *env, path string) <-chan string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.client(t, e.admin).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%s: %s %q", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The subscription is registered before the headers are sent.
	return lines
}

// waitLine returns the first line for which match is true.
func waitLine(t *testing.T, lines <-chan string, match func(string) bool) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if match(l) {
				return l
			}
		case <-timeout:
			t.Fatal("timeout waiting for a log event")
		}
	}
}

func TestAuditStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lines := openStream(t, e, "/v1/log/audit")
	do(t, e.client(t, e.user), "GET", e.url("/v1/key/describe/my-app-nope"), "").want(t, 404)
	line := waitLine(t, lines, func(l string) bool { return strings.Contains(l, "my-app-nope") })

	var ev api.AuditEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	if ev.Request.Path != "/v1/key/describe/my-app-nope" || ev.Request.IP != "127.0.0.1" ||
		ev.Request.Identity != e.user.Identity() || ev.Response.StatusCode != 404 || time.Since(ev.Time) > time.Minute {
		t.Errorf("audit event = %+v", ev)
	}
	if !strings.HasPrefix(line, `{"time":"`) || !strings.Contains(line, `"response":{"code":404,"time":`) {
		t.Errorf("audit line = %s", line)
	}
}

func TestErrorStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lines := openStream(t, e, "/v1/log/error")
	do(t, e.client(t, e.admin), "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)
	do(t, e.client(t, e.admin), "POST", e.url("/v1/key/decrypt/k"), "{").want(t, 400)
	// A malformed body is the client's mistake: DEBUG, not ERROR, with
	// the request attributes under req (as upstream: req.path=...).
	line := waitLine(t, lines, func(l string) bool { return strings.Contains(l, "invalid request body") })
	var ev api.ErrorEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	if strings.Contains(ev.Message, "\n") || !strings.Contains(ev.Message, "level=DEBUG") ||
		!strings.Contains(ev.Message, "req.method=POST req.path=/v1/key/decrypt/k req.ip=127.0.0.1 req.identity="+e.admin.Identity()) {
		t.Errorf("error event = %q", ev.Message)
	}
	if strings.Contains(e.errLog.String(), "level=ERROR") {
		t.Errorf("a client's malformed body was logged at ERROR:\n%s", e.errLog)
	}
}

// TestStalledSubscriber checks that a subscriber that never reads neither
// blocks requests nor the other subscribers, and that events delivered to
// subscribers are counted.
func TestStalledSubscriber(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// A raw HTTP/1.1 stream request whose response is never read.
	conn, err := tls.Dial("tcp", e.addr, e.clientTLS(e.admin))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/log/audit HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	live := openStream(t, e, "/v1/log/audit")
	// And a subscriber inside the server that never receives.
	stalled := e.srv.auditHub.subscribe()
	defer e.srv.auditHub.unsubscribe(stalled)
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.auditHub.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("subscribers not registered")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Drain the live stream concurrently.
	var got sync.WaitGroup
	got.Add(1)
	seen := 0
	go func() {
		defer got.Done()
		for l := range live {
			if strings.Contains(l, "/v1/key/describe/") {
				seen++
				if seen == 50 {
					return
				}
			}
		}
	}()

	c := e.client(t, e.admin)
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				do(t, c, "GET", e.url("/v1/key/describe/x"), "").want(t, 404)
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("2000 requests with a stalled subscriber took %v", d)
	}
	got.Wait()

	if stalled.dropped.Load() == 0 {
		t.Error("no events dropped although one subscriber never reads")
	}
	if n := testCounterValue(e.srv.metrics.auditEvents); n < 50 {
		t.Errorf("kes_log_audit_events = %v, want >= 50", n)
	}
}

// TestStreamsEndOnClose checks that log streams end when the server
// shuts down instead of holding the graceful shutdown up.
func TestStreamsEndOnClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lines := openStream(t, e, "/v1/log/error")
	start := time.Now()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if d := time.Since(start); d > shutdownGrace {
		t.Errorf("Close with an open stream took %v", d)
	}
}

func testCounterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestLogStreamLimit checks that each stream takes at most
// Limits.LogStreams subscribers, answers the next with 503 and a KES
// error body, and takes a new one when a subscriber left.
func TestLogStreamLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Limits.LogStreams = 2 })
	for _, path := range []string{"/v1/log/audit", "/v1/log/error"} {
		t.Run(path, func(t *testing.T) {
			h := e.srv.auditHub
			if path == "/v1/log/error" {
				h = e.srv.errorHub
			}
			first := h.subscribe()
			openStream(t, e, path)
			r := do(t, e.client(t, e.admin), "GET", e.url(path), "")
			r.want(t, http.StatusServiceUnavailable)
			if got, want := string(r.body), "{\"message\":\"too many log stream subscribers\"\n}"; got != want {
				t.Errorf("GET %s past the limit: body %q, want %q", path, got, want)
			}
			h.unsubscribe(first)
			openStream(t, e, path)
		})
	}
}
