package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"sync"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/h1"
	"github.com/openkes/openkes/kes"
)

// handlerFunc serves one route: rq carries the request, its context (with
// the route timeout), the response writer, the state, the identity and the
// resource argument.
type handlerFunc func(s *Server, rq *request)

// route is a route of one server state: the api.Route with the
// configuration's overrides applied, plus its handler.
type route struct {
	api.Route
	handle handlerFunc
}

// handlers maps every route path of api.Routes to its handler.
var handlers = map[string]handlerFunc{
	api.PathVersion:          (*Server).handleVersion,
	api.PathReady:            (*Server).handleReady,
	api.PathStatus:           (*Server).handleStatus,
	api.PathMetrics:          (*Server).handleMetrics,
	api.PathAPI:              (*Server).handleAPI,
	api.PathKeyCreate:        (*Server).handleCreateKey,
	api.PathKeyImport:        (*Server).handleImportKey,
	api.PathKeyDescribe:      (*Server).handleDescribeKey,
	api.PathKeyList:          (*Server).handleListKeys,
	api.PathKeyDelete:        (*Server).handleDeleteKey,
	api.PathKeyGenerate:      (*Server).handleGenerateKey,
	api.PathKeyEncrypt:       (*Server).handleEncrypt,
	api.PathKeyDecrypt:       (*Server).handleDecrypt,
	api.PathKeyHMAC:          (*Server).handleHMAC,
	api.PathPolicyDescribe:   (*Server).handleDescribePolicy,
	api.PathPolicyRead:       (*Server).handleReadPolicy,
	api.PathPolicyList:       (*Server).handleListPolicies,
	api.PathIdentityDescribe: (*Server).handleDescribeIdentity,
	api.PathIdentityList:     (*Server).handleListIdentities,
	api.PathIdentitySelf:     (*Server).handleSelfDescribe,
	api.PathLogError:         (*Server).handleErrorLog,
	api.PathLogAudit:         (*Server).handleAuditLog,
	api.PathKeyRotate:        (*Server).handleRotateKey,
	api.PathKeyRewrap:        (*Server).handleRewrapKey,
	api.PathKeyRestore:       (*Server).handleRestoreKey,
}

// keyRoutes are the routes whose resource is a key name (for audit).
var keyRoutes = map[string]bool{
	api.PathKeyCreate: true, api.PathKeyImport: true, api.PathKeyDescribe: true,
	api.PathKeyDelete: true, api.PathKeyGenerate: true, api.PathKeyEncrypt: true,
	api.PathKeyDecrypt: true, api.PathKeyHMAC: true,
	api.PathKeyRotate: true, api.PathKeyRewrap: true, api.PathKeyRestore: true,
}

// buildRoutes returns the route table with the overrides of conf applied:
// a Timeout > 0 replaces the default, SkipAuth turns verification into
// identify-only.
func buildRoutes(conf map[string]RouteConfig) []route {
	defaults := api.AllRoutes()
	routes := make([]route, len(defaults))
	for i, r := range defaults {
		if rc, ok := conf[r.Path]; ok {
			if rc.Timeout > 0 {
				r.Timeout = rc.Timeout
			}
			if rc.SkipAuth && r.Auth == api.AuthVerify {
				r.Auth = api.AuthIdentify
			}
		}
		h := handlers[r.Path]
		if h == nil {
			panic("server: no handler for route " + r.Path) // programmer error
		}
		routes[i] = route{Route: r, handle: h}
	}
	return routes
}

// request is one request in flight: what the handlers need to serve it,
// and the bookkeeping shared by the router, the handlers and the audit log.
// Like an http.Request it carries its context, which ends with the request
// (the route timeout); a request never outlives ServeHTTP. Requests are
// pooled.
//
// Every handler writes exactly one response, through rq.reject, rq.fail,
// rq.ok or rq.json, which also record its status for the
// audit log and the metrics (the few that write their own 200, generate,
// metrics and the log streams, set rq.status themselves). Error answers
// come only from rq.reject (an answer of the catalogue) and rq.fail (any
// error, through api.Translate).
type request struct {
	ctx context.Context // r's context with the route timeout
	w   http.ResponseWriter
	r   *http.Request

	st       *state // nil once released
	stAudit  *state // the state the request ran on, for audit after release
	rt       *route
	resource string // the path after a prefix route's: a name or a pattern
	identity string
	policy   string
	start    time.Time
	status   int
	message  string

	// Decode targets and scratch space of the crypto handlers: part of
	// the pooled request so that they cost no allocation. Zeroed with
	// the request.
	body      requestBody
	plaintext [32]byte
}

