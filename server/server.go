// Package server implements the KES HTTPS server as a library: the v1 API,
// mTLS identities, policies, the key cache and the crypto operations.
//
// # Life cycle
//
// [New] validates a [Config], compiles its policies, puts a key cache in
// front of its key store and creates the configured keys. [Server.Serve]
// accepts TLS connections (HTTP/2 and HTTP/1.1) until its context is
// cancelled or [Server.Close] is called. HTTP/2 is net/http's; HTTP/1.1
// has a leaner loop of its own with net/http's wire behaviour, and
// [Config.HTTP1Stdlib] switches back to net/http. [Server.Update] swaps in
// a new configuration atomically while requests keep being served:
// requests that started on the old configuration finish on it, and the
// old key store is closed only afterwards.
//
// # Wire compatibility
//
// Routes, status codes, JSON bodies and error texts follow the behaviour of
// the original MinIO KES server byte for byte (see internal/api), with the
// fixes listed in the project's decision list: key listings strip a
// trailing '*', self-describe works for policy identities, and the log
// streams really stream.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openkes/openkes/internal/api"
	"github.com/openkes/openkes/internal/crypto"
	"github.com/openkes/openkes/internal/keycache"
	"github.com/openkes/openkes/internal/policy"
	"github.com/openkes/openkes/keystore"
)

const (
	// shutdownGrace is how long a graceful shutdown waits for in-flight
	// requests before connections are closed forcibly.
	shutdownGrace = 3 * time.Second

	// retireTimeout bounds how long a replaced configuration waits for its
	// in-flight requests before its cache and key store are closed anyway.
	retireTimeout = 2 * time.Minute
)

// Server is a KES server. Create it with New. A Server is safe for
// concurrent use.
type Server struct {
	state   atomic.Pointer[state]
	started time.Time // server start, local zone: created_at of policies and identities

	metrics  *metrics
	auditHub *hub
	errorHub *hub
	// errText formats error-log records for /v1/log/error subscribers.
	errText slog.Handler

	mu       sync.Mutex // guards closed, updating and the serving set
	closed   bool
	closing  chan struct{} // closed by Close
	serving  sync.WaitGroup
	retiring sync.WaitGroup

	// Test knobs for the HTTP/1.1 loop; zero means the defaults of
	// internal/h1. Set before Serve.
	idleTimeout       time.Duration
	readHeaderTimeout time.Duration
	// h2StreamTimeout replaces the constant of that name (conn.go) for
	// the HTTP/2 streams of Serve when not zero.
	h2StreamTimeout time.Duration
	// http1Conns counts the connections served by the HTTP/1.1 loop.
	http1Conns atomic.Int64
	// testHandler replaces the server's own handler in Serve (tests and
	// benchmarks of the HTTP layer).
	testHandler http.Handler

	connsMu     sync.Mutex
	connServers map[*connServer]struct{} // of the running Serve calls
}

// state is one complete, immutable configuration of a Server. Requests
// take a reference (acquire) so that a replaced state is only torn down
// after its last request finished.
type state struct {
	conf      Config
	admin     string // conf.Admin if it is a valid identity, else ""
	policies  map[string]*policyEntry
	polNames  []string          // sorted policy names
	idents    map[string]string // identity → policy name
	idNames   []string          // sorted: admin (as configured) ∪ policy identities
	routes    []route
	byPath    map[string]*route // exact paths, prefix paths and prefix paths without '/'
	tlsConfig *tls.Config
	// getClientCAs is TLSConfig.GetClientCAs with auth on; caConfig is
	// tlsConfig with its latest pool (see tlsConfigFor).
	getClientCAs func() *x509.CertPool
	caConfig     atomic.Pointer[tls.Config]
	cache        *keycache.Cache
	log          *slog.Logger
	now          func() time.Time
	rand         io.Reader

	refs    atomic.Int64
	retired atomic.Bool
	cancel  context.CancelFunc // stops background work of this state
}

type policyEntry struct {
	name     string
	compiled *policy.Policy
	allow    api.RuleSet
	deny     api.RuleSet
}

