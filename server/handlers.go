package server

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/keystore"
)

// The handlers of spec 3.2 to 3.22. Each one writes exactly one response
// (through s.reject, s.fail, writeOK or writeJSON) and records its status in
// rq. None of them logs on the success path.

func (s *Server) writeJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request, v any) {
	rq.status = http.StatusOK
	if err := api.WriteJSON(w, v); err != nil {
		// Either v cannot be encoded (a bug) or the client is gone; in
		// both cases nothing useful can be sent any more.
		s.logError(ctx, r, rq, err)
	}
}

func writeOK(w http.ResponseWriter, rq *request) {
	rq.status = http.StatusOK
	api.WriteOK(w)
}

// 3.2 GET /version
func (s *Server) handleVersion(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	v, c, ok := buildVersion()
	if !ok {
		s.reject(w, rq, api.ErrVersion)
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.VersionResponse{Version: v, Commit: c})
}

// 3.3 GET /v1/ready
func (s *Server) handleReady(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	_, err := rq.st.cache.Status(ctx)
	if err == nil {
		writeOK(w, rq)
		return
	}
	e := api.ErrStoreError
	if keystore.IsUnreachable(err) {
		e = api.ErrStoreDown
	}
	rq.st.log.LogAttrs(ctx, slog.LevelWarn, "key store is not ready: "+err.Error(), requestAttrs(r, rq)...)
	s.reject(w, rq, e)
}

// 3.4 GET /v1/status
func (s *Server) handleStatus(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	v, _, ok := buildVersion()
	if !ok {
		s.reject(w, rq, api.ErrVersion)
		return
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	resp := api.StatusResponse{
		Version:    v,
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		UpTime:     int64(math.Round(rq.st.now().Sub(s.started).Seconds())),
		CPUs:       runtime.NumCPU(),
		UsableCPUs: runtime.GOMAXPROCS(0),
		HeapAlloc:  mem.HeapAlloc,
		StackAlloc: mem.StackSys,
	}
	state, err := rq.st.cache.Status(ctx)
	if err != nil {
		resp.KeyStoreUnreachable = true
	} else {
		resp.KeyStoreLatency = max(1, state.Latency.Round(time.Millisecond).Milliseconds())
	}
	s.writeJSON(ctx, w, r, rq, &resp)
}

// 3.5 GET /v1/metrics
func (s *Server) handleMetrics(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	if err := s.metrics.write(w, r); err != nil {
		s.logError(ctx, r, rq, err)
	}
	rq.status = http.StatusOK
}

// 3.6 GET /v1/api
func (s *Server) handleAPI(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	routes := make([]api.RouteResponse, len(rq.st.routes))
	for i := range rq.st.routes {
		rt := &rq.st.routes[i]
		routes[i] = api.RouteResponse{
			Method:  rt.Method,
			Path:    rt.Path,
			MaxBody: rt.MaxBody,
			Timeout: int64(rt.Timeout / time.Second),
		}
	}
	s.writeJSON(ctx, w, r, rq, routes)
}

// keyName validates the resource argument as a key name.
func (s *Server) keyName(w http.ResponseWriter, rq *request) (string, bool) {
	if !api.ValidName(rq.resource) {
		s.reject(w, rq, api.InvalidKeyName(rq.resource))
		return "", false
	}
	return rq.resource, true
}

// 3.7 PUT|POST /v1/key/create/<name>
func (s *Server) handleCreateKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	st := rq.st
	v, err := crypto.GenerateKeyVersion(crypto.DefaultAlgorithm(), st.now().UTC(), rq.identity, st.rand)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrGenerateKey)
		return
	}
	s.storeKey(ctx, w, r, rq, name, &v)
}

// storeKey creates the key version v under name in the key store (not in
// the cache) and answers the create or import request.
func (s *Server) storeKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request, name string, v *crypto.KeyVersion) {
	if err := rq.st.cache.Create(ctx, name, v); err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrCreateKey)
		return
	}
	writeOK(w, rq)
	rq.message = "secret key '" + name + "' created"
}

