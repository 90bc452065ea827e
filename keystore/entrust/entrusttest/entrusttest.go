// Package entrusttest is a fake of the Entrust KeyControl secrets vault
// REST API subset the entrust key store uses, served over TLS by
// httptest, with fault injection for tests.
//
// Routes (all POST with a JSON body, below /vault/1.0/):
//
//	Login/{vault_id}/   {"username","password"} → {"access_token","expires_at"}
//	Renew/              → {"access_token","expires_at"}: a new token; the old one stays valid until it expires
//	CreateSecret/       {"box_id","name","secret_data"} → 200 {"secret_id"}; 409 {"error":"Secret already exists"}
//	CheckoutSecret/     {"box_id","secret_id"} → {"secret_id","box_id","secret_data"}; 404 {"error":"Secret not found"}
//	DeleteSecret/       {"box_id","secret_id"} → 200; 404
//	ListSecretIds/      {"box_id","max_items","next_token"} → {"secrets":[{"secret_id","name","expires_at"}],"next_token"}
//	GetBox/             {"box_id"} → the box; 404 {"error":"Box not found"}
//
// All but Login need the header X-Vault-Auth with an unexpired token,
// else 401 {"error":...}. A secret's ID is its name. The continuation
// token of a listing is the base64 of {"box_id":..,"next_ctx":<name>}.
package entrusttest

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/restfake"
)

// Options configure a fake.
type Options struct {
	VaultID, BoxID     string        // the vault and its one box; required
	Username, Password string        // the accepted credentials; required
	TokenLifetime      time.Duration // default 30 min
	PageSize           int           // largest page of a listing; default 256
	// NoExpiry leaves expires_at out of login answers.
	NoExpiry bool
	// NoRenew makes Renew fail with 403, so that clients must log in
	// again.
	NoRenew bool
}

// Server is a running fake.
type Server struct {
	*restfake.Server
	opts Options

	mu      sync.Mutex
	secrets map[string]secret
	tokens  map[string]time.Time
	logins  int
	renews  int
	expired int
}

type secret struct {
	data      string // base64, as sent
	expiresAt time.Time
}

// New starts a fake; it stops when tb's test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 30 * time.Minute
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 256
	}
	s := &Server{opts: opts, secrets: map[string]secret{}, tokens: map[string]time.Time{}}
	s.Server = restfake.Start(tb, s)
	return s
}

func writeError(w http.ResponseWriter, status int, msg string) {
	restfake.WriteJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) issueLocked() map[string]any {
	tok := restfake.RandomHex(24)
	exp := time.Now().Add(s.opts.TokenLifetime)
	s.tokens[tok] = exp
	m := map[string]any{"access_token": tok}
	if !s.opts.NoExpiry {
		m["expires_at"] = exp.UTC().Format(time.RFC3339Nano)
	}
	return m
}

type request struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	BoxID      string `json:"box_id"`
	Name       string `json:"name"`
	SecretData string `json:"secret_data"`
	SecretID   string `json:"secret_id"`
	MaxItems   int    `json:"max_items"`
	NextToken  string `json:"next_token"`
}

