package vaulttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds request bodies, like Vault's default max_request_size
// of 32 MiB.
const maxBody = 32 << 20

// Vault's operations, derived from method and ?list.
const (
	opRead   = "read"
	opList   = "list"
	opUpdate = "update" // create or update: POST and PUT
	opDelete = "delete"
	opPatch  = "patch"
)

// Error messages Vault sends.
const (
	msgPermissionDenied = "permission denied"
	// msgInvalidToken is how Vault reports a token that is unknown,
	// expired or revoked: a 403 carrying both "permission denied" and
	// "invalid token", formatted by Vault's multierror package.
	msgInvalidToken = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
	msgSealed       = "Vault is sealed"
	msgUnsupported  = "1 error occurred:\n\t* unsupported operation\n\n"
	msgInternal     = "internal error"
	msgCASMismatch  = "check-and-set parameter did not match the current version"
)

// envelope is the body of every successful Vault response with content.
type envelope struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	Renewable     bool     `json:"renewable"`
	LeaseDuration int      `json:"lease_duration"`
	Data          any      `json:"data"`
	WrapInfo      any      `json:"wrap_info"`
	Warnings      []string `json:"warnings"`
	Auth          any      `json:"auth"`
	MountType     string   `json:"mount_type,omitempty"`
}

// errorBody is the body of every Vault error response.
type errorBody struct {
	Errors []string `json:"errors"`
}

// reply is a response to be written.
type reply struct {
	status int
	body   any // nil: no body
}

func errorReply(status int, msgs ...string) reply {
	if msgs == nil {
		msgs = []string{}
	}
	return reply{status, errorBody{Errors: msgs}}
}

func dataReply(data any) reply {
	return reply{http.StatusOK, &envelope{RequestID: uuid(), Data: data}}
}

var noContent = reply{status: http.StatusNoContent}

// notFound is Vault's answer for a path without a value: 404 with an
// empty error list.
var notFound = errorReply(http.StatusNotFound)

// request is a request being handled.
type request struct {
	r    *http.Request
	op   string
	body map[string]any // the JSON body; nil if there is none
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: send nothing at all, as a Vault
			// that is too slow would.
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	rep := s.handle(r)
	w.Header().Set("Cache-Control", "no-store")
	if rep.body == nil || r.Method == http.MethodHead {
		w.WriteHeader(rep.status)
		return
	}
	b, err := json.Marshal(rep.body)
	if err != nil {
		panic(err) // the fake's own values always marshal
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write(append(b, '\n'))
}

// operation maps method and ?list to Vault's operation, as Vault's HTTP
// layer does.
func operation(r *http.Request) (string, bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if l := r.URL.Query().Get("list"); l != "" {
			list, err := strconv.ParseBool(l)
			if err != nil {
				return "", false
			}
			if list {
				return opList, true
			}
		}
		return opRead, true
	case "LIST":
		return opList, true
	case http.MethodPost, http.MethodPut:
		return opUpdate, true
	case http.MethodDelete:
		return opDelete, true
	case http.MethodPatch:
		return opPatch, true
	}
	return "", false
}

