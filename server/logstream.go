package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/kes"
	"github.com/prometheus/client_golang/prometheus"
)

// subscriberBuffer is the number of events a log-stream subscriber may
// lag behind before it loses events.
const subscriberBuffer = 64

// hub fans events (complete NDJSON lines) out to the subscribers of one
// log stream. Publishing never blocks: a subscriber whose buffer is full
// loses the event, and the loss is counted on the subscriber.
type hub struct {
	n    atomic.Int32 // number of subscribers: the lock-free "anyone listening?" check
	mu   sync.Mutex
	subs map[*subscriber]struct{}

	// delivered counts events written to subscribers
	// (kes_log_{audit,error}_events). Set once by newMetrics.
	delivered prometheus.Counter
	// dropped counts events lost by subscribers that did not keep up
	// (kes_log_{audit,error}_dropped_events_total). Set once by newMetrics.
	dropped prometheus.Counter
}

type subscriber struct {
	ch      chan []byte
	dropped atomic.Uint64
}

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

// active reports whether anybody listens.
func (h *hub) active() bool { return h.n.Load() > 0 }

// subscribe adds a subscriber, without limit.
func (h *hub) subscribe() *subscriber { return h.trySubscribe(math.MaxInt) }

// trySubscribe adds a subscriber; it returns nil if the hub already has
// max of them.
func (h *hub) trySubscribe(max int) *subscriber {
	sub := &subscriber{ch: make(chan []byte, subscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= max {
		return nil
	}
	h.subs[sub] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	return sub
}

// errTooManyStreams answers a subscription past Limits.LogStreams. It is
// not a KES error (upstream had no limit), so it is defined here rather
// than in the error catalogue.
var errTooManyStreams = kes.NewError(http.StatusServiceUnavailable, "too many log stream subscribers")

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
}

// publish hands line to every subscriber without blocking. line must not
// be modified afterwards.
func (h *hub) publish(line []byte) {
	if !h.active() {
		return
	}
	h.mu.Lock()
	for sub := range h.subs {
		select {
		case sub.ch <- line:
		default:
			sub.dropped.Add(1)
			if h.dropped != nil {
				h.dropped.Inc()
			}
		}
	}
	h.mu.Unlock()
}

// stream serves a log stream (docs/api.md#log-streams): NDJSON events, flushed
// one by one, until the client leaves or the server shuts down.
func (s *Server) stream(rq *request, h *hub) {
	ctx, w, r := rq.ctx, rq.w, rq.r
	st := rq.st
	sub := h.trySubscribe(st.conf.Limits.withDefaults().LogStreams)
	if sub == nil {
		rq.reject(errTooManyStreams)
		return
	}
	defer h.unsubscribe(sub)
	rq.releaseState() // a stream must not keep an old configuration alive

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rq.status = http.StatusOK
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		return
	}
	stop, _ := r.Context().Value(stopKey{}).(chan struct{})
	defer func() {
		if n := sub.dropped.Load(); n > 0 && st.log.Enabled(ctx, slog.LevelWarn) {
			// Logged when the stream ends, never while publishing.
			st.log.LogAttrs(context.Background(), slog.LevelWarn, "log stream subscriber lost events",
				slog.Uint64("lost", n), slog.String(attrPath, r.URL.Path), slog.String(attrIdentity, rq.identity))
		}
	}()
	for {
		select {
		case line := <-sub.ch:
			if _, err := w.Write(line); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			h.delivered.Inc()
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-s.closing:
			return
		}
	}
}

