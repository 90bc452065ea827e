// Package vaulttest is an in-process fake of the HashiCorp Vault HTTP API,
// for tests of code that talks to Vault (the Vault key store, a transit
// based key-encryption key) on machines where Vault cannot be installed.
//
// The fake follows Vault's published HTTP API documentation: paths,
// methods, headers, JSON shapes of responses ({"request_id", "lease_id",
// "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"}),
// error bodies ({"errors":[...]}) and status codes. Client code tested
// against it must not need a single fake-specific path, so that it works
// against a real Vault or OpenBao server unchanged. Where Vault's
// behaviour is not atomic (K/V version 1 has no check-and-set) the fake is
// not atomic either in what it promises: every request is handled under
// one lock, but nothing ties a read to a later write.
//
// # What is implemented
//
//   - K/V version 1 and version 2 mounts at any path ([Server.MountKV]),
//     including v2's data, metadata, delete, undelete and destroy paths,
//     check-and-set (options.cas), reads of a given ?version=N, and the
//     404 response with a body for soft-deleted or destroyed versions.
//   - LIST, both as the LIST method and as GET with ?list=true; an empty
//     or missing folder is 404 {"errors":[]}; sub-folders end in "/".
//   - Transit encrypt and decrypt with real AES-256-GCM, "vault:vN:"
//     ciphertexts, keys created on first encrypt, key rotation
//     ([Server.MountTransit], [Server.RotateTransitKey]).
//   - Namespaces: the X-Vault-Namespace header and namespace path prefixes
//     select separate trees of mounts; tokens are valid in the namespace
//     that issued them and its children ([Server.AddNamespace]).
//   - AppRole and Kubernetes login ([Server.AddAppRole],
//     [Server.AddKubernetesRole]), tokens with TTL, max TTL and
//     renewability that expire in real time, auth/token/lookup-self,
//     renew-self and revoke-self, and a simple ACL per token
//     ([TokenOptions.Paths]).
//   - sys/health (unauthenticated, with its query parameters and status
//     codes 200, 429, 501 and 503) and sys/seal-status. While sealed
//     ([Server.Seal]) every other request gets 503 {"errors":["Vault is
//     sealed"]}.
//
// # Fault injection
//
// Tests can fail the next logins or renewals ([Server.FailLogins],
// [Server.FailRenewals]), revoke or expire tokens ([Server.RevokeAll],
// [Server.Revoke], [Server.ExpireAll], [Server.Expire]), seal and
// unseal ([Server.Seal]), add latency ([Server.SetLatency]) and count
// requests per endpoint ([Server.Count], [Server.Requests]).
package vaulttest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a fake server. The zero value is a plain TLS server.
type Options struct {
	// ClientCAs, if set, makes the server require a client certificate
	// issued by one of these CAs (mutual TLS).
	ClientCAs *x509.CertPool

	// Version is the Vault version reported by sys/health. Default
	// "1.17.0".
	Version string
}

// Server is a running fake Vault server. All methods are safe for
// concurrent use, also while requests are being served.
type Server struct {
	// URL is the base URL of the server, "https://127.0.0.1:<port>".
	URL string

	srv     *httptest.Server
	caPEM   []byte
	version string

	mu          sync.Mutex
	namespaces  map[string]*namespace // "" is the root namespace
	tokens      map[string]*token
	sealed      bool
	initialized bool
	standby     bool
	latency     time.Duration
	failLogins  int
	failRenews  int
	counts      map[string]int
	requests    []Request
}

// maxRequestLog bounds the request log of [Server.Requests].
const maxRequestLog = 100_000

// Request is one request as seen by the server, for tests that check what
// a client sends. It never holds the token itself.
type Request struct {
	Method    string // as sent, e.g. "GET", "LIST"
	Path      string // the URL path, e.g. "/v1/kv/data/my-key"
	Query     string // the raw query, e.g. "list=true"
	Namespace string // the X-Vault-Namespace header
	HasToken  bool   // whether a token was sent
}

