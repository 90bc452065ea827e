package server

import (
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/kes"
)

// The handlers of the routes (docs/api.md#routes). Each one writes exactly one response
// through the methods of rq (see request). None of them logs on the
// success path.

// GET /version (docs/api.md#version)
func (s *Server) handleVersion(rq *request) {
	v, c, ok := buildVersion()
	if !ok {
		rq.reject(api.ErrVersion)
		return
	}
	rq.json(&api.VersionResponse{Version: v, Commit: c})
}

// GET /v1/ready (docs/api.md#ready)
func (s *Server) handleReady(rq *request) {
	_, err := rq.st.cache.Status(rq.ctx)
	if err == nil {
		rq.ok()
		return
	}
	// Not ready is an expected state, not a server error: a warning, and
	// always the route's answer (502, or 504 for an unreachable store).
	rq.log(slog.LevelWarn, "key store is not ready: "+err.Error())
	e, _ := api.Translate(err, rq.rt.Err)
	rq.reject(e)
}

// GET /v1/status (docs/api.md#status)
func (s *Server) handleStatus(rq *request) {
	v, _, ok := buildVersion()
	if !ok {
		rq.reject(api.ErrVersion)
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
	state, err := rq.st.cache.Status(rq.ctx)
	if err != nil {
		resp.KeyStoreUnreachable = true
	} else {
		resp.KeyStoreLatency = max(1, state.Latency.Round(time.Millisecond).Milliseconds())
	}
	rq.json(&resp)
}

// GET /v1/metrics (docs/api.md#metrics)
func (s *Server) handleMetrics(rq *request) {
	if err := s.metrics.write(rq.w, rq.r); err != nil {
		rq.logError(err)
	}
	rq.status = http.StatusOK
}

// GET /v1/api (docs/api.md#routes)
func (s *Server) handleAPI(rq *request) {
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
	rq.json(routes)
}

// keyName validates the resource argument as a key name.
func (rq *request) keyName() (string, bool) {
	if !api.ValidName(rq.resource) {
		rq.reject(api.InvalidKeyName(rq.resource))
		return "", false
	}
	return rq.resource, true
}

// key reads the key name with its versions and deletion state. A failure
// is answered (a key-store failure with 502 "failed to read key",
// whatever the route).
func (rq *request) key(name string) (*keyring.Key, bool) {
	k, err := rq.st.cache.Get(rq.ctx, name)
	if err != nil {
		rq.failAs(err, api.ErrReadKey)
		return nil, false
	}
	return k, true
}

// namedKey validates the key name and reads the key; a failure is
// answered.
func (rq *request) namedKey() (string, *keyring.Key, bool) {
	name, ok := rq.keyName()
	if !ok {
		return "", nil, false
	}
	k, ok := rq.key(name)
	return name, k, ok
}

// storeKey ends create and import: it creates the new key version v
// under name in the key store (not in the cache) and answers. err is the
// failure of making v, answered with its translation or the route's
// generic error.
func (rq *request) storeKey(name string, v crypto.KeyVersion, err error) {
	if err != nil {
		rq.fail(err)
		return
	}
	if err := rq.st.cache.Create(rq.ctx, name, &v); err != nil {
		rq.failAs(err, api.ErrCreateKey)
		return
	}
	rq.ok()
	rq.message = "secret key '" + name + "' created"
}

// done ends the routes that change a key and answer nothing: it answers
// the failure err with its translation or the route's generic error, or
// 200 with message for the audit record.
func (rq *request) done(err error, message string) {
	if err != nil {
		rq.fail(err)
		return
	}
	rq.ok()
	rq.message = message
}

// PUT|POST /v1/key/create/<name> (docs/api.md#key-create)
func (s *Server) handleCreateKey(rq *request) {
	name, ok := rq.keyName()
	if !ok {
		return
	}
	st := rq.st
	v, err := crypto.GenerateKeyVersion(crypto.DefaultAlgorithm(), st.now().UTC(), rq.identity, st.rand)
	rq.storeKey(name, v, err)
}

// PUT|POST /v1/key/import/<name> (docs/api.md#key-import)
func (s *Server) handleImportKey(rq *request) {
	name, ok := rq.keyName()
	if !ok {
		return
	}
	var req api.ImportKeyRequest
	if !rq.decode(&req, api.ErrInvalidImportBody) {
		return
	}
	defer clear(req.Key)
	alg, err := crypto.ParseAlgorithm(req.Cipher)
	if err != nil {
		rq.reject(api.UnsupportedAlgorithm(req.Cipher))
		return
	}
	key, err := crypto.NewSecretKey(alg, req.Key)
	if err != nil || len(req.Key) != 32 {
		rq.reject(api.InvalidKeySize(req.Cipher))
		return
	}
	st := rq.st
	v, err := crypto.ImportKeyVersion(key, st.now().UTC(), rq.identity, st.rand)
	rq.storeKey(name, v, err)
}

// GET /v1/key/describe/<name> (docs/api.md#key-describe)
func (s *Server) handleDescribeKey(rq *request) {
	if name, k, ok := rq.namedKey(); ok {
		rq.json(describeKey(name, k))
	}
}

// listPrefix validates a listing pattern and returns the name prefix it
// stands for: "" and "*" list everything, a trailing '*' is stripped.
func (rq *request) listPrefix() (string, bool) {
	if !api.ValidPattern(rq.resource) {
		rq.reject(api.InvalidPattern(rq.resource))
		return "", false
	}
	return strings.TrimSuffix(rq.resource, "*"), true
}

// GET /v1/key/list/<pattern>: every matching name in one response. (docs/api.md#key-list)
func (s *Server) handleListKeys(rq *request) {
	prefix, ok := rq.listPrefix()
	if !ok {
		return
	}
	names, scheduled, _, err := rq.st.cache.ListScheduled(rq.ctx, prefix, -1)
	if err != nil {
		rq.fail(err)
		return
	}
	if names == nil {
		names = []string{}
	}
	resp := api.ListKeysResponse{Names: names}
	for _, name := range names {
		if scheduled[name] {
			resp.Scheduled = append(resp.Scheduled, name)
		}
	}
	rq.json(&resp)
}

// DELETE /v1/key/delete/<name> (docs/api.md#key-delete)
func (s *Server) handleDeleteKey(rq *request) {
	name, ok := rq.keyName()
	if !ok {
		return
	}
	if window := rq.st.conf.Deletion.Window; window > 0 {
		rq.scheduleDeletion(name, window)
		return
	}
	// A key scheduled while a window was configured is not deleted
	// behind the schedule's back: restore it first. Any failure to read
	// it is left to the delete, which answers as upstream.
	if k, err := rq.st.cache.Get(rq.ctx, name); err == nil && !rq.unscheduled(k) {
		return
	}
	rq.done(rq.st.cache.Delete(rq.ctx, name), "secret key '"+name+"' deleted")
}

// cryptoKey starts every crypto route: it validates the key name, decodes
// the request body into req (400 "invalid request body") and reads the
// key. With bodyOptional, a request with a known length of 0 has no body.
// A failure is answered.
func (rq *request) cryptoKey(req any, bodyOptional bool) (string, *keyring.Key, bool) {
	if _, ok := rq.keyName(); !ok {
		return "", nil, false
	}
	if (!bodyOptional || rq.r.ContentLength != 0) && !rq.decode(req, api.ErrInvalidBody) {
		return "", nil, false
	}
	return rq.namedKey()
}

// sealingKey is cryptoKey for the routes that encrypt (generate, encrypt,
// rewrap): it returns the key's newest version, and answers 409 "key is
// scheduled for deletion" for a scheduled key.
func (rq *request) sealingKey(req any, bodyOptional bool) (string, *keyring.Key, *keyring.Version, bool) {
	name, k, ok := rq.cryptoKey(req, bodyOptional)
	if !ok || !rq.unscheduled(k) {
		return "", nil, nil, false
	}
	return name, k, k.Latest(), true
}

// unscheduled reports whether k is not scheduled for deletion; a
// scheduled key is answered with 409 "key is scheduled for deletion".
func (rq *request) unscheduled(k *keyring.Key) bool {
	if k.Deletion != nil {
		rq.reject(kes.ErrKeyScheduled)
		return false
	}
	return true
}

// seal encrypts plaintext with version v: a ciphertext of version 1 in
// the upstream format, of a later version with the version header
// (docs/keys.md#ciphertexts).
func seal(v *keyring.Version, plaintext, context []byte, rand io.Reader) ([]byte, error) {
	return v.Key.Key.EncryptVersion(uint32(v.N), plaintext, context, rand)
}

// answerVersion is the "version" field of an answer made with version v:
// none (0) for version 1, so that unrotated keys answer as upstream.
func answerVersion(v *keyring.Version) int {
	if v.N < 2 {
		return 0
	}
	return v.N
}

// answer ends encrypt, decrypt and HMAC: it answers {"<field>":"<base64
// out>"} plus "version":<version> if version > 0, or the failure err
// with its translation or the route's generic error. out is cleared once
// written, since it may be a plaintext.
func (rq *request) answer(field string, out []byte, version int, err error) {
	if err != nil {
		rq.fail(err)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes(rq.w, field, out, version)
	clear(out)
}

// PUT|POST /v1/key/generate/<name> (docs/api.md#key-generate)
func (s *Server) handleGenerateKey(rq *request) {
	req := &rq.body.generate
	_, _, v, ok := rq.sealingKey(req, true)
	if !ok {
		return
	}
	rand := rq.st.rand
	plaintext := &rq.plaintext
	defer clear(plaintext[:])
	if _, err := io.ReadFull(rand, plaintext[:]); err != nil {
		rq.fail(err)
		return
	}
	ciphertext, err := seal(v, plaintext[:], req.Context, rand)
	if err != nil {
		rq.fail(err)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes2(rq.w, "plaintext", plaintext[:], "ciphertext", ciphertext, answerVersion(v))
}

// PUT|POST /v1/key/encrypt/<name> (docs/api.md#key-encrypt)
func (s *Server) handleEncrypt(rq *request) {
	req := &rq.body.encrypt
	defer func() { clear(req.Plaintext) }()
	if _, _, v, ok := rq.sealingKey(req, false); ok {
		ciphertext, err := seal(v, req.Plaintext, req.Context, rq.st.rand)
		rq.answer("ciphertext", ciphertext, answerVersion(v), err)
	}
}

// PUT|POST /v1/key/decrypt/<name> (docs/api.md#key-decrypt)
func (s *Server) handleDecrypt(rq *request) {
	req := &rq.body.decrypt
	if name, k, ok := rq.cryptoKey(req, false); ok {
		plaintext, _, err := rq.open(name, k, req.Ciphertext, req.Context, req.Version)
		rq.answer("plaintext", plaintext, 0, err)
	}
}

// PUT|POST /v1/key/hmac/<name> (docs/api.md#key-hmac). HMACs always use
// the key's first version, so that they stay the same across rotations
// (docs/keys.md).
func (s *Server) handleHMAC(rq *request) {
	req := &rq.body.hmac
	if _, k, ok := rq.cryptoKey(req, false); ok {
		sum, err := k.Versions[0].Key.HMAC(req.Message)
		rq.answer("hmac", sum, 0, err)
	}
}

// policyEntry validates the resource argument as a policy name and looks
// the policy up.
func (rq *request) policyEntry() (*policyEntry, bool) {
	if !api.ValidName(rq.resource) {
		rq.reject(api.InvalidPolicyName(rq.resource))
		return nil, false
	}
	p, ok := rq.st.policies[rq.resource]
	if !ok {
		rq.reject(kes.ErrPolicyNotFound)
		return nil, false
	}
	return p, true
}

// GET /v1/policy/describe/<name> (docs/api.md#policy-describe)
func (s *Server) handleDescribePolicy(rq *request) {
	if p, ok := rq.policyEntry(); ok {
		rq.json(&api.DescribePolicyResponse{Name: p.name, CreatedAt: s.started, CreatedBy: kes.Identity(rq.st.conf.Admin)})
	}
}

// GET /v1/policy/read/<name> (docs/api.md#policy-read)
func (s *Server) handleReadPolicy(rq *request) {
	if p, ok := rq.policyEntry(); ok {
		rq.json(&api.ReadPolicyResponse{Name: p.name, Policy: kes.Policy{
			Allow:     p.allow,
			Deny:      p.deny,
			CreatedAt: s.started,
			CreatedBy: kes.Identity(rq.st.conf.Admin),
		}})
	}
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

// GET /v1/policy/list/<pattern> (docs/api.md#policy-list)
func (s *Server) handleListPolicies(rq *request) {
	if prefix, ok := rq.listPrefix(); ok {
		rq.json(&api.ListPoliciesResponse{Names: filterPrefix(rq.st.polNames, prefix)})
	}
}

// GET /v1/identity/describe/<identity> (docs/api.md#identity-describe)
func (s *Server) handleDescribeIdentity(rq *request) {
	id := rq.resource
	if !api.ValidName(id) {
		rq.reject(api.InvalidIdentity(id))
		return
	}
	st := rq.st
	if id == st.conf.Admin {
		rq.json(&api.DescribeIdentityResponse{IsAdmin: true, Creation: api.Creation{CreatedAt: s.started}})
		return
	}
	name, ok := st.idents[id]
	if !ok {
		rq.reject(kes.ErrIdentityNotFound)
		return
	}
	rq.json(&api.DescribeIdentityResponse{
		Policy:   name,
		Creation: api.Creation{CreatedAt: s.started, CreatedBy: st.conf.Admin},
	})
}

// GET /v1/identity/list/<pattern> (docs/api.md#identity-list)
func (s *Server) handleListIdentities(rq *request) {
	if prefix, ok := rq.listPrefix(); ok {
		rq.json(&api.ListIdentitiesResponse{Identities: filterPrefix(rq.st.idNames, prefix)})
	}
}

// GET /v1/identity/self/describe (fixed) (docs/api.md#identity-self-describe)
func (s *Server) handleSelfDescribe(rq *request) {
	st := rq.st
	id := rq.identity
	if id != "" && id == st.admin {
		rq.json(&api.SelfDescribeResponse{Identity: id, IsAdmin: true, Creation: api.Creation{CreatedAt: s.started}})
		return
	}
	name, ok := st.idents[id]
	if id == "" || !ok {
		rq.reject(kes.ErrIdentityNotFound)
		return
	}
	p := st.policies[name]
	rq.json(&api.SelfDescribeResponse{
		Identity: id,
		Creation: api.Creation{CreatedAt: s.started, CreatedBy: st.conf.Admin},
		Policy:   name,
		Allow:    p.allow,
		Deny:     p.deny,
	})
}

// GET /v1/log/error (docs/api.md#log-streams)
func (s *Server) handleErrorLog(rq *request) {
	s.stream(rq, s.errorHub)
}

// GET /v1/log/audit (docs/api.md#log-streams)
func (s *Server) handleAuditLog(rq *request) {
	s.stream(rq, s.auditHub)
}
