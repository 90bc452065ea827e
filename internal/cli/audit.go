package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/openkes/openkes/server"
)

// The audit log of 'kes server' has two sinks:
//
//   - stdout: one slog text line per request, in the format of upstream
//     KES, printed when log.audit lets INFO through;
//   - log.audit_file, if set: one JSON object per request and line,
//     written whatever log.audit says, and reopened on SIGHUP so that
//     the file can be rotated by renaming it.
//
// Both sinks buffer records for at most auditFlushInterval, because a
// write(2) per request is a noticeable part of a fast request's cost. A
// crash can thus lose the records of the last ~100 ms; log.audit_sync
// writes every record at once instead. Whichever way, every write(2)
// holds whole lines only, so a reader never sees half a record.
//
// An audit record carries no key material (names, identities, status,
// timing and a message only), and the formats below print only the
// fields they list.

const (
	// auditFlushInterval is how long an audit record may wait in the
	// buffer before it is written.
	auditFlushInterval = 100 * time.Millisecond

	// auditBufferSize is the size at which the buffer is written out
	// before the interval has passed.
	auditBufferSize = 64 << 10

	// auditFileMode is the permission of a new audit file: audit records
	// name identities and keys, which is nobody else's business.
	auditFileMode = 0o600
)

// auditLog is the server's AuditHandler.
type auditLog struct {
	level  *slog.LevelVar // of the stdout sink
	stdout *lineWriter
	text   slog.Handler // writes to stdout

	file *lineWriter // never nil; its writer is nil while no file is set
	path string      // of the file; only used by the goroutine of runServer

	// onError reports a failed write, once per sink until a write to
	// that sink succeeds again.
	onError func(sink string, err error)
}

var _ server.AuditHandler = (*auditLog)(nil)

// newAuditLog returns an audit log that writes text lines to stdout when
// level lets INFO through, and no file. Close it to write what is
// buffered.
func newAuditLog(stdout io.Writer, level *slog.LevelVar, onError func(sink string, err error)) *auditLog {
	a := &auditLog{level: level, onError: onError}
	a.stdout = &lineWriter{w: stdout, interval: auditFlushInterval, onError: func(err error) { a.reportError("stdout", err) }}
	a.file = &lineWriter{interval: auditFlushInterval, onError: func(err error) { a.reportError("file", err) }}
	a.text = slog.NewTextHandler(a.stdout, &slog.HandlerOptions{Level: level})
	return a
}

func (a *auditLog) reportError(sink string, err error) {
	if a.onError != nil {
		a.onError(sink, err)
	}
}

// HandleAudit implements server.AuditHandler.
func (a *auditLog) HandleAudit(ctx context.Context, r *server.AuditRecord) {
	if a.level.Level() <= slog.LevelInfo {
		// The text handler writes each record with a single Write.
		a.text.Handle(ctx, auditTextRecord(r))
	}
	if a.file.active() {
		a.file.Write(auditJSONLine(r))
	}
}

// setSync switches both sinks between buffered and write-through.
func (a *auditLog) setSync(sync bool) {
	a.stdout.setSync(sync)
	a.file.setSync(sync)
}

// openAuditFile opens the audit file at path, for appending, creating it if
// need be. An empty path means no file.
func openAuditFile(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, auditFileMode)
	if err != nil {
		return nil, fmt.Errorf("log.audit_file: %w", err)
	}
	return f, nil
}

// useFile makes the file at path (none if empty) the audit file. On
// error the previous file stays in use.
func (a *auditLog) useFile(path string) error {
	f, err := openAuditFile(path)
	if err != nil {
		return err
	}
	a.setFile(f)
	a.path = path
	return nil
}

// reopen closes and reopens the audit file, which may have been renamed
// for rotation. If the path cannot be opened, records keep going to the
// file that is open, which is better than dropping them.
func (a *auditLog) reopen() error {
	return a.useFile(a.path)
}

// setFile makes f (nil for none) the audit file, after writing what is
// buffered to the previous one, which it closes. The swap happens under
// the writer's lock, so a record goes entirely to one file or the other.
func (a *auditLog) setFile(f *os.File) {
	var w io.Writer
	if f != nil {
		w = f
	}
	if old := a.file.swap(w); old != nil {
		old.(*os.File).Close()
	}
}

// Flush writes what is buffered.
func (a *auditLog) Flush() {
	a.stdout.Flush()
	a.file.Flush()
}

// Close writes what is buffered and closes the audit file.
func (a *auditLog) Close() {
	a.stdout.Flush()
	a.setFile(nil)
}

// auditMessage is the message of a record: its own, or else the status
// text ("OK"), since the server sets one only for key creation, import
// and deletion and for errors.
func auditMessage(r *server.AuditRecord) string {
	if r.Message != "" {
		return r.Message
	}
	if t := http.StatusText(r.Status); t != "" {
		return t
	}
	return fmt.Sprintf("status %d", r.Status)
}