// requestBody holds the decoded body of one crypto request.
type requestBody struct {
	generate api.GenerateKeyRequest
	encrypt  api.EncryptKeyRequest
	decrypt  api.DecryptKeyRequest
	hmac     api.HMACRequest
	rewrap   api.RewrapKeyRequest
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

// releaseState drops the request's reference on its state early, for
// handlers that run long without needing it (log streams).
func (rq *request) releaseState() {
	if rq.st != nil {
		rq.st.release()
		rq.st = nil
	}
}

// ServeHTTP implements http.Handler: routing (docs/api.md#routing), method check,
// body limit, route timeout, authentication (docs/api.md#authorization), the handler, metrics
// and audit.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := requestPool.Get().(*request)
	*rq = request{ctx: r.Context(), w: w, r: r, start: time.Now()}
	st := s.acquire()
	rq.st, rq.stAudit = st, st
	defer s.finish(rq)

	p := r.URL.Path
	if np := cleanPath(p); np != p {
		// Like http.ServeMux: redirect to the canonical path. The new
		// request is authorised anew, so no path trick reaches a route
		// the caller may not use.
		setWriteDeadline(w, answerWriteTimeout)
		if rt := st.byPath[np]; rt != nil && rt.IsPrefix() && np[len(np)-1] != '/' {
			// ServeMux applies its trailing-slash redirect to the clean
			// path: one redirect straight to the prefix route.
			np += "/"
		}
		u := url.URL{Path: np, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
		rq.status = http.StatusMovedPermanently
		return
	}
	rt, resource := st.lookup(p)
	if rt == nil {
		setWriteDeadline(w, answerWriteTimeout)
		http.NotFound(w, r)
		rq.status, rq.message = http.StatusNotFound, "404 page not found"
		return
	}
	rq.rt, rq.resource = rt, resource
	var deadline time.Time
	if rt.Timeout > 0 {
		deadline = rq.start.Add(rt.Timeout)
	}
	// An HTTP/1 connection keeps the write deadline of its previous
	// request: always set (or clear) it.
	hw, _ := w.(*h1.ResponseWriter)
	if hw != nil {
		hw.SetWriteTimeout(deadline, rt.Timeout)
	} else if st := streamTimeout(r); st == 0 || st != rt.Timeout {
		// Unless the HTTP/2 stream started with this deadline (conn.go).
		_ = http.NewResponseController(w).SetWriteDeadline(deadline)
	}
	if !rt.AcceptsMethod(r.Method) {
		w.Header().Set("Accept", rt.Method)
		rq.reject(api.MethodNotAllowed(r.Method, rt.Method))
		return
	}
	if rt.MaxBody > 0 {
		if hw != nil {
			// Same limit, but the h1Writer learns that it was hit.
			r.Body = hw.LimitBody(r.Body, rt.MaxBody)
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, rt.MaxBody)
		}
	}
	if rt.Timeout > 0 {
		ctx, cancel := withLazyDeadline(rq.ctx, deadline)
		defer cancel()
		rq.ctx = ctx
	}

	switch rt.Auth {
	case api.AuthIdentify:
		rq.identity, _ = requestIdentity(r)
		rq.policy = st.idents[rq.identity]
	case api.AuthVerify:
		id, err := requestIdentity(r)
		if err != nil {
			rq.fail(err)
			return
		}
		rq.identity = id
		if id != st.admin || st.admin == "" {
			name, ok := st.idents[id]
			if !ok {
				rq.logDebug("access denied: identity not found")
				s.metrics.x.policyDenials.Inc()
				rq.reject(kes.ErrNotAllowed)
				return
			}
			rq.policy = name
			// A prefix route called without its trailing slash (kms-go's
			// ListKeys(ctx, "", n)) is authorised as upstream saw it after
			// its redirect: with the slash, so "/v1/key/list/*" allows it.
			authPath := p
			if rt.IsPrefix() && len(p) < len(rt.Path) {
				authPath = rt.Path
			}
			if !st.policies[name].compiled.Allows(authPath) {
				rq.logDebug("access denied: rejected by policy '" + name + "'")
				s.metrics.x.policyDenials.Inc()
				rq.reject(kes.ErrNotAllowed)
				return
			}
		}
	}

	if !rt.Counted {
		rt.handle(s, rq)
		return
	}
	s.serveCounted(rq)
}

// serveCounted runs the handler of an instrumented route (docs/monitoring.md#upstream-kes-metrics).
func (s *Server) serveCounted(rq *request) {
	m := s.metrics
	m.active.Inc()
	start := time.Now()
	defer func() {
		m.observeLatency(time.Since(start))
		m.active.Dec()
		m.count(rq.status)
	}()
	rq.rt.handle(s, rq)
}

// lookup returns the route serving the clean path p and the resource
// argument, or nil. Prefix routes also serve their path without the
// trailing slash, with an empty resource (what kms-go sends for empty
// arguments).
func (st *state) lookup(p string) (*route, string) {
	if rt := st.byPath[p]; rt != nil {
		return rt, ""
	}
	// Prefix routes all have the form /v1/<a>/<b>/: cut after the 4th '/'.
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			n++
			if n == 4 {
				if rt := st.byPath[p[:i+1]]; rt != nil && rt.IsPrefix() {
					return rt, p[i+1:]
				}
				return nil, ""
			}
		}
	}
	return nil, ""
}

