// Package gemaltotest is a fake of the CipherTrust Manager (KeySecure)
// REST API subset the gemalto key store uses, served over TLS by
// httptest, with fault injection for tests.
//
// Routes (as CipherTrust Manager documents them):
//
//	POST   /api/v1/auth/tokens                      refresh-token grant → {"jwt","duration","token_type"}
//	POST   /api/v1/vault/secrets                    create; 201, 409 if the name is taken
//	POST   /api/v1/vault/secrets/{name}/export?type=name   → {"material"}; 404
//	DELETE /api/v1/vault/secrets/{name}?type=name   204; 404
//	GET    /api/v1/vault/secrets?limit=&skip=       {"skip","limit","total","resources":[{"name"}]}
//	GET    /                                        200 (the web UI)
//
// Errors are JSON {"code":<n>,"codeDesc":"..."}. Requests to /api/v1/vault
// need "Authorization: Bearer <jwt>" with an unexpired JWT, else 401.
package gemaltotest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/restfake"
)

// Options configure a fake.
type Options struct {
	RefreshToken  string        // the accepted refresh token; required
	Domain        string        // the domain the token belongs to ("" = root)
	TokenDuration time.Duration // JWT lifetime, rounded up to seconds; default 5 min
	PageSize      int           // largest page of a listing; default 200
}

// Server is a running fake.
type Server struct {
	*restfake.Server
	opts Options

	mu      sync.Mutex
	secrets map[string]secret
	order   []string // creation order, the order of listings
	jwts    map[string]time.Time
	logins  int
	expired int // requests rejected for an expired JWT
}

type secret struct {
	id       string
	material string
}

// New starts a fake; it stops when tb's test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.TokenDuration <= 0 {
		opts.TokenDuration = 5 * time.Minute
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 200
	}
	s := &Server{opts: opts, secrets: map[string]secret{}, jwts: map[string]time.Time{}}
	s.Server = restfake.Start(tb, s)
	return s
}

// notFound answers 404 as the service does for a missing resource or
// route.
func notFound(w http.ResponseWriter) { writeError(w, http.StatusNotFound, 404, "Resource not found") }

func writeError(w http.ResponseWriter, status, code int, desc string) {
	restfake.WriteJSON(w, status, map[string]any{"code": code, "codeDesc": desc})
}

// ServeHTTP implements the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const secrets = "/api/v1/vault/secrets"
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		w.Write([]byte("<html>CipherTrust Manager</html>"))
	case r.URL.Path == "/api/v1/auth/tokens" && r.Method == http.MethodPost:
		s.auth(w, r)
	case r.URL.Path == secrets || strings.HasPrefix(r.URL.Path, secrets+"/"):
		if !s.authorized(w, r) {
			return
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, secrets), "/")
		// A secret is addressed by its name only with ?type=name.
		byName := r.URL.Query().Get("type") == "name"
		switch {
		case rest == "" && r.Method == http.MethodPost:
			s.create(w, r)
		case rest == "" && r.Method == http.MethodGet:
			s.list(w, r)
		case byName && strings.HasSuffix(rest, "/export") && r.Method == http.MethodPost:
			s.export(w, strings.TrimSuffix(rest, "/export"))
		case byName && !strings.Contains(rest, "/") && r.Method == http.MethodDelete:
			s.delete(w, rest)
		default:
			notFound(w)
		}
	default:
		notFound(w)
	}
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var req struct {
		GrantType    string `json:"grant_type"`
		RefreshToken string `json:"refresh_token"`
		Domain       string `json:"domain"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, 4, "NCERRBadRequest: invalid JSON body")
		return
	}
	if req.GrantType != "refresh_token" || req.RefreshToken != s.opts.RefreshToken || req.Domain != s.opts.Domain {
		writeError(w, http.StatusUnauthorized, 1, "Invalid credentials")
		return
	}
	secs := int64((s.opts.TokenDuration + time.Second - 1) / time.Second)
	jwt := "eyJ" + restfake.RandomHex(24)
	s.mu.Lock()
	s.jwts[jwt] = time.Now().Add(time.Duration(secs) * time.Second)
	s.logins++
	s.mu.Unlock()
	restfake.WriteJSON(w, http.StatusOK, map[string]any{"jwt": jwt, "duration": secs, "token_type": "Bearer", "refresh_token_id": restfake.RandomHex(8)})
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	jwt, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.jwts[jwt]
	expired := known && !time.Now().Before(exp)
	if expired {
		s.expired++
	}
	s.mu.Unlock()
	switch {
	case !ok || !known:
		writeError(w, http.StatusUnauthorized, 1, "Token is invalid")
		return false
	case expired:
		writeError(w, http.StatusUnauthorized, 1, "Token is expired")
		return false
	}
	return true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DataType string `json:"dataType"`
		Material string `json:"material"`
		Name     string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || req.DataType == "" {
		writeError(w, http.StatusBadRequest, 4, "NCERRBadRequest: invalid request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[req.Name]; ok {
		writeError(w, http.StatusConflict, 5, "NCERRResourceAlreadyExists: Resource already exists")
		return
	}
	id := restfake.RandomHex(16)
	s.secrets[req.Name] = secret{id: id, material: req.Material}
	s.order = append(s.order, req.Name)
	restfake.WriteJSON(w, http.StatusCreated, map[string]any{"id": id, "name": req.Name, "dataType": req.DataType})
}

func (s *Server) export(w http.ResponseWriter, name string) {
	s.mu.Lock()
	sec, ok := s.secrets[name]
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	restfake.WriteJSON(w, http.StatusOK, map[string]any{"id": sec.id, "name": name, "material": sec.material})
}

func (s *Server) delete(w http.ResponseWriter, name string) {
	s.mu.Lock()
	_, ok := s.secrets[name]
	if ok {
		delete(s.secrets, name)
		s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == name })
	}
	s.mu.Unlock()
	if !ok {
		notFound(w)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	skip, _ := strconv.Atoi(q.Get("skip"))
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > s.opts.PageSize {
		limit = s.opts.PageSize
	}
	s.mu.Lock()
	total := len(s.order)
	var res []map[string]any
	for i := skip; i < total && len(res) < limit; i++ {
		res = append(res, map[string]any{"name": s.order[i], "id": s.secrets[s.order[i]].id})
	}
	s.mu.Unlock()
	if res == nil {
		res = []map[string]any{}
	}
	restfake.WriteJSON(w, http.StatusOK, map[string]any{"skip": skip, "limit": limit, "total": total, "resources": res})
}

// Put stores a secret as the original KES server creates one.
func (s *Server) Put(name, material string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; !ok {
		s.order = append(s.order, name)
	}
	s.secrets[name] = secret{id: restfake.RandomHex(16), material: material}
}

// Material returns the material of the secret name.
func (s *Server) Material(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	return sec.material, ok
}

// Logins returns the number of successful logins.
func (s *Server) Logins() int {
	return restfake.Locked(&s.mu, func() int { return s.logins })
}

// Expired returns the number of requests rejected for an expired JWT.
func (s *Server) Expired() int {
	return restfake.Locked(&s.mu, func() int { return s.expired })
}

// JWTs returns every JWT issued, for leak checks.
func (s *Server) JWTs() []string {
	return restfake.Locked(&s.mu, func() []string { return slices.Sorted(maps.Keys(s.jwts)) })
}
