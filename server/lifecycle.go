package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keyring"
	"github.com/openkes/openkes/kes"
)

// The key lifecycle of OpenKES (docs/keys.md): versions and rotation,
// rewrap, and deletion protection with a window after which a sweeper
// removes scheduled keys.

// describeKey is the answer of /v1/key/describe for k: the upstream
// fields of its first version, plus its versions if it was rotated and
// its deletion if one is scheduled.
func describeKey(name string, k *keyring.Key) *api.DescribeKeyResponse {
	v1 := &k.Versions[0].Key
	resp := &api.DescribeKeyResponse{
		Name:      name,
		Algorithm: v1.Key.Algorithm().String(),
		Creation:  api.Creation{CreatedAt: v1.CreatedAt, CreatedBy: v1.CreatedBy},
	}
	if k.Rotated() {
		resp.Version = k.Latest().N
		resp.Versions = make([]kes.KeyVersionInfo, len(k.Versions))
		for i := range k.Versions {
			v := &k.Versions[i]
			resp.Versions[i] = kes.KeyVersionInfo{Version: v.N, CreatedAt: v.Key.CreatedAt, CreatedBy: kes.Identity(v.Key.CreatedBy)}
		}
	}
	if d := k.Deletion; d != nil {
		resp.Deletion = &kes.KeyDeletion{ScheduledAt: d.ScheduledAt, DeleteAt: d.DeleteAt, ScheduledBy: kes.Identity(d.ScheduledBy)}
	}
	return resp
}

// open decrypts ciphertext of the key name, read as k, and returns the
// plaintext and the key as last read (newer than k if open had to read
// it again). The version comes from the ciphertext header (none: version
// 1); want, if set, must match it. One AEAD open per candidate: the
// header's version, and version 1 if the header's fails (a version-1
// ciphertext may start like a header, see crypto.SplitVersioned). A
// version the cached key does not have makes the cache read the key again
// (keycache.Cache.GetVersion). Every mismatch is crypto.ErrDecrypt.
func (rq *request) open(name string, k *keyring.Key, ciphertext, context []byte, want api.RequestVersion) ([]byte, *keyring.Key, error) {
	n, inner, versioned := crypto.SplitVersioned(ciphertext)
	if versioned && (!want.Set || want.N == int(n)) {
		v, ok := k.Version(int(n))
		if !ok {
			k2, err := rq.st.cache.GetVersion(rq.ctx, name, int(n))
			if err != nil {
				return nil, k, err
			}
			k = k2
			v, ok = k.Version(int(n))
		}
		if ok {
			if p, err := v.Key.Key.Decrypt(inner, context); err == nil {
				return p, k, nil
			}
		}
	}
	if want.Set && want.N != 1 {
		return nil, k, crypto.ErrDecrypt
	}
	p, err := k.Versions[0].Key.Key.Decrypt(ciphertext, context)
	return p, k, err
}

// PUT|POST /v1/key/rotate/<name> (docs/keys.md): a new version of the
// key's algorithm; answers {"version":<n>}.
func (s *Server) handleRotateKey(rq *request) {
	name, k, ok := rq.namedKey()
	if !ok || !rq.unscheduled(k) {
		return
	}
	st := rq.st
	v, err := crypto.GenerateKeyVersion(k.Latest().Key.Key.Algorithm(), st.now().UTC(), rq.identity, st.rand)
	if err != nil {
		rq.failAs(err, api.ErrGenerateKey)
		return
	}
	n, err := st.cache.Rotate(rq.ctx, name, &v)
	if err != nil {
		rq.fail(err)
		return
	}
	rq.json(&api.RotateKeyResponse{Version: n})
	rq.message = "secret key '" + name + "' rotated to version " + strconv.Itoa(n)
}

// PUT|POST /v1/key/rewrap/<name> (docs/keys.md): decrypts a ciphertext
// of any version and encrypts its plaintext with the newest version;
// answers {"ciphertext":...,"version":<n>}. The plaintext never leaves
// the server. Failures to decrypt answer as /v1/key/decrypt does.
func (s *Server) handleRewrapKey(rq *request) {
	req := &rq.body.rewrap
	name, k, _, ok := rq.sealingKey(req, false)
	if !ok {
		return
	}
	plaintext, k, err := rq.open(name, k, req.Ciphertext, req.Context, api.RequestVersion{})
	defer clear(plaintext)
	if err != nil {
		rq.fail(err)
		return
	}
	v := k.Latest()
	ciphertext, err := seal(v, plaintext, req.Context, rq.st.rand)
	if err != nil {
		rq.failAs(err, api.ErrEncrypt)
		return
	}
	rq.status = http.StatusOK
	api.WriteBytes(rq.w, "ciphertext", ciphertext, v.N)
	rq.message = "ciphertext of secret key '" + name + "' rewrapped to version " + strconv.Itoa(v.N)
}

// PUT|POST /v1/key/restore/<name> (docs/keys.md): cancels a scheduled
// deletion.
func (s *Server) handleRestoreKey(rq *request) {
	if name, ok := rq.keyName(); ok {
		rq.done(rq.st.cache.Restore(rq.ctx, name), "secret key '"+name+"' restored")
	}
}

// scheduleDeletion is /v1/key/delete with a deletion window: the key is
// scheduled for deletion window from now and answered like a delete.
func (rq *request) scheduleDeletion(name string, window time.Duration) {
	now := rq.st.now().UTC()
	d := keyring.Deletion{ScheduledAt: now, DeleteAt: now.Add(window), ScheduledBy: rq.identity}
	rq.done(rq.st.cache.ScheduleDeletion(rq.ctx, name, d), "secret key '"+name+"' scheduled for deletion at "+d.DeleteAt.Format(time.RFC3339))
}

// sweepInterval is how often the sweeper of a deletion window runs:
// window/4, at most a minute and at least a second.
func sweepInterval(window time.Duration) time.Duration {
	return max(min(window/4, time.Minute), time.Second)
}

// sweepTimeout bounds one sweep.
const sweepTimeout = time.Minute

// startSweeper starts the sweeper of st if it has a deletion window; it
// stops with st (st.cancel). The state of scheduled deletions lives in
// the key store only, so a restarted server goes on where it stopped.
func (s *Server) startSweeper(st *state) {
	window := st.conf.Deletion.Window
	if window <= 0 {
		return
	}
	s.background(st, func(ctx context.Context) {
		t := time.NewTicker(sweepInterval(window))
		defer t.Stop()
		for s.wait(ctx, t.C) {
			s.sweep(ctx, st)
		}
	})
}

// wait waits for c to deliver; it reports false if ctx ends or the
// server closes first.
func (s *Server) wait(ctx context.Context, c <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	case <-c:
		return true
	}
}

// sweep removes the keys whose deletion window has ended, with an audit
// record and an INFO log line per key.
func (s *Server) sweep(ctx context.Context, st *state) {
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	removed, err := st.cache.Sweep(ctx, st.now())
	for _, name := range removed {
		st.log.LogAttrs(ctx, slog.LevelInfo, "secret key '"+name+"' deleted: its deletion window ended", slog.String("key", name))
		s.emitAudit(ctx, st, &AuditRecord{
			Time:    st.now(),
			Method:  http.MethodDelete,
			Path:    api.PathKeyDelete + name,
			KeyName: name,
			Status:  http.StatusOK,
			Message: "secret key '" + name + "' deleted: its deletion window ended",
		})
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		st.log.LogAttrs(ctx, slog.LevelError, "deleting keys whose deletion window ended: "+err.Error())
	}
}
