package vaulttest

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// token is an issued token.
type token struct {
	id, accessor string
	ns           string // the namespace that issued it
	path         string // e.g. "auth/approle/login"
	displayName  string
	meta         map[string]string
	opts         TokenOptions
	issued       time.Time
	expires      time.Time // zero: never
	revoked      bool
}

func (t *token) valid(now time.Time) bool {
	return !t.revoked && (t.expires.IsZero() || now.Before(t.expires))
}

// usableIn reports whether the token may be used in namespace ns: its
// own or a child of it.
func (t *token) usableIn(ns string) bool {
	return t.ns == "" || ns == t.ns || strings.HasPrefix(ns, t.ns+"/")
}

// allowed reports whether the token's ACL permits path.
func (t *token) allowed(path string) bool {
	if len(t.opts.Paths) == 0 {
		return true
	}
	for _, p := range t.opts.Paths {
		if matchPolicyPath(p, path) {
			return true
		}
	}
	return false
}

// matchPolicyPath matches path against a Vault policy path pattern: '+'
// matches one segment, a trailing '*' any suffix.
func matchPolicyPath(pattern, path string) bool {
	glob := strings.HasSuffix(pattern, "*")
	pattern = strings.TrimSuffix(pattern, "*")
	for pattern != "" {
		i := strings.IndexByte(pattern, '+')
		if i < 0 {
			break
		}
		if !strings.HasPrefix(path, pattern[:i]) {
			return false
		}
		path = path[i:]
		j := strings.IndexByte(path, '/')
		if j < 0 {
			j = len(path)
		}
		if j == 0 {
			return false // '+' needs a non-empty segment
		}
		path, pattern = path[j:], pattern[i+1:]
	}
	if glob {
		return strings.HasPrefix(path, pattern)
	}
	return path == pattern
}

// seconds is a duration on the wire: whole seconds, at least 1 for a
// positive duration (so that a short lease never reads as "no expiry").
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return max(1, int(d/time.Second))
}

// issue creates a token. s.mu is held.
func (s *Server) issue(ns, path, display string, meta map[string]string, opts TokenOptions) *token {
	now := time.Now()
	t := &token{
		id:          "hvs." + randomID(16),
		accessor:    randomID(12),
		ns:          ns,
		path:        path,
		displayName: display,
		meta:        meta,
		opts:        opts,
		issued:      now,
	}
	if opts.TTL > 0 {
		t.expires = now.Add(opts.TTL)
	}
	s.tokens[t.id] = t
	return t
}

// requestToken returns the token of a request: the X-Vault-Token header
// or an "Authorization: Bearer" header, both of which Vault accepts.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// authenticate returns the valid token of a request in namespace ns, or
// nil and the 403 reply.
func (s *Server) authenticate(r *http.Request, ns string) (*token, reply) {
	id := requestToken(r)
	if id == "" {
		return nil, errorReply(http.StatusForbidden, msgPermissionDenied)
	}
	t, ok := s.tokens[id]
	if !ok || !t.valid(time.Now()) || !t.usableIn(ns) {
		return nil, errorReply(http.StatusForbidden, msgInvalidToken)
	}
	return t, reply{}
}

// authReply is the response of a login or a renewal.
func authReply(t *token, ttl time.Duration, warnings []string) reply {
	meta := t.meta
	if meta == nil {
		meta = map[string]string{}
	}
	return reply{http.StatusOK, &envelope{
		RequestID: uuid(),
		Warnings:  warnings,
		Auth: map[string]any{
			"client_token":    t.id,
			"accessor":        t.accessor,
			"policies":        []string{"default"},
			"token_policies":  []string{"default"},
			"metadata":        meta,
			"lease_duration":  seconds(ttl),
			"renewable":       !t.opts.NotRenewable && t.opts.TTL > 0,
			"entity_id":       "",
			"token_type":      "service",
			"orphan":          true,
			"mfa_requirement": nil,
			"num_uses":        0,
		},
	}}
}

