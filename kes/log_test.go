package kes

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// streamServer serves the lines on path as NDJSON, flushing after each,
// and then, if hold is set, keeps the stream open until the client leaves.
func streamServer(t *testing.T, path string, lines []string, hold bool) *Client {
	t.Helper()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.RequestURI != path {
			t.Errorf("request = %s %s, want GET %s", r.Method, r.RequestURI, path)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		for _, l := range lines {
			io.WriteString(w, l+"\n")
			w.(http.Flusher).Flush()
		}
		if hold {
			<-r.Context().Done()
		}
	}))
	return newTestClient(t, srv)
}

// collect returns the events of stream up to its end; it fails t if the
// stream ends with an error.
func collect[E any, S interface {
	Next() bool
	Event() E
	Err() error
}](t *testing.T, stream S) []E {
	t.Helper()
	var events []E
	for stream.Next() {
		events = append(events, stream.Event())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	return events
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	id := string(apiKeyVectors[0].identity)
	lines := []string{
		`{"time":"2026-11-27T12:26:23.047Z","request":{"ip":"127.0.0.1","path":"/v1/key/create/my-key","identity":"` + id + `"},"response":{"code":200,"time":12,"time_ns":12345678}}`,
		``, // blank lines are skipped
		`{"time":"2026-11-27T12:26:24Z","request":{"path":"/v1/key/delete/my-key","method":"DELETE"},"response":{"code":404,"time":0}}`,
		// An upstream server sends whole milliseconds only.
		`{"time":"2026-11-27T12:26:25Z","request":{"path":"/v1/key/create/x"},"response":{"code":200,"time":3}}`,
	}
	c := streamServer(t, "/v1/log/audit", lines, false)
	stream, err := c.AuditLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := collect[AuditEvent](t, stream)
	want := []AuditEvent{
		{
			Time:     time.Date(2026, 11, 27, 12, 26, 23, 47e6, time.UTC),
			Request:  AuditRequest{IP: net.IPv4(127, 0, 0, 1), Path: "/v1/key/create/my-key", Identity: Identity(id)},
			Response: AuditResponse{StatusCode: 200, Time: 12345678 * time.Nanosecond},
		},
		{
			Time:     time.Date(2026, 11, 27, 12, 26, 24, 0, time.UTC),
			Request:  AuditRequest{Path: "/v1/key/delete/my-key", Method: "DELETE"},
			Response: AuditResponse{StatusCode: 404},
		},
		{
			Time:     time.Date(2026, 11, 27, 12, 26, 25, 0, time.UTC),
			Request:  AuditRequest{Path: "/v1/key/create/x"},
			Response: AuditResponse{StatusCode: 200, Time: 3 * time.Millisecond},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if stream.Next() {
		t.Error("Next() after the end = true")
	}

	// Events encode back to the server's format.
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != lines[0] {
		t.Errorf("json.Marshal(event) = %s, want %s", b, lines[0])
	}
}

func TestErrorLog(t *testing.T) {
	t.Parallel()
	lines := []string{
		`{"message":"time=2026-11-27T12:26:23.047Z level=ERROR msg=\"unexpected EOF\" req.method=POST"}`,
		`{"message":"second"}`,
	}
	c := streamServer(t, "/v1/log/error", lines, false)
	stream, err := c.ErrorLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := collect[ErrorEvent](t, stream)
	want := []ErrorEvent{
		{Message: `time=2026-11-27T12:26:23.047Z level=ERROR msg="unexpected EOF" req.method=POST`},
		{Message: "second"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}

func TestLogStreamMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line string
	}{
		{"not JSON", `time=... level=INFO`},
		{"bad response time", `{"response":{"code":200,"time":"12ms"}}`},
		{"too long", `{"request":{"path":"` + strings.Repeat("a", maxLogLine) + `"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := streamServer(t, "/v1/log/audit", []string{`{"response":{"code":200}}`, tt.line}, false)
			stream, err := c.AuditLog(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			if !stream.Next() {
				t.Fatalf("first Next() = false, Err() = %v", stream.Err())
			}
			if stream.Next() {
				t.Fatalf("Next() on %q = true, want false", tt.line)
			}
			if stream.Err() == nil {
				t.Error("Err() = nil, want error")
			}
			if stream.Next() {
				t.Error("Next() after an error = true")
			}
		})
	}
}

func TestLogStreamClose(t *testing.T) {
	t.Parallel()
	c := streamServer(t, "/v1/log/error", []string{`{"message":"one"}`}, true)
	stream, err := c.ErrorLog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !stream.Next() {
		t.Fatalf("Next() = false, Err() = %v", stream.Err())
	}
	done := make(chan bool)
	go func() { done <- stream.Next() }() // blocks: the server holds the stream open
	time.Sleep(50 * time.Millisecond)
	if err := stream.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	select {
	case more := <-done:
		if more {
			t.Error("Next() after Close = true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop a waiting Next")
	}
	if err := stream.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	if err := stream.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

func TestLogStreamForbidden(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonType)
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, kesError("not authorized: insufficient permissions"))
	}))
	c := newTestClient(t, srv)
	if _, err := c.AuditLog(t.Context()); err != ErrNotAllowed {
		t.Errorf("AuditLog = %v, want %v", err, ErrNotAllowed)
	}
	if _, err := c.ErrorLog(t.Context()); err != ErrNotAllowed {
		t.Errorf("ErrorLog = %v, want %v", err, ErrNotAllowed)
	}
}
