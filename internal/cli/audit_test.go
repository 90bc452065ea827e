package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openkes/openkes/server"
)

var auditTime = time.Date(2026, 11, 27, 12, 26, 23, 47_123_456, time.UTC)

const testIdentity = "53ec8e0b2b1fd8ee7d1c2e2ab6a0a6a6c3f5f9fe4bd3b0e3a4f2e6d1c0b9c3d2"

// recordingWriter records every Write call.
type recordingWriter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *recordingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(bytes.Join(w.writes, nil))
}

func (w *recordingWriter) calls() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

// newTestAuditLog returns an audit log in sync mode writing text to the
// returned writer, with stdout level INFO.
func newTestAuditLog(t *testing.T) (*auditLog, *recordingWriter) {
	t.Helper()
	out := new(recordingWriter)
	a := newAuditLog(out, new(slog.LevelVar), func(sink string, err error) { t.Errorf("audit %s: %v", sink, err) })
	a.setSync(true)
	t.Cleanup(a.Close)
	return a, out
}

func TestAuditTextLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  server.AuditRecord
		want string
	}{
		{
			name: "upstream record",
			rec: server.AuditRecord{
				Time: auditTime, Method: "POST", Path: "/v1/key/create/my-key", IP: "127.0.0.1", Identity: testIdentity,
				Status: 200, Latency: 444470 * time.Nanosecond, Message: "secret key 'my-key' created",
			},
			want: `time=2026-11-27T12:26:23.047Z level=INFO msg="secret key 'my-key' created" req.method=POST req.path=/v1/key/create/my-key req.ip=127.0.0.1 req.identity=` + testIdentity + " res.code=200 res.time=444.47µs\n",
		},
		{
			name: "key and policy",
			rec: server.AuditRecord{
				Time: auditTime, Method: "POST", Path: "/v1/key/decrypt/app-key", IP: "::1", Identity: testIdentity,
				Policy: "my-app", KeyName: "app-key", Status: 200, Latency: 1234567 * time.Nanosecond,
			},
			want: `time=2026-11-27T12:26:23.047Z level=INFO msg=OK req.method=POST req.path=/v1/key/decrypt/app-key req.ip=::1 req.identity=` + testIdentity + " res.code=200 res.time=1.23457ms req.key=app-key req.policy=my-app\n",
		},
		{
			name: "anonymous error",
			rec: server.AuditRecord{
				Time: auditTime, Method: "GET", Path: "/v1/key/describe/a b\"c", Status: 403, Latency: 15 * time.Microsecond,
				Message: "not authorized: insufficient permissions",
			},
			want: `time=2026-11-27T12:26:23.047Z level=INFO msg="not authorized: insufficient permissions" req.method=GET req.path="/v1/key/describe/a b\"c" res.code=403 res.time=15µs` + "\n",
		},
		{
			name: "unknown status, no message",
			rec:  server.AuditRecord{Time: auditTime, Method: "GET", Path: "/version", IP: "10.0.0.1", Status: 299},
			want: "time=2026-11-27T12:26:23.047Z level=INFO msg=\"status 299\" req.method=GET req.path=/version req.ip=10.0.0.1 res.code=299 res.time=0s\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, out := newTestAuditLog(t)
			a.HandleAudit(t.Context(), &tt.rec)
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("HandleAudit(%+v) stdout mismatch (-want +got):\n%s", tt.rec, diff)
			}
			if n := len(out.calls()); n != 1 {
				t.Errorf("HandleAudit wrote %d times to stdout, want 1", n)
			}
		})
	}
}

// auditJSONKeys are the fields of an audit file line: no more, so that a
// field added to server.AuditRecord shows up in the file only after
// someone has decided that it may.
var auditJSONKeys = []string{"identity", "ip", "key", "latency_ms", "message", "method", "path", "policy", "status", "time"}

func TestAuditJSONLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  server.AuditRecord
		want map[string]any
	}{
		{
			name: "full",
			rec: server.AuditRecord{
				Time: auditTime.In(time.FixedZone("CET", 3600)), Method: "POST", Path: "/v1/key/create/my-key", IP: "127.0.0.1",
				Identity: testIdentity, Policy: "my-app", KeyName: "my-key", Status: 200, Latency: 1500 * time.Microsecond,
				Message: "secret key 'my-key' created",
			},
			want: map[string]any{
				"time": "2026-11-27T12:26:23.047123456Z", "method": "POST", "path": "/v1/key/create/my-key", "key": "my-key",
				"ip": "127.0.0.1", "identity": testIdentity, "policy": "my-app", "status": 200.0, "latency_ms": 1.5,
				"message": "secret key 'my-key' created",
			},
		},
		{
			name: "empty fields are present",
			rec:  server.AuditRecord{Time: auditTime, Method: "GET", Path: "/v1/key/list/<a&b>", Status: 404, Latency: 42},
			want: map[string]any{
				"time": "2026-11-27T12:26:23.047123456Z", "method": "GET", "path": "/v1/key/list/<a&b>", "key": "",
				"ip": "", "identity": "", "policy": "", "status": 404.0, "latency_ms": 0.000042, "message": "Not Found",
			},
		},
		{
			name: "invalid UTF-8 still valid JSON",
			rec:  server.AuditRecord{Time: auditTime, Method: "GET", Path: "/v1/key/describe/\xff\n", Status: 400, Message: "bad \"name\"\n"},
			want: map[string]any{
				"time": "2026-11-27T12:26:23.047123456Z", "method": "GET", "path": "/v1/key/describe/\ufffd\n", "key": "",
				"ip": "", "identity": "", "policy": "", "status": 400.0, "latency_ms": 0.0, "message": "bad \"name\"\n",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := auditJSONLine(&tt.rec)
			if bytes.Count(line, []byte("\n")) != 1 || !bytes.HasSuffix(line, []byte("\n")) {
				t.Fatalf("auditJSONLine() = %q, want one line ending in a newline", line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("auditJSONLine() = %q: %v", line, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("auditJSONLine() mismatch (-want +got):\n%s", diff)
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range got {
					if !yield(k) {
						return
					}
				}
			})
			if !slices.Equal(keys, auditJSONKeys) {
				t.Errorf("auditJSONLine() keys = %q, want %q", keys, auditJSONKeys)
			}
		})
	}
}

// TestAuditRecordHasNoKeyMaterial guards the promise that audit sinks
// cannot leak keys: an audit record holds only strings, numbers and
// times. A field that could hold key bytes (a []byte, an array, a
// struct such as crypto.SecretKey) fails this test.
func TestAuditRecordHasNoKeyMaterial(t *testing.T) {
	t.Parallel()
	allowed := map[reflect.Type]bool{
		reflect.TypeFor[string]():        true,
		reflect.TypeFor[int]():           true,
		reflect.TypeFor[time.Time]():     true,
		reflect.TypeFor[time.Duration](): true,
	}
	typ := reflect.TypeFor[server.AuditRecord]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !allowed[f.Type] {
			t.Errorf("server.AuditRecord.%s has type %v: audit records must hold only strings, ints, times and durations", f.Name, f.Type)
		}
		if name := strings.ToLower(f.Name); f.Type.Kind() == reflect.String && name != "keyname" && (strings.Contains(name, "key") ||
			strings.Contains(name, "secret") || strings.Contains(name, "plaintext") || strings.Contains(name, "token")) {
			t.Errorf("server.AuditRecord.%s: the name suggests secret data", f.Name)
		}
	}

	// Even a record with a secret-looking message only prints the fields
	// of the formats: nothing is derived from anything else.
	secret := "c2VjcmV0LWtleS1ieXRlcw=="
	a, out := newTestAuditLog(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := a.useFile(path); err != nil {
		t.Fatal(err)
	}
	a.HandleAudit(t.Context(), &server.AuditRecord{Time: auditTime, Method: "POST", Path: "/v1/key/import/k", KeyName: "k", Status: 200})
	a.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for sink, s := range map[string]string{"stdout": out.String(), "file": string(data)} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains %q", sink, secret)
		}
	}
}