// 3.8 PUT|POST /v1/key/import/<name>
func (s *Server) handleImportKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	var req api.ImportKeyRequest
	if err := api.DecodeJSON(r.Body, &req); err != nil {
		s.logError(ctx, r, rq, err)
		s.reject(w, rq, api.ErrInvalidImportBody)
		return
	}
	defer clear(req.Key)
	alg, err := crypto.ParseAlgorithm(req.Cipher)
	if err != nil {
		s.reject(w, rq, api.UnsupportedAlgorithm(req.Cipher))
		return
	}
	if len(req.Key) != 32 {
		s.reject(w, rq, api.InvalidKeySize(req.Cipher))
		return
	}
	key, err := crypto.NewSecretKey(alg, req.Key)
	if err != nil {
		s.reject(w, rq, api.InvalidKeySize(req.Cipher))
		return
	}
	st := rq.st
	v, err := crypto.ImportKeyVersion(key, st.now().UTC(), rq.identity, st.rand)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrCreateKeyInternal)
		return
	}
	s.storeKey(ctx, w, r, rq, name, &v)
}

// 3.9 GET /v1/key/describe/<name>
func (s *Server) handleDescribeKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	v, err := rq.st.cache.Get(ctx, name)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrReadKey)
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.DescribeKeyResponse{
		Name:      name,
		Algorithm: v.Key.Algorithm().String(),
		CreatedAt: v.CreatedAt,
		CreatedBy: v.CreatedBy,
	})
}

// listPrefix validates a listing pattern and returns the name prefix it
// stands for: "" and "*" list everything, a trailing '*' is stripped.
func (s *Server) listPrefix(w http.ResponseWriter, rq *request) (string, bool) {
	if !api.ValidPattern(rq.resource) {
		s.reject(w, rq, api.InvalidPattern(rq.resource))
		return "", false
	}
	return strings.TrimSuffix(rq.resource, "*"), true
}

// 3.10 GET /v1/key/list/<pattern>: every matching name in one response.
func (s *Server) handleListKeys(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	prefix, ok := s.listPrefix(w, rq)
	if !ok {
		return
	}
	names, _, err := rq.st.cache.List(ctx, prefix, -1)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrListKeys)
		return
	}
	if names == nil {
		names = []string{}
	}
	s.writeJSON(ctx, w, r, rq, &api.ListKeysResponse{Names: names})
}

// 3.11 DELETE /v1/key/delete/<name>
func (s *Server) handleDeleteKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	if err := rq.st.cache.Delete(ctx, name); err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrDeleteKey)
		return
	}
	writeOK(w, rq)
	rq.message = "secret key '" + name + "' deleted"
}

// decodeBody decodes the request body of a crypto route into v, answering
// 400 "invalid request body" on failure.
func (s *Server) decodeBody(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request, v any) bool {
	if err := api.DecodeJSON(r.Body, v); err != nil {
		s.logError(ctx, r, rq, err)
		s.reject(w, rq, api.ErrInvalidBody)
		return false
	}
	return true
}

// 3.12 PUT|POST /v1/key/generate/<name>
func (s *Server) handleGenerateKey(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	req := &rq.body.generate
	// The body is optional: a request with a known length of 0 has none.
	if r.ContentLength != 0 && !s.decodeBody(ctx, w, r, rq, req) {
		return
	}
	st := rq.st
	v, err := st.cache.Get(ctx, name)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrReadKey)
		return
	}
	plaintext := &rq.plaintext
	defer clear(plaintext[:])
	if _, err := io.ReadFull(st.rand, plaintext[:]); err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrGenerateKey)
		return
	}
	ciphertext, err := v.Key.Encrypt(plaintext[:], req.Context, st.rand)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrGenerateKey)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes2(w, "plaintext", plaintext[:], "ciphertext", ciphertext)
}

// 3.13 PUT|POST /v1/key/encrypt/<name>
func (s *Server) handleEncrypt(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	req := &rq.body.encrypt
	if !s.decodeBody(ctx, w, r, rq, req) {
		return
	}
	defer clear(req.Plaintext)
	st := rq.st
	v, err := st.cache.Get(ctx, name)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrReadKey)
		return
	}
	ciphertext, err := v.Key.Encrypt(req.Plaintext, req.Context, st.rand)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrEncrypt)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes(w, "ciphertext", ciphertext)
}

// 3.14 PUT|POST /v1/key/decrypt/<name>
func (s *Server) handleDecrypt(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	req := &rq.body.decrypt
	if !s.decodeBody(ctx, w, r, rq, req) {
		return
	}
	v, err := rq.st.cache.Get(ctx, name)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrReadKey)
		return
	}
	plaintext, err := v.Key.Decrypt(req.Ciphertext, req.Context)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrDecryptInternal)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes(w, "plaintext", plaintext)
	clear(plaintext)
}