// New starts a fake server with TLS and no mounts. It is closed when tb's
// test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{
		version:     opts.Version,
		namespaces:  map[string]*namespace{"": newNamespace()},
		tokens:      map[string]*token{},
		initialized: true,
		counts:      map[string]int{},
	}
	if s.version == "" {
		s.version = "1.17.0"
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// Clients that give up or refuse the certificate are part of the
	// tests; their TLS handshake errors are noise.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if opts.ClientCAs != nil {
		s.srv.TLS = &tls.Config{ClientCAs: opts.ClientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	tb.Cleanup(s.Close)
	return s
}

// Close shuts the server down. It may be called more than once.
func (s *Server) Close() { s.srv.Close() }

// CACertPEM returns the PEM-encoded (self-signed) certificate of the
// server, to be trusted by clients as a CA. It is valid for 127.0.0.1,
// ::1 and example.com.
func (s *Server) CACertPEM() []byte { return slices.Clone(s.caPEM) }

// Client returns an HTTP client that trusts the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// namespace is one tree of mounts.
type namespace struct {
	mounts map[string]*mount // by path without trailing slash, e.g. "kv", "auth/approle"
}

func newNamespace() *namespace { return &namespace{mounts: map[string]*mount{}} }

type mountKind int

const (
	kindKV1 mountKind = iota + 1
	kindKV2
	kindTransit
	kindAppRole
	kindKubernetes
)

type mount struct {
	kind    mountKind
	kv1     map[string]map[string]any // secret path → data
	kv2     map[string]*kv2Entry      // secret path → versions
	transit map[string]*transitKey
	roles   map[string]*role // AppRole: by role ID; Kubernetes: by role name
}

// role is an AppRole role or a Kubernetes auth role.
type role struct {
	name   string
	secret string // AppRole secret ID or Kubernetes JWT
	token  TokenOptions
}

// cleanPath trims slashes and rejects empty segments.
func cleanPath(p string) string { return strings.Trim(p, "/") }

// ns returns the namespace, creating it and its parents. s.mu is held.
func (s *Server) ns(name string) *namespace {
	name = cleanPath(name)
	if n, ok := s.namespaces[name]; ok {
		return n
	}
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		s.ns(name[:i])
	}
	n := newNamespace()
	s.namespaces[name] = n
	return n
}

// AddNamespace creates a namespace (and its parents), e.g. "ns1" or
// "ns1/team-a". The root namespace "" always exists.
func (s *Server) AddNamespace(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ns(name)
}

func (s *Server) addMount(namespace, path string, kind mountKind) *mount {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.ns(namespace)
	path = cleanPath(path)
	if m, ok := n.mounts[path]; ok {
		if m.kind != kind {
			panic(fmt.Sprintf("vaulttest: %q in namespace %q is already mounted as another kind", path, namespace))
		}
		return m
	}
	m := &mount{kind: kind}
	switch kind {
	case kindKV1:
		m.kv1 = map[string]map[string]any{}
	case kindKV2:
		m.kv2 = map[string]*kv2Entry{}
	case kindTransit:
		m.transit = map[string]*transitKey{}
	default:
		m.roles = map[string]*role{}
	}
	n.mounts[path] = m
	return m
}

// MountKV mounts a K/V secrets engine of the given version (1 or 2) at
// path in namespace ("" for the root namespace). Mounting an existing
// path of the same kind does nothing.
func (s *Server) MountKV(namespace, path string, version int) {
	switch version {
	case 1:
		s.addMount(namespace, path, kindKV1)
	case 2:
		s.addMount(namespace, path, kindKV2)
	default:
		panic(fmt.Sprintf("vaulttest: invalid K/V version %d", version))
	}
}

// MountTransit mounts a transit secrets engine at path in namespace.
func (s *Server) MountTransit(namespace, path string) { s.addMount(namespace, path, kindTransit) }

// TokenOptions describe the tokens issued by a login.
type TokenOptions struct {
	// TTL is the lifetime of a new token and the default increment of a
	// renewal. Zero means the token never expires (like a root token).
	// Vault speaks whole seconds; use at least one second.
	TTL time.Duration

	// MaxTTL caps the lifetime of a token, counted from its creation,
	// however often it is renewed. Zero means no cap.
	MaxTTL time.Duration

	// NotRenewable makes renew-self fail with 400 "lease is not
	// renewable".
	NotRenewable bool

	// Paths, if not empty, is the token's ACL: the request paths (after
	// /v1/ and the namespace, e.g. "kv/data/*") it may use. A trailing
	// '*' matches any suffix and a '+' matches one path segment, as in
	// Vault policies. auth/token/lookup-self, renew-self and revoke-self
	// are always allowed (Vault's default policy). Empty allows every
	// path.
	Paths []string
}

// AppRole is a role of the AppRole auth method.
type AppRole struct {
	Name     string // the role name, reported in the token's metadata
	RoleID   string
	SecretID string
	Token    TokenOptions
}

// AddAppRole enables the AppRole auth method at auth/<mount> in
// namespace (if needed) and adds a role to it. Adding a role with an
// existing role ID replaces it (e.g. to change its secret ID).
func (s *Server) AddAppRole(namespace, mount string, r AppRole) {
	s.addRole(namespace, mount, kindAppRole, r.RoleID, &role{name: r.Name, secret: r.SecretID, token: r.Token})
}

// KubernetesRole is a role of the Kubernetes auth method. A login
// succeeds with the role's name and exactly the JWT given here (the fake
// does not ask a Kubernetes API server to review the token).
type KubernetesRole struct {
	Name  string
	JWT   string
	Token TokenOptions
}

// AddKubernetesRole enables the Kubernetes auth method at auth/<mount> in
// namespace (if needed) and adds or replaces a role.
func (s *Server) AddKubernetesRole(namespace, mount string, r KubernetesRole) {
	s.addRole(namespace, mount, kindKubernetes, r.Name, &role{name: r.Name, secret: r.JWT, token: r.Token})
}