// TestAuditLevelAndFile checks that log.audit governs stdout only, and
// that the file is written whatever it says.
func TestAuditLevelAndFile(t *testing.T) {
	t.Parallel()
	a, out := newTestAuditLog(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := a.useFile(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	rec := &server.AuditRecord{Time: auditTime, Method: "GET", Path: "/v1/status", Status: 200}
	a.HandleAudit(t.Context(), rec)
	a.level.Set(slog.LevelError + 1) // log.audit: off
	a.HandleAudit(t.Context(), rec)
	a.level.Set(slog.LevelWarn)
	a.HandleAudit(t.Context(), rec)
	a.Close()
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("stdout has %d lines, want 1 (the record before log.audit: off):\n%s", n, out)
	}
	if n := len(readJSONLines(t, path)); n != 3 {
		t.Errorf("audit file has %d lines, want 3", n)
	}
}

// TestAuditBuffering checks that buffered records are written on
// Flush, on Close, and when the flush interval has passed, and that each
// write holds whole lines.
func TestAuditBuffering(t *testing.T) {
	t.Parallel()
	rec := &server.AuditRecord{Time: auditTime, Method: "GET", Path: "/v1/status", Status: 200}

	out := new(recordingWriter)
	a := newAuditLog(out, new(slog.LevelVar), nil)
	a.stdout.interval = time.Hour // only Flush and Close write
	for range 3 {
		a.HandleAudit(t.Context(), rec)
	}
	if s := out.String(); s != "" {
		t.Fatalf("buffered records written at once: %q", s)
	}
	a.Flush()
	if calls := out.calls(); len(calls) != 1 || bytes.Count(calls[0], []byte("\n")) != 3 {
		t.Fatalf("after Flush: writes %q, want one write of 3 lines", calls)
	}
	a.HandleAudit(t.Context(), rec)
	a.Close()
	if calls := out.calls(); len(calls) != 2 || bytes.Count(calls[1], []byte("\n")) != 1 {
		t.Fatalf("after Close: writes %q, want a second write of 1 line", calls)
	}

	out = new(recordingWriter)
	a = newAuditLog(out, new(slog.LevelVar), nil)
	a.stdout.interval = 20 * time.Millisecond
	for range 2 {
		a.HandleAudit(t.Context(), rec)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("after the flush interval: %d lines written, want 2", n)
	}
	for _, c := range out.calls() {
		if !bytes.HasSuffix(c, []byte("\n")) {
			t.Errorf("write %q does not end with a whole line", c)
		}
	}
}

// TestAuditBufferLimit checks that a full buffer is written before the
// interval has passed, in writes of whole lines.
func TestAuditBufferLimit(t *testing.T) {
	t.Parallel()
	out := new(recordingWriter)
	a := newAuditLog(out, new(slog.LevelVar), nil)
	a.stdout.interval = time.Hour
	rec := &server.AuditRecord{Time: auditTime, Method: "GET", Path: "/v1/key/describe/" + strings.Repeat("k", 200), Status: 200}
	const n = 1000 // about 300 KiB of lines
	for range n {
		a.HandleAudit(t.Context(), rec)
	}
	calls := out.calls()
	if len(calls) == 0 {
		t.Fatal("nothing written although the buffer is full")
	}
	for _, c := range calls {
		if len(c) > auditBufferSize || !bytes.HasSuffix(c, []byte("\n")) {
			t.Errorf("write of %d bytes, want at most %d bytes of whole lines", len(c), auditBufferSize)
		}
	}
	a.Close()
	if got := strings.Count(out.String(), "\n"); got != n {
		t.Errorf("%d lines written, want %d", got, n)
	}
}

// TestAuditRotation renames the audit file and reopens it while records
// are written concurrently: every record ends up, whole, in exactly one
// of the two files, and those after the reopen in the new one.
func TestAuditRotation(t *testing.T) {
	t.Parallel()
	for _, syncMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", syncMode), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, rotated := filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.1")
			a := newAuditLog(new(recordingWriter), new(slog.LevelVar), func(sink string, err error) { t.Errorf("audit %s: %v", sink, err) })
			a.setSync(syncMode)
			if err := a.useFile(path); err != nil {
				t.Fatal(err)
			}
			const writers, perWriter = 8, 300
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range perWriter {
						a.HandleAudit(t.Context(), &server.AuditRecord{
							Time: time.Now(), Method: "GET", Path: fmt.Sprintf("/v1/key/describe/w%d-%d", w, i), Status: 200,
						})
					}
				})
			}
			time.Sleep(time.Millisecond)
			if err := os.Rename(path, rotated); err != nil {
				t.Fatal(err)
			}
			if err := a.reopen(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			a.HandleAudit(t.Context(), &server.AuditRecord{Time: time.Now(), Method: "GET", Path: "/after", Status: 200})
			a.Close()

			seen := map[string]int{}
			oldLines, newLines := readJSONLines(t, rotated), readJSONLines(t, path)
			for _, l := range append(oldLines, newLines...) {
				seen[l["path"].(string)]++
			}
			if len(seen) != writers*perWriter+1 {
				t.Errorf("%d distinct records in the files, want %d", len(seen), writers*perWriter+1)
			}
			for p, n := range seen {
				if n != 1 {
					t.Errorf("record %s written %d times", p, n)
				}
			}
			if len(newLines) == 0 || newLines[len(newLines)-1]["path"] != "/after" {
				t.Errorf("the record after the reopen is not last in the new file")
			}
		})
	}
}

// readJSONLines reads a file of JSON lines; every line must be a whole
// JSON object.
func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s does not end with a newline", path)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("%s: invalid line %q: %v", path, sc.Text(), err)
			continue
		}
		lines = append(lines, m)
	}
	return lines
}

// BenchmarkAudit measures the cost of an audit record per request: both
// sinks buffered (the default), and both written at once (audit_sync).
func BenchmarkAudit(b *testing.B) {
	for _, syncMode := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", syncMode), func(b *testing.B) {
			dir := b.TempDir()
			stdout, err := os.Create(filepath.Join(dir, "stdout"))
			if err != nil {
				b.Fatal(err)
			}
			defer stdout.Close()
			a := newAuditLog(stdout, new(slog.LevelVar), nil)
			a.setSync(syncMode)
			if err := a.useFile(filepath.Join(dir, "audit.log")); err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			rec := &server.AuditRecord{
				Time: time.Now(), Method: "POST", Path: "/v1/key/decrypt/my-key", IP: "127.0.0.1", Identity: testIdentity,
				Policy: "my-app", KeyName: "my-key", Status: 200, Latency: 123 * time.Microsecond,
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					a.HandleAudit(context.Background(), rec)
				}
			})
		})
	}
}