func (s *Server) handle(r *http.Request) reply {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errorReply(http.StatusBadRequest, "failed to read request body")
	}
	if len(raw) > maxBody {
		return errorReply(http.StatusRequestEntityTooLarge, "http: request body too large")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.logRequest(r)

	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return notFound
	}
	op, ok := operation(r)
	switch {
	case !ok && r.URL.Query().Has("list"):
		return errorReply(http.StatusBadRequest, "invalid value for the list parameter")
	case !ok:
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	switch cleanPath(path) {
	case "sys/health":
		s.counts[CountHealth]++
		return s.health(r, op)
	case "sys/seal-status":
		s.counts[CountSealStatus]++
		return s.sealStatus(op)
	}
	if s.sealed || !s.initialized {
		s.counts[CountSealed]++
		return errorReply(http.StatusServiceUnavailable, msgSealed)
	}

	rq := &request{r: r, op: op}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &rq.body); err != nil {
			return errorReply(http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		}
	}

	nsName, rel, ok := s.resolveNamespace(r.Header.Get("X-Vault-Namespace"), path)
	if !ok {
		return errorReply(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
	}
	n := s.namespaces[nsName]
	// Vault normalises list paths to end in '/'; ACLs see that form.
	aclPath := strings.TrimLeft(rel, "/")
	if op == opList && !strings.HasSuffix(aclPath, "/") {
		aclPath += "/"
	}
	trimmed := cleanPath(rel)

	// Logins are the only unauthenticated paths besides sys/health.
	if m, mpath := n.findMount(trimmed); m != nil && (m.kind == kindAppRole || m.kind == kindKubernetes) && trimmed == mpath+"/login" {
		if op != opUpdate {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		s.counts[CountLogin]++
		return s.login(rq, nsName, mpath, m)
	}

	tok, rep := s.authenticate(r, nsName)
	if tok == nil {
		s.counts[CountDenied]++
		return rep
	}
	switch trimmed {
	case "auth/token/lookup-self":
		s.counts[CountLookupSelf]++
		return s.lookupSelf(rq, tok)
	case "auth/token/renew-self":
		s.counts[CountRenewSelf]++
		return s.renewSelf(rq, tok)
	case "auth/token/revoke-self":
		s.counts[CountRevokeSelf]++
		if op != opUpdate {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		tok.revoked = true
		return noContent
	}
	if !tok.allowed(aclPath) {
		s.counts[CountDenied]++
		return errorReply(http.StatusForbidden, msgPermissionDenied)
	}
	m, mpath := n.findMount(trimmed)
	if m == nil {
		return errorReply(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", trimmed))
	}
	sub := strings.TrimPrefix(strings.TrimPrefix(trimmed, mpath), "/")
	switch m.kind {
	case kindKV1:
		return s.kv1(rq, m, sub)
	case kindKV2:
		return s.kv2(rq, m, sub)
	case kindTransit:
		return s.transit(rq, m, sub)
	}
	return errorReply(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", trimmed))
}

func (s *Server) logRequest(r *http.Request) {
	if len(s.requests) >= maxRequestLog {
		s.requests = s.requests[len(s.requests)-maxRequestLog/2:]
	}
	s.requests = append(s.requests, Request{
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Namespace: r.Header.Get("X-Vault-Namespace"),
		HasToken:  requestToken(r) != "",
	})
}

// resolveNamespace finds the namespace of a request from the
// X-Vault-Namespace header and leading path segments that name child
// namespaces, and returns the rest of the path.
func (s *Server) resolveNamespace(header, path string) (ns, rest string, ok bool) {
	ns = cleanPath(header)
	if _, ok := s.namespaces[ns]; !ok {
		return "", "", false
	}
	rest = path
	for {
		seg, after, _ := strings.Cut(strings.TrimLeft(rest, "/"), "/")
		if seg == "" {
			return ns, rest, true
		}
		cand := seg
		if ns != "" {
			cand = ns + "/" + seg
		}
		if _, ok := s.namespaces[cand]; !ok {
			return ns, rest, true
		}
		ns, rest = cand, after
	}
}

// findMount returns the mount with the longest path that path lies in.
func (n *namespace) findMount(path string) (*mount, string) {
	var best *mount
	var bestPath string
	for mp, m := range n.mounts {
		if (path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) > len(bestPath) {
			best, bestPath = m, mp
		}
	}
	return best, bestPath
}

// str returns a string field of a JSON body.
func str(body map[string]any, key string) string {
	s, _ := body[key].(string)
	return s
}

// health answers sys/health with the documented status codes and
// query parameters.
func (s *Server) health(r *http.Request, op string) reply {
	if op != opRead {
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	q := r.URL.Query()
	code := func(name string, def int) int {
		if v, err := strconv.Atoi(q.Get(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	standbyOK, _ := strconv.ParseBool(q.Get("standbyok"))
	var status int
	switch {
	case !s.initialized:
		status = code("uninitcode", http.StatusNotImplemented)
	case s.sealed:
		status = code("sealedcode", http.StatusServiceUnavailable)
	case s.standby && !standbyOK:
		status = code("standbycode", http.StatusTooManyRequests)
	default:
		status = code("activecode", http.StatusOK)
	}
	body := map[string]any{
		"initialized":                  s.initialized,
		"sealed":                       s.sealed || !s.initialized,
		"standby":                      s.standby || s.sealed || !s.initialized,
		"performance_standby":          false,
		"replication_performance_mode": "disabled",
		"replication_dr_mode":          "disabled",
		"server_time_utc":              time.Now().Unix(),
		"version":                      s.version,
	}
	if s.initialized && !s.sealed {
		body["cluster_name"] = "vault-cluster-fake"
		body["cluster_id"] = "00000000-0000-0000-0000-000000000000"
	}
	return reply{status, body}
}

func (s *Server) sealStatus(op string) reply {
	if op != opRead {
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	t, n := 1, 1
	if !s.initialized {
		t, n = 0, 0
	}
	body := map[string]any{
		"type":          "shamir",
		"initialized":   s.initialized,
		"sealed":        s.sealed || !s.initialized,
		"t":             t,
		"n":             n,
		"progress":      0,
		"nonce":         "",
		"version":       s.version,
		"migration":     false,
		"recovery_seal": false,
		"storage_type":  "inmem",
	}
	if s.initialized && !s.sealed {
		body["cluster_name"] = "vault-cluster-fake"
		body["cluster_id"] = "00000000-0000-0000-0000-000000000000"
	}
	return reply{http.StatusOK, body}
}