// audit emits the audit record of a finished request to Config.AuditLog
// and to the /v1/log/audit subscribers. It does nothing, and allocates
// nothing, when nobody wants the record.
func (s *Server) audit(r *http.Request, rq *request) {
	st := rq.stAudit
	var handler AuditHandler
	if st != nil {
		handler = st.conf.AuditLog
	}
	stream := s.auditHub.active()
	if handler == nil && !stream {
		return
	}
	if rq.identity == "" {
		// Routes without authentication, and requests the router
		// answered before authentication (redirects, unknown paths,
		// wrong methods), are still audited with the identity of the
		// client certificate (computed once per connection).
		rq.identity, _ = requestIdentity(r)
		if st != nil && rq.identity != "" {
			rq.policy = st.idents[rq.identity]
		}
	}
	latency := time.Since(rq.start)
	now := time.Now
	if st != nil {
		now = st.now
	}
	rec := &AuditRecord{
		Time:     now().Add(-latency),
		Method:   r.Method,
		Path:     r.URL.Path,
		IP:       remoteIP(r.RemoteAddr),
		Identity: rq.identity,
		Policy:   rq.policy,
		Status:   rq.status,
		Latency:  latency,
		Message:  rq.message,
	}
	if rq.rt != nil && keyRoutes[rq.rt.Path] {
		rec.KeyName = rq.resource
	}
	s.emitAudit(r.Context(), st, rec)
}

// emitAudit passes rec to the audit handler of st (if st is not nil) and
// to the /v1/log/audit subscribers.
func (s *Server) emitAudit(ctx context.Context, st *state, rec *AuditRecord) {
	if st != nil && st.conf.AuditLog != nil {
		st.conf.AuditLog.HandleAudit(ctx, rec)
	}
	if s.auditHub.active() {
		line, err := json.Marshal(&api.AuditEvent{
			Time:     rec.Time,
			Request:  api.AuditRequest{IP: rec.IP, Path: rec.Path, Identity: rec.Identity},
			Response: api.AuditResponse{StatusCode: rec.Status, Time: rec.Latency.Milliseconds(), TimeNS: rec.Latency.Nanoseconds()},
		})
		if err == nil {
			s.auditHub.publish(append(line, '\n'))
		}
	}
}

// hubWriter turns the lines of a slog.TextHandler into error events
// {"message":"<line>"} for the /v1/log/error subscribers. slog handlers
// call Write once per complete record.
type hubWriter struct{ h *hub }

func (w hubWriter) Write(p []byte) (int, error) {
	if !w.h.active() {
		return len(p), nil
	}
	line, err := json.Marshal(&api.ErrorEvent{Message: string(bytes.TrimSuffix(p, []byte("\n")))})
	if err == nil {
		w.h.publish(append(line, '\n'))
	}
	return len(p), nil
}

// teeHandler is the error-log handler of a server state: records go to
// the configured logger (inner, nil = discard) and, while somebody
// listens, to the /v1/log/error subscribers. Subscribers get the records
// the configured logger enables (INFO and above when there is none).
type teeHandler struct {
	inner slog.Handler // nil: discard
	text  slog.Handler // formats into the error hub
	hub   *hub
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.inner != nil {
		return h.inner.Enabled(ctx, l)
	}
	return l >= slog.LevelInfo && h.hub.active()
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.hub.active() {
		_ = h.text.Handle(ctx, r)
	}
	if h.inner != nil {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := &teeHandler{text: h.text.WithAttrs(attrs), hub: h.hub}
	if h.inner != nil {
		c.inner = h.inner.WithAttrs(attrs)
	}
	return c
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	c := &teeHandler{text: h.text.WithGroup(name), hub: h.hub}
	if h.inner != nil {
		c.inner = h.inner.WithGroup(name)
	}
	return c
}

// currentHandler forwards to the error log of the Server's current state;
// it serves loggers that outlive an Update (http.Server.ErrorLog).
type currentHandler struct{ s *Server }

func (h currentHandler) handler() slog.Handler { return h.s.state.Load().log.Handler() }

func (h currentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.handler().Enabled(ctx, l)
}

func (h currentHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.handler().Handle(ctx, r)
}

func (h currentHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.handler().WithAttrs(attrs)
}

func (h currentHandler) WithGroup(name string) slog.Handler { return h.handler().WithGroup(name) }
