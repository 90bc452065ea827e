package kes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// maxLogLine is the longest NDJSON line a log stream accepts.
const maxLogLine = 1 << 20

// AuditEvent is one record of a server's audit log.
type AuditEvent struct {
	Time     time.Time     `json:"time"`
	Request  AuditRequest  `json:"request"`
	Response AuditResponse `json:"response"`
}

// AuditRequest describes the request of an audit event.
type AuditRequest struct {
	IP       net.IP   `json:"ip,omitempty"`       // client address
	Method   string   `json:"method,omitempty"`   // HTTP method, if the server sends it
	Path     string   `json:"path"`               // URL path
	Identity Identity `json:"identity,omitempty"` // client identity
}

// AuditResponse describes the response of an audit event.
//
// Its JSON form is the server's: {"code":<status>,"time":<milliseconds>},
// plus "time_ns" with the time in nanoseconds from OpenKES servers, which
// decoding prefers: most requests take well under a millisecond.
type AuditResponse struct {
	StatusCode int           // HTTP status
	Time       time.Duration // time the server took to respond
}

type auditResponseJSON struct {
	StatusCode int         `json:"code"`
	Time       json.Number `json:"time"`
	TimeNS     json.Number `json:"time_ns,omitempty"`
}

// MarshalJSON encodes the response as an OpenKES server does: the time in
// whole milliseconds and in nanoseconds. It never fails.
func (r AuditResponse) MarshalJSON() ([]byte, error) {
	v := auditResponseJSON{StatusCode: r.StatusCode, Time: numberOf(r.Time, time.Millisecond)}
	if r.Time != 0 {
		v.TimeNS = numberOf(r.Time, time.Nanosecond)
	}
	return json.Marshal(v)
}

// UnmarshalJSON decodes the server's format, reading the time as
// milliseconds. It returns an error for malformed JSON or an out-of-range
// time.
func (r *AuditResponse) UnmarshalJSON(b []byte) error {
	var v auditResponseJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	d, err := durationOf(v.Time, time.Millisecond)
	if v.TimeNS != "" {
		d, err = durationOf(v.TimeNS, time.Nanosecond)
	}
	if err != nil {
		return fmt.Errorf("kes: invalid response time: %w", err)
	}
	*r = AuditResponse{StatusCode: v.StatusCode, Time: d}
	return nil
}

// ErrorEvent is one record of a server's error log.
type ErrorEvent struct {
	Message string `json:"message"` // one log line, without trailing newline
}

// AuditLog subscribes to the server's audit log (GET /v1/log/audit). The
// returned stream yields events until the server ends it, ctx ends or the
// stream is closed; the caller must close it. AuditLog returns the errors
// described at [Client] when the subscription fails.
func (c *Client) AuditLog(ctx context.Context) (*AuditStream, error) {
	return subscribe[AuditEvent](ctx, c, "/v1/log/audit")
}

// ErrorLog subscribes to the server's error log (GET /v1/log/error), like
// [Client.AuditLog].
func (c *Client) ErrorLog(ctx context.Context) (*ErrorStream, error) {
	return subscribe[ErrorEvent](ctx, c, "/v1/log/error")
}

// subscribe opens the log stream at path.
func subscribe[E any](ctx context.Context, c *Client, path string) (*EventStream[E], error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, accept: "application/x-ndjson"})
	if err != nil {
		return nil, err
	}
	return &EventStream[E]{s: newStream(resp.Body)}, nil
}

// AuditStream is the stream of [Client.AuditLog].
type AuditStream = EventStream[AuditEvent]

// ErrorStream is the stream of [Client.ErrorLog].
type ErrorStream = EventStream[ErrorEvent]

// EventStream is a stream of log events of type E:
//
//	for stream.Next() {
//		event := stream.Event()
//		// ...
//	}
//	if err := stream.Err(); err != nil {
//		// ...
//	}
//
// Next and Event must not be called concurrently; Close may be called at
// any time, also to stop a Next that waits for the next event.
type EventStream[E any] struct {
	s     *stream
	event E
}

// Next reads the next event and reports whether there is one. It returns
// false at the end of the stream, after Close and on an error, which Err
// then returns.
func (s *EventStream[E]) Next() bool {
	var e E
	if !s.s.next(&e) {
		return false
	}
	s.event = e
	return true
}

// Event returns the event read by the last successful call of Next.
func (s *EventStream[E]) Event() E { return s.event }

// Err returns the error that ended the stream: a transport error or an
// error starting with "kes: " for an event that cannot be decoded. The end
// of the stream and Close are not errors.
func (s *EventStream[E]) Err() error { return s.s.err }

// Close ends the stream and releases its connection. Only the first call
// has an effect; it returns the error of closing the response body.
func (s *EventStream[E]) Close() error { return s.s.close() }

// stream reads NDJSON values from a response body.
type stream struct {
	body    io.ReadCloser
	scanner *bufio.Scanner
	err     error
	closed  atomic.Bool
}

func newStream(body io.ReadCloser) *stream {
	s := bufio.NewScanner(body)
	s.Buffer(make([]byte, 0, 4096), maxLogLine)
	return &stream{body: body, scanner: s}
}

// next decodes the next non-empty line into v.
func (s *stream) next(v any) bool {
	if s.err != nil || s.closed.Load() {
		return false
	}
	for s.scanner.Scan() {
		line := bytes.TrimSpace(s.scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, v); err != nil {
			s.err = fmt.Errorf("kes: invalid log event: %w", err)
			return false
		}
		return true
	}
	if err := s.scanner.Err(); err != nil && !s.closed.Load() {
		s.err = fmt.Errorf("kes: reading log stream: %w", err)
	}
	return false
}

func (s *stream) close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.body.Close()
}