// auditTextRecord returns the slog record of the stdout line:
//
//	time=2026-11-27T12:26:23.047Z level=INFO msg="secret key 'my-key' created" req.method=POST req.path=/v1/key/create/my-key req.ip=127.0.0.1 req.identity=53ec…c3d2 res.code=200 res.time=444.47µs req.key=my-key req.policy=app
//
// Up to res.time this is the line of upstream KES, attribute for
// attribute and in the same order, so that parsers written for it keep
// working; req.key and req.policy, which upstream does not print, come
// last and only when set. As upstream, req.ip and req.identity are left
// out when empty.
func auditTextRecord(r *server.AuditRecord) slog.Record {
	rec := slog.NewRecord(r.Time, slog.LevelInfo, auditMessage(r), 0)
	req := make([]any, 0, 4)
	req = append(req, slog.String("method", r.Method), slog.String("path", r.Path))
	if r.IP != "" {
		req = append(req, slog.String("ip", r.IP))
	}
	if r.Identity != "" {
		req = append(req, slog.String("identity", r.Identity))
	}
	rec.AddAttrs(
		slog.Group("req", req...),
		slog.Group("res", slog.Int("code", r.Status), slog.Duration("time", r.Latency.Round(10*time.Nanosecond))),
	)
	var extra []any
	if r.KeyName != "" {
		extra = append(extra, slog.String("key", r.KeyName))
	}
	if r.Policy != "" {
		extra = append(extra, slog.String("policy", r.Policy))
	}
	if len(extra) > 0 {
		rec.AddAttrs(slog.Group("req", extra...))
	}
	return rec
}

// auditJSON is one line of the audit file. Every field is always
// present, so that the schema does not depend on the request. Latency is
// in milliseconds, as a float with nanosecond resolution.
type auditJSON struct {
	Time      string  `json:"time"` // RFC 3339 with nanoseconds, UTC
	Method    string  `json:"method"`
	Path      string  `json:"path"`
	Key       string  `json:"key"`
	IP        string  `json:"ip"`
	Identity  string  `json:"identity"`
	Policy    string  `json:"policy"`
	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Message   string  `json:"message"`
}

// auditJSONLine returns the line of r in the audit file, with its
// newline.
func auditJSONLine(r *server.AuditRecord) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep paths and messages readable
	// Encoding a struct of strings and numbers cannot fail; invalid
	// UTF-8 becomes U+FFFD, so the line is always valid JSON.
	enc.Encode(&auditJSON{
		Time:      r.Time.UTC().Format(time.RFC3339Nano),
		Method:    r.Method,
		Path:      r.Path,
		Key:       r.KeyName,
		IP:        r.IP,
		Identity:  r.Identity,
		Policy:    r.Policy,
		Status:    r.Status,
		LatencyMS: float64(r.Latency) / float64(time.Millisecond),
		Message:   auditMessage(r),
	})
	return b.Bytes() // Encode ends it with '\n'
}

// lineWriter buffers whole lines for an io.Writer and writes them at
// most interval later, or at once in sync mode. Each Write
// must be one or more whole lines; each write to the underlying writer
// is too. It is safe for concurrent use.
type lineWriter struct {
	mu       sync.Mutex
	w        io.Writer // nil: lines are dropped
	buf      []byte
	sync     bool
	interval time.Duration // set before the first Write
	timer    *time.Timer
	armed    bool // timer will flush
	failed   bool // the last write failed and was reported
	onError  func(error)
}

// active reports whether lines go anywhere.
func (l *lineWriter) active() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w != nil
}

// Write implements io.Writer. It never fails: an audit record that
// cannot be written must not fail the request it describes; failures go
// to onError.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.w == nil:
	case l.sync || len(p) >= auditBufferSize:
		l.flushLocked()
		l.writeLocked(p)
	default:
		if len(l.buf)+len(p) > auditBufferSize {
			l.flushLocked()
		}
		l.buf = append(l.buf, p...)
		if !l.armed {
			l.armed = true
			if l.timer == nil {
				l.timer = time.AfterFunc(l.interval, l.timerFlush)
			} else {
				l.timer.Reset(l.interval)
			}
		}
	}
	return len(p), nil
}

func (l *lineWriter) timerFlush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	l.flushLocked()
}

// Flush writes what is buffered.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *lineWriter) flushLocked() {
	if len(l.buf) == 0 {
		return
	}
	l.writeLocked(l.buf)
	l.buf = l.buf[:0]
}

func (l *lineWriter) writeLocked(p []byte) {
	if l.w == nil {
		return
	}
	_, err := l.w.Write(p)
	switch {
	case err != nil && !l.failed:
		l.failed = true
		if l.onError != nil {
			l.onError(err)
		}
	case err == nil:
		l.failed = false
	}
}

// setSync switches between buffered and write-through mode.
func (l *lineWriter) setSync(sync bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sync = sync
	if sync {
		l.flushLocked()
	}
}

// swap writes what is buffered to the current writer, then replaces it
// by w and returns the previous one.
func (l *lineWriter) swap(w io.Writer) (old io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	old, l.w, l.failed = l.w, w, false
	return old
}
