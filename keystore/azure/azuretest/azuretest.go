// Package azuretest is a fake of Azure Key Vault's secrets REST API and
// of the Microsoft Entra ID (Azure AD) v2.0 token endpoint, for testing
// the Azure key store, in process and through the kes binary.
//
// # What it fakes
//
// One TLS listener serves two host names: the vault ([VaultHost]) and
// the authority ([LoginHost]). Requests are routed by their Host header,
// so a client reaches both through [Server.Transport] (in process) or
// through the HTTP CONNECT proxy at [Server.ProxyURL] (a child process
// with HTTPS_PROXY set), and trusts the fake's certificate through
// [Server.CACertPEM] (SSL_CERT_FILE for a child process).
//
// The vault follows the published Key Vault REST API:
//
//   - every request needs an api-version query parameter (400 otherwise);
//   - a request without a valid bearer token is answered 401 with
//     WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
//     resource="https://vault.test", the challenge the Key Vault SDKs
//     answer by getting a token for <resource>/.default;
//   - tokens are those issued by the fake's token endpoint and are
//     rejected once expired;
//   - secret names are 1 to 127 of [0-9a-zA-Z-] and case-insensitive
//     (400 BadParameter otherwise); an ID keeps the case of the name
//     the secret was created with;
//   - PUT /secrets/{name} adds a version; GET /secrets/{name}/{version}
//     (empty version: the latest); GET /secrets/{name}/versions and
//     GET /secrets are paged with nextLink and a small page size;
//     DELETE /secrets/{name} soft-deletes; DELETE /deletedsecrets/{name}
//     purges;
//   - a soft-deleted secret is first "being deleted" (409 with inner
//     code ObjectIsBeingDeleted for the next few requests on the name)
//     and then "deleted but recoverable" (409 ObjectIsDeletedButRecoverable
//     on PUT) until it is purged; with [Options.PurgeProtection] a purge
//     is 403 with inner code ForbiddenByPolicy;
//   - errors have the body {"error":{"code":..,"message":..,"innererror":{"code":..}}}.
//
// The token endpoint serves the tenant's OpenID configuration
// (GET /<tenant>/v2.0/.well-known/openid-configuration) and issues
// client-credentials tokens (POST /<tenant>/oauth2/v2.0/token) after
// checking the tenant, client ID and client secret.
package azuretest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
)

// Host names the fake answers for. They are in the .test top-level
// domain (RFC 6761), which never resolves on the internet; clients reach
// them through the fake's transport or proxy only.
const (
	VaultHost = "kes.vault.test"
	LoginHost = "login.authority.test"

	// Resource is the resource the vault names in its challenge; the
	// vault's host is a subdomain of it, as for the real service
	// (<vault>.vault.azure.net and https://vault.azure.net).
	Resource = "https://vault.test"
)

// Options configures a fake.
type Options struct {
	TenantID     string // default "00000000-0000-0000-0000-00000000feed"
	ClientID     string // default "kes-client"
	ClientSecret string // default "kes-client-secret"

	// TokenTTL is the lifetime of issued tokens. Default 1 h.
	TokenTTL time.Duration

	// PageSize is the number of items in a page of a list. Default 3.
	PageSize int

	// DeletingRequests is the number of requests on a name, after it was
	// deleted, that see the secret "being deleted". Default 1.
	DeletingRequests int

	// PurgeProtection makes every purge fail with 403 ForbiddenByPolicy.
	PurgeProtection bool
}

// Version is one stored version of a secret.
type Version struct {
	ID      string // version identifier (32 hex digits)
	Value   string
	Created time.Time
	Enabled bool
}

type secret struct {
	name     string // as created
	versions []*Version
}

type deleted struct {
	s        *secret
	deleting int // requests left that see "being deleted"
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server
	ca   *testpki.CA
	cert *testpki.Cert

	mu       sync.Mutex
	secrets  map[string]*secret  // by lower-case name
	deleted  map[string]*deleted // by lower-case name
	tokens   map[string]time.Time
	issued   []string
	down     bool
	status   int // if not 0, every vault request is answered with it
	requests map[string]int
	now      func() time.Time
}