// 3.15 PUT|POST /v1/key/hmac/<name>
func (s *Server) handleHMAC(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	name, ok := s.keyName(w, rq)
	if !ok {
		return
	}
	req := &rq.body.hmac
	if !s.decodeBody(ctx, w, r, rq, req) {
		return
	}
	v, err := rq.st.cache.Get(ctx, name)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrReadKey)
		return
	}
	sum, err := v.HMAC(req.Message)
	if err != nil {
		s.fail(ctx, w, r, rq, err, api.ErrInternal)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes(w, "hmac", sum)
}

// policyEntry validates the resource argument as a policy name and looks
// the policy up.
func (s *Server) policyEntry(w http.ResponseWriter, rq *request) (*policyEntry, bool) {
	if !api.ValidName(rq.resource) {
		s.reject(w, rq, api.InvalidPolicyName(rq.resource))
		return nil, false
	}
	p, ok := rq.st.policies[rq.resource]
	if !ok {
		s.reject(w, rq, api.ErrPolicyNotFound)
		return nil, false
	}
	return p, true
}

// 3.16 GET /v1/policy/describe/<name>
func (s *Server) handleDescribePolicy(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := s.policyEntry(w, rq)
	if !ok {
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.DescribePolicyResponse{
		Name:      p.name,
		CreatedAt: s.started,
		CreatedBy: rq.st.conf.Admin,
	})
}

// 3.17 GET /v1/policy/read/<name>
func (s *Server) handleReadPolicy(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	p, ok := s.policyEntry(w, rq)
	if !ok {
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.ReadPolicyResponse{
		Name:      p.name,
		Allow:     p.allow,
		Deny:      p.deny,
		CreatedAt: s.started,
		CreatedBy: rq.st.conf.Admin,
	})
}

// filterPrefix returns the elements of the sorted slice names that start
// with prefix, never nil.
func filterPrefix(names []string, prefix string) []string {
	out := []string{}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// 3.18 GET /v1/policy/list/<pattern>
func (s *Server) handleListPolicies(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	prefix, ok := s.listPrefix(w, rq)
	if !ok {
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.ListPoliciesResponse{Names: filterPrefix(rq.st.polNames, prefix)})
}

// 3.19 GET /v1/identity/describe/<identity>
func (s *Server) handleDescribeIdentity(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	id := rq.resource
	if !api.ValidName(id) {
		s.reject(w, rq, api.InvalidIdentity(id))
		return
	}
	st := rq.st
	if id == st.conf.Admin {
		s.writeJSON(ctx, w, r, rq, &api.DescribeIdentityResponse{IsAdmin: true, CreatedAt: s.started})
		return
	}
	name, ok := st.idents[id]
	if !ok {
		s.reject(w, rq, api.ErrIdentityNotFound)
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.DescribeIdentityResponse{
		Policy:    name,
		CreatedAt: s.started,
		CreatedBy: st.conf.Admin,
	})
}

// 3.20 GET /v1/identity/list/<pattern>
func (s *Server) handleListIdentities(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	prefix, ok := s.listPrefix(w, rq)
	if !ok {
		return
	}
	s.writeJSON(ctx, w, r, rq, &api.ListIdentitiesResponse{Identities: filterPrefix(rq.st.idNames, prefix)})
}

// 3.21 GET /v1/identity/self/describe (fixed, spec 14.1)
func (s *Server) handleSelfDescribe(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	st := rq.st
	id := rq.identity
	if id != "" && id == st.admin {
		s.writeJSON(ctx, w, r, rq, &api.SelfDescribeResponse{Identity: id, IsAdmin: true, CreatedAt: s.started})
		return
	}
	name, ok := st.idents[id]
	if id == "" || !ok {
		s.reject(w, rq, api.ErrIdentityNotFound)
		return
	}
	p := st.policies[name]
	s.writeJSON(ctx, w, r, rq, &api.SelfDescribeResponse{
		Identity:  id,
		CreatedAt: s.started,
		CreatedBy: st.conf.Admin,
		Policy:    name,
		Allow:     p.allow,
		Deny:      p.deny,
	})
}

// 3.22 GET /v1/log/error
func (s *Server) handleErrorLog(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	s.stream(ctx, w, r, rq, s.errorHub)
}

// 3.22 GET /v1/log/audit
func (s *Server) handleAuditLog(ctx context.Context, w http.ResponseWriter, r *http.Request, rq *request) {
	s.stream(ctx, w, r, rq, s.auditHub)
}
