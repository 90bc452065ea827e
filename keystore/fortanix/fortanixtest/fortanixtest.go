// Package fortanixtest is a fake of the Fortanix DSM (SDKMS) REST API
// subset the fortanix key store uses, served over TLS by httptest, with
// fault injection for tests.
//
// Routes (as Fortanix documents them):
//
//	GET    /sys/v1/health                 204
//	POST   /sys/v1/session/auth           Basic <api key> → 200 {"access_token","expires_in","token_type"}
//	POST   /sys/v1/session/terminate      Bearer <token> → 204
//	PUT    /crypto/v1/keys                create; 201, 409 "sobject already exists"
//	POST   /crypto/v1/keys/export         {"name"} → 200 the object with "value"; 404 "sobject does not exist"
//	DELETE /crypto/v1/keys/{kid}          204; 404
//	GET    /crypto/v1/keys?sort=name:asc&limit=&start=&group_id=   JSON array, names ascending from start (inclusive)
//
// Crypto routes take "Authorization: Basic <api key>" or the bearer token
// of an open session; otherwise 401 {"message":...}. Other errors are
// plain text, as DSM sends them.
package fortanixtest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openkes/openkes/internal/restfake"
)

// Options configure a fake.
type Options struct {
	APIKey   string // the accepted API key; required
	PageSize int    // largest page of a listing; default 100
}

// Object is a stored security object.
type Object struct {
	KID     string
	Name    string
	GroupID string
	Value   string // base64, as sent
	Enabled bool
	KeyOps  []string
	ObjType string
}

// Server is a running fake.
type Server struct {
	*restfake.Server
	opts Options

	mu       sync.Mutex
	objects  map[string]*Object // by name
	sessions map[string]bool
	lists    int
}

// New starts a fake; it stops when tb's test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	s := &Server{opts: opts, objects: map[string]*Object{}, sessions: map[string]bool{}}
	s.Server = restfake.Start(tb, s)
	return s
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(msg))
}

func randomID() string {
	h := restfake.RandomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ServeHTTP implements the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/" && r.Method == http.MethodGet:
		w.Write([]byte("<html>Fortanix DSM</html>"))
		return
	case p == "/sys/v1/health" && r.Method == http.MethodGet:
		w.WriteHeader(http.StatusNoContent)
		return
	case p == "/sys/v1/session/auth" && r.Method == http.MethodPost:
		if r.Header.Get("Authorization") != "Basic "+s.opts.APIKey {
			restfake.WriteJSON(w, http.StatusUnauthorized, map[string]string{"message": "Invalid API key"})
			return
		}
		tok := randomID()
		s.mu.Lock()
		s.sessions[tok] = true
		s.mu.Unlock()
		restfake.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 600, "token_type": "Bearer", "entity_id": randomID()})
		return
	case p == "/sys/v1/session/terminate" && r.Method == http.MethodPost:
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ok := s.sessions[tok]
		delete(s.sessions, tok)
		s.mu.Unlock()
		if !ok {
			restfake.WriteJSON(w, http.StatusUnauthorized, map[string]string{"message": "Invalid session"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !strings.HasPrefix(p, "/crypto/v1/keys") {
		plain(w, http.StatusNotFound, "Not found")
		return
	}
	if !s.authorized(r) {
		restfake.WriteJSON(w, http.StatusUnauthorized, map[string]string{"message": "Authentication required"})
		return
	}
	switch {
	case p == "/crypto/v1/keys" && r.Method == http.MethodPut:
		s.create(w, r)
	case p == "/crypto/v1/keys" && r.Method == http.MethodGet:
		s.list(w, r)
	case p == "/crypto/v1/keys/export" && r.Method == http.MethodPost:
		s.export(w, r)
	case strings.HasPrefix(p, "/crypto/v1/keys/") && r.Method == http.MethodDelete:
		s.delete(w, strings.TrimPrefix(p, "/crypto/v1/keys/"))
	default:
		plain(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == "Basic "+s.opts.APIKey {
		return true
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok && s.sessions[tok]
}

func (o *Object) json(withValue bool) map[string]any {
	m := map[string]any{"kid": o.KID, "name": o.Name, "group_id": o.GroupID, "obj_type": o.ObjType, "key_ops": o.KeyOps, "enabled": o.Enabled}
	if withValue {
		m["value"] = o.Value
	}
	return m
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ObjType string   `json:"obj_type"`
		Name    string   `json:"name"`
		GroupID string   `json:"group_id"`
		KeyOps  []string `json:"key_ops"`
		Value   string   `json:"value"`
		Enabled *bool    `json:"enabled"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || req.ObjType == "" {
		plain(w, http.StatusBadRequest, "invalid request body")
		return
	}
	if _, err := base64.StdEncoding.DecodeString(req.Value); err != nil {
		plain(w, http.StatusBadRequest, "value is not valid base64")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[req.Name]; ok {
		plain(w, http.StatusConflict, "sobject already exists")
		return
	}
	o := &Object{KID: randomID(), Name: req.Name, GroupID: req.GroupID, Value: req.Value, Enabled: req.Enabled == nil || *req.Enabled, KeyOps: req.KeyOps, ObjType: req.ObjType}
	s.objects[req.Name] = o
	restfake.WriteJSON(w, http.StatusCreated, o.json(false))
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		KID  string `json:"kid"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		plain(w, http.StatusBadRequest, "invalid request body")
		return
	}
	s.mu.Lock()
	o, ok := s.objects[req.Name]
	var body map[string]any
	if ok {
		body = o.json(true)
	}
	s.mu.Unlock()
	if !ok {
		plain(w, http.StatusNotFound, "sobject does not exist")
		return
	}
	restfake.WriteJSON(w, http.StatusOK, body)
}

func (s *Server) delete(w http.ResponseWriter, kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, o := range s.objects {
		if o.KID == kid {
			delete(s.objects, name)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	plain(w, http.StatusNotFound, "sobject does not exist")
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("sort") != "name:asc" {
		plain(w, http.StatusBadRequest, "this fake supports sort=name:asc only")
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > s.opts.PageSize {
		limit = s.opts.PageSize
	}
	start, group := q.Get("start"), q.Get("group_id")
	s.mu.Lock()
	s.lists++
	var names []string
	for name, o := range s.objects {
		if name >= start && (group == "" || o.GroupID == group) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	page := []map[string]any{}
	for _, name := range names[:min(limit, len(names))] {
		page = append(page, s.objects[name].json(false))
	}
	s.mu.Unlock()
	restfake.WriteJSON(w, http.StatusOK, page)
}

// Put stores an object as the original KES server creates one: value is
// the stored key, which the fake keeps base64-encoded.
func (s *Server) Put(name, groupID string, value []byte) {
	restfake.WithLock(&s.mu, func() {
		s.objects[name] = &Object{KID: randomID(), Name: name, GroupID: groupID, Value: base64.StdEncoding.EncodeToString(value), Enabled: true, KeyOps: []string{"EXPORT", "APPMANAGEABLE"}, ObjType: "OPAQUE"}
	})
}

// SetEnabled enables or disables the object name.
func (s *Server) SetEnabled(name string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.objects[name]; ok {
		o.Enabled = enabled
	}
}

// Object returns a copy of the object name.
func (s *Server) Object(name string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[name]
	if !ok {
		return Object{}, false
	}
	c := *o
	c.KeyOps = slices.Clone(o.KeyOps)
	return c, true
}

// Lists returns the number of list requests served.
func (s *Server) Lists() int {
	return restfake.Locked(&s.mu, func() int { return s.lists })
}