// New starts a fake that is closed when t finishes.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TenantID == "" {
		opts.TenantID = "00000000-0000-0000-0000-00000000feed"
	}
	if opts.ClientID == "" {
		opts.ClientID = "kes-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "kes-client-secret"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 3
	}
	if opts.DeletingRequests <= 0 {
		opts.DeletingRequests = 1
	}
	s := &Server{
		opts:     opts,
		secrets:  map[string]*secret{},
		deleted:  map[string]*deleted{},
		tokens:   map[string]time.Time{},
		requests: map[string]int{},
		now:      time.Now,
	}
	s.ca = testpki.NewCA(t)
	s.cert = s.ca.Issue(t, testpki.Options{
		CommonName:  VaultHost,
		DNSNames:    []string{VaultHost, LoginHost},
		IPs:         []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: nil,
	})
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{s.cert.TLS}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the vault's endpoint, for the key store's config.
func (s *Server) URL() string { return "https://" + VaultHost }

// AuthorityHost is the authority's URL, the value of AZURE_AUTHORITY_HOST.
func (s *Server) AuthorityHost() string { return "https://" + LoginHost + "/" }

// Options returns the fake's options with defaults applied.
func (s *Server) Options() Options { return s.opts }

// CACertPEM returns the certificate of the CA that issued the fake's
// TLS certificate.
func (s *Server) CACertPEM() []byte { return s.ca.CertPEM() }

// Addr is the address of the fake's listener.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// Transport returns an HTTP transport that sends requests for any host
// to the fake and trusts its certificate. While the fake is down, its
// dials fail.
func (s *Server) Transport() *http.Transport {
	pool := s.ca.Pool()
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			if s.isDown() {
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("connection refused (fake is down)")}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr())
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: false,
		DisableKeepAlives: true,
	}
}

// ProxyURL starts an HTTP CONNECT proxy on the loopback interface that
// tunnels to the fake for its two host names (on port 443) and refuses
// every other destination, and returns its URL, for HTTPS_PROXY. While
// the fake is down, the proxy refuses every tunnel with 502.
func (s *Server) ProxyURL(t testing.TB) string {
	t.Helper()
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, port, _ := net.SplitHostPort(r.Host)
		if r.Method != http.MethodConnect || (host != VaultHost && host != LoginHost) || port != "443" {
			http.Error(w, "this proxy only tunnels to the fake", http.StatusForbidden)
			return
		}
		if s.isDown() {
			http.Error(w, "the fake is down", http.StatusBadGateway)
			return
		}
		upstream, err := net.Dial("tcp", s.Addr())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			upstream.Close()
			http.Error(w, "no hijacking", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
		conn, buf, err := hj.Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() {
			defer upstream.Close()
			defer conn.Close()
			go func() {
				io.Copy(upstream, buf)
				upstream.(*net.TCPConn).CloseWrite()
			}()
			io.Copy(conn, upstream)
		}()
	}))
	t.Cleanup(p.Close)
	return p.URL
}

// SetDown takes the fake off the network (true) or back (false): new
// connections through its transport and proxy fail and requests on open
// connections are dropped.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// SetStatus makes the vault answer every request with status (for
// example 429 or 503, with a Retry-After of 1 s for those); 0 restores
// normal service.
func (s *Server) SetStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// AddVersion stores a new version of the secret name, created at
// created, as if written by another client. It creates the secret if
// needed (with name's case) and returns the version's ID.
func (s *Server) AddVersion(name, value string, created time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addVersion(name, value, created).ID
}

// Versions returns the versions of the secret name, oldest first, or nil.
func (s *Server) Versions(name string) []Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[strings.ToLower(name)]
	if sec == nil {
		return nil
	}
	out := make([]Version, len(sec.versions))
	for i, v := range sec.versions {
		out[i] = *v
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Names returns the names of the active secrets, as created, sorted.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, sec := range s.secrets {
		names = append(names, sec.name)
	}
	sort.Strings(names)
	return names
}