// New validates conf and returns a Server that uses it. It creates the
// configured Keys with the admin as creator. It does not listen yet.
//
// New fails if conf is invalid (the error lists every problem), if a
// policy does not compile, or if creating a configured key fails for a
// reason other than "already exists" or an unreachable key store. When the
// store is unreachable New succeeds and keeps trying to create the keys in
// the background until it works or the Server is closed. On error
// conf.Store is left open for the caller.
func New(ctx context.Context, conf *Config) (*Server, error) {
	if conf == nil {
		return nil, errors.New("server: nil config")
	}
	s := &Server{
		closing:     make(chan struct{}),
		connServers: map[*connServer]struct{}{},
		auditHub:    newHub(),
		errorHub:    newHub(),
	}
	s.errText = slog.NewTextHandler(hubWriter{s.errorHub}, &slog.HandlerOptions{Level: slog.LevelDebug})
	now := time.Now
	if conf.Now != nil {
		now = conf.Now
	}
	s.started = now()
	s.metrics = newMetrics(s.started, s.auditHub, s.errorHub)

	st, err := s.newState(conf)
	if err != nil {
		return nil, err
	}
	if err := s.createKeys(ctx, st); err != nil {
		st.cancel()
		st.cache.Close()
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// newState validates conf and builds a complete state from it.
func (s *Server) newState(conf *Config) (*state, error) {
	if err := conf.Validate(); err != nil {
		return nil, err
	}
	st := &state{conf: *conf}
	st.conf.Policies = nil // not needed; the compiled form is in st.policies
	st.conf.Routes = nil
	st.conf.Keys = slices.Clone(conf.Keys)
	if validIdentity(conf.Admin) {
		st.admin = conf.Admin
	}
	st.now = time.Now
	if conf.Now != nil {
		st.now = conf.Now
	}
	st.rand = rand.Reader
	if conf.Rand != nil {
		st.rand = conf.Rand
	}
	st.log = slog.New(&teeHandler{inner: loggerHandler(conf.ErrorLog), text: s.errText, hub: s.errorHub})

	st.policies = make(map[string]*policyEntry, len(conf.Policies))
	st.idents = map[string]string{}
	ids := map[string]struct{}{}
	if conf.Admin != "" {
		ids[conf.Admin] = struct{}{}
	}
	for name, p := range conf.Policies {
		compiled, err := policy.Compile(p.Allow, p.Deny)
		if err != nil {
			return nil, fmt.Errorf("policy.%s: %w", name, err)
		}
		e := &policyEntry{name: name, compiled: compiled, allow: ruleSet(p.Allow), deny: ruleSet(p.Deny)}
		st.policies[name] = e
		st.polNames = append(st.polNames, name)
		for _, id := range p.Identities {
			st.idents[id] = name
			ids[id] = struct{}{}
		}
	}
	sort.Strings(st.polNames)
	for id := range ids {
		st.idNames = append(st.idNames, id)
	}
	sort.Strings(st.idNames)

	st.routes = buildRoutes(conf.Routes)
	st.byPath = make(map[string]*route, 2*len(st.routes))
	skipAuth := false
	for i := range st.routes {
		rt := &st.routes[i]
		st.byPath[rt.Path] = rt
		if rt.IsPrefix() {
			st.byPath[rt.Path[:len(rt.Path)-1]] = rt
		}
	}
	for _, rc := range conf.Routes {
		skipAuth = skipAuth || rc.SkipAuth
	}
	tlsConf, err := newTLSConfig(&conf.TLS, skipAuth, st.now)
	if err != nil {
		return nil, err
	}
	st.tlsConfig = tlsConf
	if conf.TLS.VerifyClients {
		st.getClientCAs = conf.TLS.GetClientCAs
	}

	st.cache = keycache.New(meteredStore{conf.Store, s.metrics.x}, keycache.Config{
		Any:      conf.Cache.Any,
		Unused:   conf.Cache.Unused,
		Offline:  conf.Cache.Offline,
		Observer: s.metrics.x,
		Watcher:  watcherOf(conf.Store),
	}, st.log)
	st.cancel = func() {}
	s.startSweeper(st)
	return st, nil
}

// watcherOf returns store as a keystore.Watcher if it can report changes
// made through other servers, else nil.
func watcherOf(store keystore.Store) keystore.Watcher {
	if w, ok := store.(keystore.Watcher); ok {
		return w
	}
	return nil
}

func ruleSet(patterns []string) api.RuleSet {
	if len(patterns) == 0 {
		return nil
	}
	set := make(api.RuleSet, len(patterns))
	for _, p := range patterns {
		set[p] = struct{}{}
	}
	return set
}

func loggerHandler(l *slog.Logger) slog.Handler {
	if l == nil {
		return nil
	}
	return l.Handler()
}

// validIdentity reports whether id can be the identity of a certificate:
// 64 lowercase hex characters.
func validIdentity(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// acquire returns the current state with a reference taken; release it
// with st.release. It returns nil only if the Server has no state (never
// after New succeeded).
func (s *Server) acquire() *state {
	for {
		st := s.state.Load()
		if st == nil {
			return nil
		}
		st.refs.Add(1)
		if !st.retired.Load() {
			return st
		}
		// Lost the race against a concurrent Update: retry on the new state.
		st.refs.Add(-1)
		if s.state.Load() == st {
			// Closed server: serve on the retired state rather than spin.
			st.refs.Add(1)
			return st
		}
	}
}

func (st *state) release() { st.refs.Add(-1) }

// createKeys creates the configured keys of st. If the key store is
// unreachable it logs the problem, starts a background retry bound to
// st's lifetime and returns nil.
func (s *Server) createKeys(ctx context.Context, st *state) error {
	pending, err := st.createKeys(ctx, st.conf.Keys)
	if err == nil {
		return nil
	}
	if !keystore.IsUnreachable(err) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st.log.ErrorContext(ctx, "cannot create configured keys, retrying in the background", "err", err)
	s.background(st, func(ctx context.Context) { s.retryCreateKeys(ctx, st, pending) })
	return nil
}

// background runs f in a goroutine of st: its context ends with st
// (st.cancel), and Close waits for it.
func (s *Server) background(st *state, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	old := st.cancel
	st.cancel = func() { cancel(); old() }
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		f(ctx)
	}()
}

// createKeys creates the named keys that do not exist yet. On error it
// returns the names not created yet.
func (st *state) createKeys(ctx context.Context, names []string) ([]string, error) {
	for i, name := range names {
		v, err := crypto.GenerateKeyVersion(crypto.DefaultAlgorithm(), st.now().UTC(), st.conf.Admin, st.rand)
		if err != nil {
			return names[i:], fmt.Errorf("server: create key '%s': %w", name, err)
		}
		err = st.cache.Create(ctx, name, &v)
		if err != nil && !errors.Is(err, keystore.ErrExists) {
			return names[i:], fmt.Errorf("server: create key '%s': %w", name, err)
		}
	}
	return nil, nil
}

func (s *Server) retryCreateKeys(ctx context.Context, st *state, pending []string) {
	delay := time.Second
	for s.wait(ctx, time.After(delay)) {
		var err error
		pending, err = st.createKeys(ctx, pending)
		if err == nil {
			st.log.InfoContext(ctx, "created configured keys")
			return
		}
		if ctx.Err() != nil {
			return
		}
		st.log.ErrorContext(ctx, "cannot create configured keys", "err", err)
		delay = min(2*delay, 30*time.Second)
	}
}

// Serve accepts TCP connections on ln, wraps them in TLS and serves the
// API (HTTP/2 and HTTP/1.1) until ctx is cancelled or Close is called; then
// it shuts down gracefully: log streams end at once, other requests get a
// few seconds, then connections are closed. Serve closes ln.
//
// HTTP/2 is served by net/http. HTTP/1.1 is served by the request loop of
// internal/h1, which answers with the same bytes as net/http for less
// CPU, unless Config.HTTP1Stdlib is set. Connections are limited as
// Config.Limits says.
//
// Serve returns nil after such a shutdown, or the error that made
// accepting connections fail. It returns an error at once if the Server is
// closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("server: closed")
	}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	stop := make(chan struct{}) // ends the log streams of this listener
	var handler http.Handler = s
	if s.testHandler != nil {
		handler = s.testHandler
	}
	newHTTPServer := func(info func() *connInfo) *http.Server {
		srv := &http.Server{
			Handler:           bodyDeadline{s, handler},
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			ErrorLog:          slog.NewLogLogger(currentHandler{s}, slog.LevelInfo),
			TLSConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				NextProtos:         []string{"h2", "http/1.1"},
				GetConfigForClient: s.getConfigForClient,
			},
			BaseContext: func(net.Listener) context.Context {
				return context.WithValue(context.Background(), stopKey{}, stop)
			},
			ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
				return context.WithValue(ctx, connKey{}, info())
			},
		}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetHTTP2(true)
		return srv
	}
	// srv serves HTTP/1.1 with Config.HTTP1Stdlib, h2srv HTTP/2 with
	// deadlines that every stream starts with (see h2StreamTimeout).
	streamTimeout := h2StreamTimeout
	if s.h2StreamTimeout > 0 {
		streamTimeout = s.h2StreamTimeout
	}
	srv := newHTTPServer(func() *connInfo { return new(connInfo) })
	h2srv := newHTTPServer(func() *connInfo { return &connInfo{streamTimeout: streamTimeout} })
	h2srv.ReadTimeout, h2srv.WriteTimeout = streamTimeout-streamTimeout/4, streamTimeout

	// Serve accepts and handshakes itself (conn.go); h2srv gets the HTTP/2
	// connections, srv the HTTP/1.1 ones when Config.HTTP1Stdlib is set.
	cs := newConnServer(s, srv, h2srv, handler, ln.Addr(), stop)
	defer cs.h1.Close() // after a graceful shutdown: releases its context
	s.connsMu.Lock()
	s.connServers[cs] = struct{}{}
	s.connsMu.Unlock()
	defer func() {
		s.connsMu.Lock()
		delete(s.connServers, cs)
		s.connsMu.Unlock()
	}()
	var hsDone sync.WaitGroup
	hsDone.Go(func() { srv.Serve(cs.hl) }) // returns http.ErrServerClosed after Shutdown or Close
	hsDone.Go(func() { h2srv.Serve(cs.h2l) })
	errc := make(chan error, 1)
	go func() { errc <- cs.accept(ln) }()
	select {
	case err := <-errc:
		close(stop)
		ln.Close()
		cs.closeAll()
		srv.Close()
		h2srv.Close()
		hsDone.Wait()
		cs.wait(shutdownGrace)
		return err
	case <-ctx.Done():
	case <-s.closing:
	}
	close(stop)
	ln.Close()
	<-errc
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, hs := range []*http.Server{srv, h2srv} {
		wg.Go(func() {
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		})
	}
	wg.Go(func() {
		if err := cs.shutdown(sctx); err != nil {
			cs.closeAll()
		}
	})
	wg.Wait()
	hsDone.Wait()
	cs.wait(shutdownGrace)
	return nil
}