// addRole enables the auth method kind at auth/<mount> in namespace (if
// needed) and adds or replaces the role with the login key id.
func (s *Server) addRole(namespace, mount string, kind mountKind, id string, r *role) {
	m := s.addMount(namespace, "auth/"+cleanPath(mount), kind)
	s.locked(func() { m.roles[id] = r })
}

// NewToken issues a token in namespace directly, as "vault token create"
// would, for tests that need to call the API themselves.
func (s *Server) NewToken(namespace string, opts TokenOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ns(namespace)
	return s.issue(cleanPath(namespace), "auth/token/create", "token", nil, opts).id
}

// Seal seals the server: every request but sys/health and sys/seal-status
// gets 503 {"errors":["Vault is sealed"]}. Tokens survive, as in Vault.
func (s *Server) Seal() { s.locked(func() { s.sealed = true }) }

// Unseal unseals the server.
func (s *Server) Unseal() { s.locked(func() { s.sealed = false }) }

// SetInitialized sets whether the server reports itself initialised. An
// uninitialised Vault is also sealed.
func (s *Server) SetInitialized(initialized bool) { s.locked(func() { s.initialized = initialized }) }

// SetStandby sets whether the server reports itself as a standby node in
// sys/health (429 by default). Requests are still served.
func (s *Server) SetStandby(standby bool) { s.locked(func() { s.standby = standby }) }

// SetLatency delays every response by d (0 for none). A request whose
// client gives up during the delay gets no response.
func (s *Server) SetLatency(d time.Duration) { s.locked(func() { s.latency = d }) }

// FailLogins makes the next n logins fail with 500 {"errors":["internal
// error"]}, as a Vault with a broken storage backend would.
func (s *Server) FailLogins(n int) { s.locked(func() { s.failLogins = n }) }

// FailRenewals makes the next n renew-self requests fail with 500
// {"errors":["internal error"]}.
func (s *Server) FailRenewals(n int) { s.locked(func() { s.failRenews = n }) }

// RevokeAll revokes every token issued so far.
func (s *Server) RevokeAll() { s.eachToken(func(t *token) { t.revoked = true }) }

// Revoke revokes one token. It reports whether the token was known.
func (s *Server) Revoke(tok string) bool {
	return s.withToken(tok, func(t *token) { t.revoked = true })
}

// ExpireAll makes every token issued so far expire now, even tokens
// without a TTL: as if their TTL ran out earlier than announced.
func (s *Server) ExpireAll() {
	now := time.Now()
	s.eachToken(func(t *token) { t.expires = now })
}

// Expire makes one token expire now. It reports whether the token was
// known.
func (s *Server) Expire(tok string) bool {
	now := time.Now()
	return s.withToken(tok, func(t *token) { t.expires = now })
}

// locked calls f with s.mu held.
func (s *Server) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// eachToken calls f, with s.mu held, for every token issued so far.
func (s *Server) eachToken(f func(*token)) {
	s.locked(func() {
		for _, t := range s.tokens {
			f(t)
		}
	})
}

// withToken calls f, with s.mu held, for the token tok if it is known,
// and reports whether it is.
func (s *Server) withToken(tok string, f func(*token)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if ok {
		f(t)
	}
	return ok
}

// Tokens returns every token issued so far, valid or not, for tests that
// check that no token leaks into logs.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Sorted(maps.Keys(s.tokens))
	return out
}

// ValidTokens returns the number of tokens that are neither revoked nor
// expired.
func (s *Server) ValidTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, now := 0, time.Now()
	for _, t := range s.tokens {
		if t.valid(now) {
			n++
		}
	}
	return n
}

// Endpoint kinds counted by [Server.Count].
const (
	CountLogin      = "login"       // auth/<approle|kubernetes>/login
	CountLookupSelf = "lookup-self" // auth/token/lookup-self
	CountRenewSelf  = "renew-self"  // auth/token/renew-self
	CountRevokeSelf = "revoke-self" // auth/token/revoke-self
	CountHealth     = "health"      // sys/health
	CountSealStatus = "seal-status" // sys/seal-status
	CountRead       = "kv-read"     // K/V read (v1 or v2 data/metadata)
	CountWrite      = "kv-write"    // K/V write
	CountList       = "kv-list"     // K/V list
	CountDelete     = "kv-delete"   // K/V delete (also v2 delete/destroy)
	CountEncrypt    = "encrypt"     // transit encrypt
	CountDecrypt    = "decrypt"     // transit decrypt
	CountDenied     = "denied"      // requests answered with 403
	CountSealed     = "sealed"      // requests answered with 503 because sealed
)

// Count returns how many requests of a kind (one of the Count*
// constants) the server has received.
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// ResetCounts sets every count to zero and clears the request log.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
	s.requests = nil
}

// Requests returns the requests received so far (at most the last
// 100 000).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// randomID returns a random string of n bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uuid returns a random UUID-shaped string, as Vault's request IDs.
func uuid() string {
	h := randomID(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