// IsDeleted reports whether name is soft-deleted and not yet purged.
func (s *Server) IsDeleted(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.deleted[strings.ToLower(name)]
	return ok
}

// Tokens returns every access token the fake issued.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Requests returns how many requests the fake answered with the given
// label: "token", "unauthorized" (401 challenges), "expired" (rejected
// expired tokens), or "<METHOD> <route>" such as "PUT /secrets/{name}".
func (s *Server) Requests(label string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[label]
}

func (s *Server) count(label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[label]++
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.isDown() {
		// Drop the connection, as a host that went away would.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	switch host {
	case LoginHost:
		s.serveLogin(w, r)
	case VaultHost:
		s.serveVault(w, r)
	default:
		http.Error(w, "unknown host", http.StatusMisdirectedRequest)
	}
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	authority := "https://" + LoginHost + "/" + tenant
	oauthError := func(status int, code, desc string) {
		writeJSON(w, status, map[string]any{"error": code, "error_description": desc, "error_codes": []int{90002}})
	}
	if tenant != s.opts.TenantID {
		oauthError(http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":                        authority + "/oauth2/v2.0/token",
			"authorization_endpoint":                authority + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint":         authority + "/oauth2/v2.0/devicecode",
			"issuer":                                authority + "/v2.0",
			"jwks_uri":                              authority + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
			"tenant_region_scope":                   "EU",
		})
	case r.Method == http.MethodPost && rest == "oauth2/v2.0/token":
		s.count("token")
		if err := r.ParseForm(); err != nil {
			oauthError(http.StatusBadRequest, "invalid_request", "AADSTS900144: malformed body")
			return
		}
		f := r.PostForm
		switch {
		case f.Get("grant_type") != "client_credentials":
			oauthError(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
			return
		case f.Get("client_id") != s.opts.ClientID:
			oauthError(http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
			return
		case f.Get("client_secret") != s.opts.ClientSecret:
			oauthError(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		case !slices.Contains(strings.Fields(f.Get("scope")), Resource+"/.default"):
			oauthError(http.StatusBadRequest, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid.")
			return
		}
		tok := "fake-token-" + randHex(16)
		s.mu.Lock()
		s.tokens[tok] = s.now().Add(s.opts.TokenTTL)
		s.issued = append(s.issued, tok)
		s.mu.Unlock()
		ttl := int(s.opts.TokenTTL / time.Second)
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": tok,
		})
	default:
		http.NotFound(w, r)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// vaultError writes a Key Vault error body.
func vaultError(w http.ResponseWriter, status int, code, inner, msg string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

var validName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

func (s *Server) serveVault(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") == "" {
		vaultError(w, http.StatusBadRequest, "BadParameter", "", "The request URI contains an unsupported or missing api-version.")
		return
	}
	if !s.authorized(w, r) {
		return
	}
	s.mu.Lock()
	status := s.status
	s.mu.Unlock()
	if status != 0 {
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		code := "Throttled"
		if status != http.StatusTooManyRequests {
			code = "ServiceUnavailable"
		}
		vaultError(w, status, code, "", "Request was not processed because the service is busy.")
		return
	}

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	label := func(route string) { s.count(r.Method + " " + route) }
	// named counts a route of a secret named by parts[1] and serves it
	// with h if the name is valid.
	named := func(route string, h func(name string)) {
		label(route)
		if s.checkName(w, parts[1]) {
			h(parts[1])
		}
	}
	switch {
	case len(parts) == 1 && parts[0] == "secrets" && r.Method == http.MethodGet:
		label("/secrets")
		s.listSecrets(w, r)
	case len(parts) == 2 && parts[0] == "secrets" && r.Method == http.MethodPut:
		named("/secrets/{name}", func(name string) { s.setSecret(w, r, name) })
	case len(parts) == 2 && parts[0] == "secrets" && r.Method == http.MethodDelete:
		named("/secrets/{name}", func(name string) { s.deleteSecret(w, name) })
	case len(parts) == 2 && parts[0] == "secrets" && r.Method == http.MethodGet:
		named("/secrets/{name}", func(name string) { s.getSecret(w, name, "") })
	case len(parts) == 3 && parts[0] == "secrets" && parts[2] == "versions" && r.Method == http.MethodGet:
		named("/secrets/{name}/versions", func(name string) { s.listVersions(w, r, name) })
	case len(parts) == 3 && parts[0] == "secrets" && r.Method == http.MethodGet:
		named("/secrets/{name}/{version}", func(name string) { s.getSecret(w, name, parts[2]) })
	case len(parts) == 2 && parts[0] == "deletedsecrets" && r.Method == http.MethodDelete:
		named("/deletedsecrets/{name}", func(name string) { s.purge(w, name) })
	default:
		vaultError(w, http.StatusNotFound, "NotFound", "", "The requested resource was not found.")
	}
}

// authorized checks the bearer token, or answers with the challenge.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.tokens[tok]
	expired := known && !s.now().Before(exp)
	s.mu.Unlock()
	if ok && known && !expired {
		return true
	}
	if expired {
		s.count("expired")
	}
	s.count("unauthorized")
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/%s", resource="%s"`, LoginHost, s.opts.TenantID, Resource))
	msg := "AKV10000: Request is missing a Bearer or PoP token."
	if expired {
		msg = "AKV10022: Invalid audience or token expired."
	}
	vaultError(w, http.StatusUnauthorized, "Unauthorized", "", msg)
	return false
}

func (s *Server) checkName(w http.ResponseWriter, name string) bool {
	if !validName.MatchString(name) {
		vaultError(w, http.StatusBadRequest, "BadParameter", "", "The request URI contains an invalid name: "+name)
		return false
	}
	return true
}

// deletedState reports the soft-delete state of a name, counting one
// request against "being deleted". Called with s.mu held.
func (s *Server) deletedState(key string) (deleting, recoverable bool) {
	d := s.deleted[key]
	if d == nil {
		return false, false
	}
	if d.deleting > 0 {
		d.deleting--
		return true, false
	}
	return false, true
}

func (s *Server) addVersion(name, value string, created time.Time) *Version {
	key := strings.ToLower(name)
	sec := s.secrets[key]
	if sec == nil {
		sec = &secret{name: name}
		s.secrets[key] = sec
	}
	v := &Version{ID: randHex(16), Value: value, Created: created, Enabled: true}
	sec.versions = append(sec.versions, v)
	return v
}

func (s *Server) secretID(name, version string) string {
	id := s.URL() + "/secrets/" + name
	if version != "" {
		id += "/" + version
	}
	return id
}

func attributes(v *Version) map[string]any {
	t := v.Created.Unix()
	return map[string]any{
		"enabled": v.Enabled, "created": t, "updated": t,
		"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
	}
}

func (s *Server) bundle(sec *secret, v *Version) map[string]any {
	return map[string]any{"value": v.Value, "id": s.secretID(sec.name, v.ID), "attributes": attributes(v)}
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, name string) {
	var body struct {
		Value *string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Value == nil {
		vaultError(w, http.StatusBadRequest, "BadParameter", "", "Property value is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	switch deleting, recoverable := s.deletedState(key); {
	case deleting:
		vaultError(w, http.StatusConflict, "Conflict", "ObjectIsBeingDeleted", "Secret "+name+" is currently being deleted.")
		return
	case recoverable:
		vaultError(w, http.StatusConflict, "Conflict", "ObjectIsDeletedButRecoverable",
			"Secret "+name+" is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.")
		return
	}
	v := s.addVersion(name, *body.Value, s.now())
	writeJSON(w, http.StatusOK, s.bundle(s.secrets[key], v))
}

func notFound(w http.ResponseWriter, name string) {
	vaultError(w, http.StatusNotFound, "SecretNotFound", "", "A secret with (name/id) "+name+" was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.")
}

func (s *Server) getSecret(w http.ResponseWriter, name, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[strings.ToLower(name)]
	if sec == nil || len(sec.versions) == 0 {
		notFound(w, name)
		return
	}
	var v *Version
	if version == "" {
		v = sec.versions[len(sec.versions)-1]
	} else {
		for _, x := range sec.versions {
			if x.ID == version {
				v = x
			}
		}
	}
	if v == nil {
		notFound(w, name+"/"+version)
		return
	}
	writeJSON(w, http.StatusOK, s.bundle(sec, v))
}

// page returns the items of a listing from the $skiptoken of r, and the
// nextLink for the rest.
func (s *Server) page(r *http.Request, n int) (start, end int, next *string) {
	q := r.URL.Query()
	start, _ = strconv.Atoi(q.Get("$skiptoken"))
	size := s.opts.PageSize
	if m, err := strconv.Atoi(q.Get("maxresults")); err == nil && m > 0 && m < size {
		size = m
	}
	start = min(max(start, 0), n)
	end = min(start+size, n)
	if end < n {
		u := url.URL{Scheme: "https", Host: VaultHost, Path: r.URL.Path}
		nq := url.Values{"api-version": {q.Get("api-version")}, "$skiptoken": {strconv.Itoa(end)}}
		if q.Get("maxresults") != "" {
			nq.Set("maxresults", q.Get("maxresults"))
		}
		u.RawQuery = nq.Encode()
		link := u.String()
		next = &link
	}
	return start, end, next
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var secs []*secret
	for _, sec := range s.secrets {
		secs = append(secs, sec)
	}
	sort.Slice(secs, func(i, j int) bool { return strings.ToLower(secs[i].name) < strings.ToLower(secs[j].name) })
	start, end, next := s.page(r, len(secs))
	items := []any{}
	for _, sec := range secs[start:end] {
		latest := sec.versions[len(sec.versions)-1]
		items = append(items, map[string]any{"id": s.secretID(sec.name, ""), "attributes": attributes(latest)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": next})
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var versions []*Version
	sec := s.secrets[strings.ToLower(name)]
	if sec != nil {
		versions = sec.versions
	}
	start, end, next := s.page(r, len(versions))
	items := []any{}
	for _, v := range versions[start:end] {
		items = append(items, map[string]any{"id": s.secretID(sec.name, v.ID), "attributes": attributes(v)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": next})
}

func (s *Server) deleteSecret(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	sec := s.secrets[key]
	if sec == nil {
		notFound(w, name)
		return
	}
	delete(s.secrets, key)
	s.deleted[key] = &deleted{s: sec, deleting: s.opts.DeletingRequests}
	latest := sec.versions[len(sec.versions)-1]
	now := s.now().Unix()
	writeJSON(w, http.StatusOK, map[string]any{
		"recoveryId":         s.URL() + "/deletedsecrets/" + sec.name,
		"deletedDate":        now,
		"scheduledPurgeDate": now + 90*24*3600,
		"id":                 s.secretID(sec.name, latest.ID),
		"attributes":         attributes(latest),
	})
}

func (s *Server) purge(w http.ResponseWriter, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(name)
	if s.deleted[key] == nil {
		vaultError(w, http.StatusNotFound, "SecretNotFound", "", "Deleted Secret not found: "+name)
		return
	}
	if s.opts.PurgeProtection {
		vaultError(w, http.StatusForbidden, "Forbidden", "ForbiddenByPolicy",
			"Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.")
		return
	}
	if deleting, _ := s.deletedState(key); deleting {
		vaultError(w, http.StatusConflict, "Conflict", "ObjectIsBeingDeleted", "Secret "+name+" is currently being deleted.")
		return
	}
	delete(s.deleted, key)
	w.WriteHeader(http.StatusNoContent)
}