type stopKey struct{}

func (s *Server) getConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	st := s.state.Load()
	if st.getClientCAs == nil {
		return st.tlsConfig, nil
	}
	return st.tlsConfigFor(st.getClientCAs()), nil
}

// tlsConfigFor returns the state's TLS configuration with pool as the
// client CAs, cloned once per pool (the pool changes only when the CA
// files do).
func (st *state) tlsConfigFor(pool *x509.CertPool) *tls.Config {
	conf := st.caConfig.Load()
	if conf != nil && conf.ClientCAs == pool {
		return conf
	}
	conf = st.tlsConfig.Clone() // keeps the session ticket keys
	conf.ClientCAs = pool
	st.caConfig.Store(conf)
	return conf
}

// Update atomically replaces the configuration: policies, admin, key
// store (with a new, empty cache), route overrides, TLS settings and logs.
// It validates conf and creates its Keys first (an unreachable store only
// defers key creation to the background, as in New). Requests already
// running finish on the old configuration; the old cache and key store
// are closed after them, unless the new configuration uses the same Store
// value.
//
// On error the old configuration stays in place and conf.Store is left
// open for the caller. Update fails if the Server is closed.
func (s *Server) Update(ctx context.Context, conf *Config) error {
	if conf == nil {
		return errors.New("server: nil config")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server: closed")
	}
	st, err := s.newState(conf)
	if err != nil {
		return err
	}
	if err := s.createKeys(ctx, st); err != nil {
		st.cancel()
		st.cache.Close()
		return err
	}
	old := s.state.Swap(st)
	s.retire(old, !sameStore(old.conf.Store, st.conf.Store))
	return nil
}