// cleanPath returns the canonical form of p, as http.ServeMux computes it:
// rooted, path.Clean'ed, with a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if !needsClean(p) {
		return p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// needsClean is a fast check for "//", "/./" and "/../" (and the same at
// the end of p), the only things path.Clean changes in a rooted path.
func needsClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		rest := p[i+1:]
		switch {
		case len(rest) > 0 && rest[0] == '/':
			return true
		case rest == "." || len(rest) > 1 && rest[0] == '.' && rest[1] == '/':
			return true
		case rest == ".." || len(rest) > 2 && rest[0] == '.' && rest[1] == '.' && rest[2] == '/':
			return true
		}
	}
	return false
}

// setWriteDeadline installs the route timeout as the write deadline of the
// response, or clears a deadline left by an earlier request on the same
// connection when d is 0. Writers without deadline support (in-process
// use) are fine.
func setWriteDeadline(w http.ResponseWriter, d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	_ = http.NewResponseController(w).SetWriteDeadline(t)
}

// reject answers with the API error e.
func (rq *request) reject(e kes.Error) {
	rq.status, rq.message = e.Status(), e.Error()
	api.WriteError(rq.w, e)
}

// fail answers err as api.Translate maps it; an error that the catalogue
// does not know is logged with its cause and answered with the route's
// generic error.
func (rq *request) fail(err error) { rq.failAs(err, rq.rt.Err) }

// failAs is fail with generic instead of the route's generic error, for
// the steps that routes share (reading or storing a key).
func (rq *request) failAs(err error, generic kes.Error) {
	e, internal := api.Translate(err, generic)
	if internal {
		rq.logError(err)
	}
	rq.reject(e)
}

// ok answers 200 with an empty body.
func (rq *request) ok() {
	rq.status = http.StatusOK
	api.WriteOK(rq.w)
}

// json answers 200 with v as JSON.
func (rq *request) json(v any) {
	rq.status = http.StatusOK
	if err := api.WriteJSON(rq.w, v); err != nil {
		// Either v cannot be encoded (a bug) or the client is gone; in
		// both cases nothing useful can be sent any more.
		rq.logError(err)
	}
}

// decode decodes the request body into v, answering invalid (400) if it
// cannot; the cause is logged.
func (rq *request) decode(v any, invalid kes.Error) bool {
	if err := api.DecodeJSON(rq.r.Body, v); err != nil {
		// A client's mistake (malformed JSON, bad base64, a body over the
		// limit), not a server failure: ERROR is for those
		// (docs/monitoring.md, "Error log").
		rq.logDebug("invalid request body: " + err.Error())
		rq.reject(invalid)
		return false
	}
	return true
}

// logError logs err at ERROR with the request attributes. err must not
// contain key material (no error of this code base does).
func (rq *request) logError(err error) { rq.log(slog.LevelError, err.Error()) }

func (rq *request) logDebug(msg string) { rq.log(slog.LevelDebug, msg) }

// log logs msg with the request attributes to the error log of the state
// the request runs on.
func (rq *request) log(level slog.Level, msg string) {
	st := rq.stAudit
	if st == nil || !st.log.Enabled(rq.ctx, level) {
		return
	}
	st.log.LogAttrs(rq.ctx, level, msg, requestAttrs(rq.r, rq)...)
}

// Attribute keys of error-log records: a group req with method, path, ip
// and identity, written "req.method=POST req.path=..." by the text
// handler, as by the original server (docs/monitoring.md, "Error log").
const (
	attrRequest  = "req"
	attrMethod   = "method"
	attrPath     = "path"
	attrIP       = "ip"
	attrIdentity = "identity"
)

func requestAttrs(r *http.Request, rq *request) []slog.Attr {
	return []slog.Attr{slog.Group(attrRequest,
		slog.String(attrMethod, r.Method),
		slog.String(attrPath, r.URL.Path),
		slog.String(attrIP, remoteIP(r.RemoteAddr)),
		slog.String(attrIdentity, rq.identity),
	)}
}

// remoteIP returns the IP of a RemoteAddr "ip:port" (or addr itself).
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// finish runs after every request: it recovers from a panic in a handler
// (answering 500 if nothing was written yet), releases the state and
// emits the audit record.
func (s *Server) finish(rq *request) {
	r := rq.r
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			rq.releaseState()
			panic(v)
		}
		if rq.stAudit != nil {
			rq.stAudit.log.LogAttrs(r.Context(), slog.LevelError,
				fmt.Sprintf("panic serving request: %v\n%s", v, debug.Stack()), requestAttrs(r, rq)...)
		}
		if rq.status == 0 {
			rq.reject(api.ErrInternal)
		}
	}
	rq.releaseState()
	s.audit(r, rq)
	*rq = request{}
	requestPool.Put(rq)
}