// ServeHTTP implements the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.URL.Path, "/vault/1.0/")
	if !ok || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "Not found")
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if vault, ok := strings.CutPrefix(op, "Login/"); ok {
		if strings.TrimSuffix(vault, "/") != s.opts.VaultID || req.Username != s.opts.Username || req.Password != s.opts.Password {
			writeError(w, http.StatusUnauthorized, "Invalid credentials")
			return
		}
		s.mu.Lock()
		s.logins++
		body := s.issueLocked()
		s.mu.Unlock()
		restfake.WriteJSON(w, http.StatusOK, body)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, known := s.tokens[r.Header.Get("X-Vault-Auth")]
	switch {
	case !known:
		writeError(w, http.StatusUnauthorized, "Invalid token")
		return
	case !time.Now().Before(exp):
		s.expired++
		writeError(w, http.StatusUnauthorized, "Token expired")
		return
	}
	if op == "Renew/" {
		if s.opts.NoRenew {
			writeError(w, http.StatusForbidden, "Token renewal is not allowed")
			return
		}
		s.renews++
		restfake.WriteJSON(w, http.StatusOK, s.issueLocked())
		return
	}
	if req.BoxID != s.opts.BoxID {
		writeError(w, http.StatusNotFound, "Box not found")
		return
	}
	switch op {
	case "GetBox/":
		restfake.WriteJSON(w, http.StatusOK, map[string]any{"box_id": s.opts.BoxID, "name": "kes", "secret_count": len(s.secrets)})
	case "CreateSecret/":
		if req.Name == "" {
			writeError(w, http.StatusBadRequest, "Missing name")
			return
		}
		if _, err := base64.StdEncoding.DecodeString(req.SecretData); err != nil {
			writeError(w, http.StatusBadRequest, "secret_data is not base64")
			return
		}
		if _, ok := s.secrets[req.Name]; ok {
			writeError(w, http.StatusConflict, "Secret already exists")
			return
		}
		s.secrets[req.Name] = secret{data: req.SecretData}
		restfake.WriteJSON(w, http.StatusOK, map[string]any{"secret_id": req.Name, "box_id": req.BoxID})
	case "CheckoutSecret/":
		sec, ok := s.secrets[req.SecretID]
		if !ok || s.expiredLocked(sec) {
			writeError(w, http.StatusNotFound, "Secret not found")
			return
		}
		restfake.WriteJSON(w, http.StatusOK, map[string]any{"secret_id": req.SecretID, "box_id": req.BoxID, "secret_data": sec.data})
	case "DeleteSecret/":
		if _, ok := s.secrets[req.SecretID]; !ok {
			writeError(w, http.StatusNotFound, "Secret not found")
			return
		}
		delete(s.secrets, req.SecretID)
		restfake.WriteJSON(w, http.StatusOK, map[string]any{"secret_id": req.SecretID})
	case "ListSecretIds/":
		s.list(w, req)
	default:
		writeError(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) expiredLocked(sec secret) bool {
	return !sec.expiresAt.IsZero() && !time.Now().Before(sec.expiresAt)
}

type listToken struct {
	BoxID   string `json:"box_id"`
	NextCtx string `json:"next_ctx"`
}

func (s *Server) list(w http.ResponseWriter, req request) {
	limit := req.MaxItems
	if limit <= 0 || limit > s.opts.PageSize {
		limit = s.opts.PageSize
	}
	from := ""
	if req.NextToken != "" {
		var tok listToken
		b, err := base64.StdEncoding.DecodeString(req.NextToken)
		if err != nil || json.Unmarshal(b, &tok) != nil || tok.BoxID != req.BoxID {
			writeError(w, http.StatusBadRequest, "Invalid next_token")
			return
		}
		from = tok.NextCtx
	}
	var names []string
	for name := range s.secrets {
		if name >= from {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := []map[string]any{}
	for _, name := range names[:min(limit, len(names))] {
		m := map[string]any{"secret_id": name, "name": name}
		if exp := s.secrets[name].expiresAt; !exp.IsZero() {
			m["expires_at"] = exp.UTC().Format(time.RFC3339)
		}
		out = append(out, m)
	}
	next := ""
	if len(names) > limit {
		b, _ := json.Marshal(listToken{BoxID: req.BoxID, NextCtx: names[limit]})
		next = base64.StdEncoding.EncodeToString(b)
	}
	restfake.WriteJSON(w, http.StatusOK, map[string]any{"secrets": out, "next_token": next})
}

// Put stores a secret as the original KES server creates one: data is
// the stored key, kept base64-encoded. A non-zero expiresAt makes the
// secret expire then.
func (s *Server) Put(name string, data []byte, expiresAt time.Time) {
	restfake.WithLock(&s.mu, func() { s.secrets[name] = secret{data: base64.StdEncoding.EncodeToString(data), expiresAt: expiresAt} })
}

// SecretData returns the secret_data (base64) of the secret name.
func (s *Server) SecretData(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	return sec.data, ok
}

// Counts returns the numbers of logins, renewals and requests rejected
// for an expired token.
func (s *Server) Counts() (logins, renews, expired int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.renews, s.expired
}

// Tokens returns every token issued, for leak checks.
func (s *Server) Tokens() []string {
	return restfake.Locked(&s.mu, func() []string { return slices.Sorted(maps.Keys(s.tokens)) })
}