// sameStore reports whether a and b are the same store value, without
// panicking on incomparable dynamic types.
func sameStore(a, b keystore.Store) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || !ta.Comparable() {
		return false
	}
	return a == b
}

// retire marks st as replaced and, in the background, waits for its
// in-flight requests, then closes its cache and (if closeStore) its store.
func (s *Server) retire(st *state, closeStore bool) {
	st.retired.Store(true)
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		st.wait(retireTimeout, s.closing)
		st.shutdown(closeStore)
	}()
}

// wait waits until st has no in-flight requests, at most d, and at most
// shortly after closing is closed.
func (st *state) wait(d time.Duration, closing <-chan struct{}) {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for st.refs.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-tick.C:
		case <-closing:
			if d2 := time.Now().Add(shutdownGrace); d2.Before(deadline) {
				deadline = d2
			}
			closing = nil
		}
	}
}

func (st *state) shutdown(closeStore bool) error {
	st.cancel()
	err := st.cache.Close()
	if closeStore && st.conf.Store != nil {
		err = errors.Join(err, st.conf.Store.Close())
	}
	return err
}

// Close stops serving (every Serve call shuts down and returns), stops
// background work and closes the cache and the key store. Calling Close
// more than once returns nil. The error is that of closing the cache or
// the key store.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()

	s.serving.Wait()
	st := s.state.Load()
	st.retired.Store(true)
	st.wait(shutdownGrace, nil)
	err := st.shutdown(true)
	s.retiring.Wait()
	return err
}

// Handler returns the server's HTTP handler for in-process use (tests,
// benchmarks, embedding behind another listener). Requests must carry
// r.TLS with the client's PeerCertificates to be authenticated.
func (s *Server) Handler() http.Handler { return s }