func (s *Server) login(rq *request, ns, mountPath string, m *mount) reply {
	if s.failLogins > 0 {
		s.failLogins--
		return errorReply(http.StatusInternalServerError, msgInternal)
	}
	var r *role
	var display string
	var meta map[string]string
	switch m.kind {
	case kindAppRole:
		roleID, secretID := str(rq.body, "role_id"), str(rq.body, "secret_id")
		if roleID == "" {
			return errorReply(http.StatusBadRequest, "missing role_id")
		}
		r = m.roles[roleID]
		if r == nil || r.secret != secretID {
			return errorReply(http.StatusBadRequest, "invalid role or secret ID")
		}
		display, meta = "approle", map[string]string{"role_name": r.name}
	case kindKubernetes:
		name, jwt := str(rq.body, "role"), str(rq.body, "jwt")
		if name == "" {
			return errorReply(http.StatusBadRequest, "missing role")
		}
		if jwt == "" {
			return errorReply(http.StatusBadRequest, "missing jwt")
		}
		r = m.roles[name]
		if r == nil {
			return errorReply(http.StatusBadRequest, fmt.Sprintf("invalid role name %q", name))
		}
		if r.secret != jwt {
			return errorReply(http.StatusForbidden, msgPermissionDenied)
		}
		display, meta = "kubernetes-default-kes", map[string]string{"role": r.name, "service_account_name": "kes"}
	}
	t := s.issue(ns, mountPath+"/login", display, meta, r.token)
	return authReply(t, r.token.TTL, nil)
}

func (s *Server) lookupSelf(rq *request, t *token) reply {
	if rq.op != opRead && rq.op != opUpdate {
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	now := time.Now()
	var expireTime any
	ttl := 0
	if !t.expires.IsZero() {
		expireTime = t.expires.UTC().Format(time.RFC3339Nano)
		ttl = seconds(t.expires.Sub(now))
	}
	meta := any(nil)
	if t.meta != nil {
		meta = t.meta
	}
	return dataReply(map[string]any{
		"accessor":         t.accessor,
		"creation_time":    t.issued.Unix(),
		"creation_ttl":     seconds(t.opts.TTL),
		"display_name":     t.displayName,
		"entity_id":        "",
		"expire_time":      expireTime,
		"explicit_max_ttl": 0,
		"id":               t.id,
		"issue_time":       t.issued.UTC().Format(time.RFC3339Nano),
		"meta":             meta,
		"num_uses":         0,
		"orphan":           true,
		"path":             t.path,
		"policies":         []string{"default"},
		"renewable":        !t.opts.NotRenewable && t.opts.TTL > 0,
		"ttl":              ttl,
		"type":             "service",
	})
}

// increment parses the "increment" of a renewal: seconds as a number or
// a string, or a duration string such as "1h".
func increment(v any) (time.Duration, bool) {
	switch v := v.(type) {
	case nil:
		return 0, true
	case float64:
		if v < 0 || v > math.MaxInt32 {
			return 0, false
		}
		return time.Duration(v) * time.Second, true
	case string:
		if v == "" {
			return 0, true
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
		d, err := time.ParseDuration(v)
		return d, err == nil && d >= 0
	}
	return 0, false
}

func (s *Server) renewSelf(rq *request, t *token) reply {
	if rq.op != opUpdate {
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	if s.failRenews > 0 {
		s.failRenews--
		return errorReply(http.StatusInternalServerError, msgInternal)
	}
	if t.opts.NotRenewable || t.opts.TTL <= 0 {
		return errorReply(http.StatusBadRequest, "lease is not renewable")
	}
	inc, ok := increment(rq.body["increment"])
	if !ok {
		return errorReply(http.StatusBadRequest, "invalid increment")
	}
	ttl := t.opts.TTL
	if inc > 0 {
		ttl = inc
	}
	now := time.Now()
	var warnings []string
	if t.opts.MaxTTL > 0 {
		if left := t.issued.Add(t.opts.MaxTTL).Sub(now); ttl > left {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
				(ttl/time.Second*time.Second).String(), (left/time.Second*time.Second).String()))
			ttl = left
		}
	}
	t.expires = now.Add(ttl)
	return authReply(t, ttl, warnings)
}
