package kes

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxResponseBody is how much of a successful JSON response is read.
const maxResponseBody = 1 << 20

// endpointTimeout is how long an endpoint is skipped after it failed.
const endpointTimeout = 30 * time.Second

var errNoEndpoint = errors.New("kes: no server endpoint")

// Client is a KES client. It sends each request to one of its Endpoints
// and fails over to the next one on transport errors and 5xx responses
// other than 501 (Not Implemented). An endpoint that failed is skipped for
// 30 seconds, unless every endpoint is being skipped, in which case all of
// them are tried again.
//
// Create a Client with [NewClient] or [NewClientWithConfig]. A Client is
// safe for concurrent use and must not be copied after first use. Endpoints
// and HTTPClient must not be changed while requests are in flight.
//
// Unless documented otherwise, every method returns:
//   - an [Error] when the server answers with a non-2xx status, e.g.
//     [ErrNotAllowed] if the policy of the client's identity forbids the
//     request;
//   - the error of [net/http.Client.Do] when no endpoint could be reached,
//     which wraps ctx.Err() when ctx ends first;
//   - an error starting with "kes: " when Endpoints is empty or an
//     endpoint is malformed, or when the server's response cannot be
//     decoded or exceeds 1 MiB.
//
// When several endpoints are tried, the error of the last one is returned.
type Client struct {
	// Endpoints are the addresses of the KES servers, tried in order.
	// An endpoint is "host:port" or an "https://host:port" URL, optionally
	// with a path prefix; "https://" is assumed when there is no scheme.
	Endpoints []string

	// HTTPClient sends the requests. Its Timeout should be zero: the
	// request context bounds each call, and AuditLog and ErrorLog are
	// long-lived streams.
	HTTPClient http.Client

	mu        sync.Mutex
	penalized map[string]time.Time // endpoint → end of its timeout
	now       func() time.Time     // time.Now; replaced in tests
}

// NewClient returns a Client for the endpoint that authenticates with the
// API key. The key becomes a self-signed client certificate, built by
// [GenerateCertificate] with opts. Server certificates are verified against
// the system roots; use [NewClientWithConfig] for another trust store.
//
// NewClient does not fail: if the certificate cannot be created (e.g. key
// is the zero APIKey), every request fails with that error during the TLS
// handshake.
//
// The certificate is renewed once half of its validity has passed, so a
// long-running client never presents an expired certificate (servers
// refuse expired certificates even when they do not verify the chain).
func NewClient(endpoint string, key APIKey, opts ...CertificateOption) *Client {
	var (
		mu      sync.Mutex
		cert    tls.Certificate
		err     error
		renewAt time.Time
	)
	return NewClientWithConfig(endpoint, &tls.Config{
		MinVersion: tls.VersionTLS12,
		// GetClientCertificate, unlike Certificates, hands over the
		// certificate even when the server lists acceptable CAs that did
		// not issue it; a KES server with auth off accepts it anyway.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			if now := time.Now(); renewAt.IsZero() || now.After(renewAt) {
				cert, err = GenerateCertificate(key, opts...)
				if err != nil {
					return nil, err
				}
				leaf := cert.Leaf
				renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
			}
			c := cert
			return &c, nil
		},
	})
}

// NewClientWithConfig returns a Client for the endpoint that uses a clone
// of config for TLS; a nil config means a zero [tls.Config]. The minimum
// TLS version is raised to TLS 1.2 if config allows less. HTTP/2 is used
// when the server offers it. An empty endpoint leaves Endpoints empty.
func NewClientWithConfig(endpoint string, config *tls.Config) *Client {
	if config == nil {
		config = &tls.Config{}
	}
	config = config.Clone()
	if config.MinVersion < tls.VersionTLS12 {
		config.MinVersion = tls.VersionTLS12
	}
	var endpoints []string
	if endpoint != "" {
		endpoints = []string{endpoint}
	}
	return &Client{
		Endpoints: endpoints,
		HTTPClient: http.Client{
			Transport: &http.Transport{
				Proxy: http.ProxyFromEnvironment,
				DialContext: (&net.Dialer{
					Timeout:   30 * time.Second,
					KeepAlive: 30 * time.Second,
				}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          100,
				MaxIdleConnsPerHost:   100,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				ExpectContinueTimeout: 1 * time.Second,
				TLSClientConfig:       config,
			},
		},
	}
}

// Version returns the version of the server (GET /version).
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	if err := c.call(ctx, http.MethodGet, "/version", nil, &v); err != nil {
		return "", err
	}
	return v.Version, nil
}

// Status returns the state of the server (GET /v1/status). A server whose
// key store is unreachable reports that in [State.KeyStoreUnreachable]; it
// is not an error.
func (c *Client) Status(ctx context.Context) (State, error) {
	var s State
	if err := c.call(ctx, http.MethodGet, "/v1/status", nil, &s); err != nil {
		return State{}, err
	}
	return s, nil
}

// IsReady reports whether the server and its key store are ready to serve
// requests (GET /v1/ready). It returns true and a nil error only for a 2xx
// response. Otherwise it returns false and the error, e.g. an [Error] with
// status 504 ("key store is not reachable") or 502 ("key store is
// unavailable").
func (c *Client) IsReady(ctx context.Context) (bool, error) {
	if err := c.call(ctx, http.MethodGet, "/v1/ready", nil, nil); err != nil {
		return false, err
	}
	return true, nil
}

// APIs returns the routes the server offers (GET /v1/api), in the order
// the server lists them (which is not stable).
func (c *Client) APIs(ctx context.Context) ([]API, error) {
	var apis []API
	if err := c.call(ctx, http.MethodGet, "/v1/api", nil, &apis); err != nil {
		return nil, err
	}
	return apis, nil
}

// CreateKey creates a new master key with the name. The server picks the
// algorithm. It returns [ErrKeyExists] if the key already exists.
func (c *Client) CreateKey(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/key/create/"+url.PathEscape(name), nil, nil)
}

// ImportKey creates a master key with the name from the raw key in req.
// It returns [ErrKeyExists] if the key already exists, an [Error] with
// status 406 if the server rejects the key size or algorithm, and an error
// without sending anything if req is nil or req.Cipher is unknown.
func (c *Client) ImportKey(ctx context.Context, name string, req *ImportKeyRequest) error {
	if req == nil {
		return errors.New("kes: import key: no key")
	}
	return c.call(ctx, http.MethodPost, "/v1/key/import/"+url.PathEscape(name), req, nil)
}

// DescribeKey returns information about the master key, with its
// versions if it was rotated and its deletion if one is scheduled. It
// returns [ErrKeyNotFound] if the key does not exist, and an error if the
// server reports an algorithm this package does not know.
func (c *Client) DescribeKey(ctx context.Context, name string) (*KeyInfo, error) {
	return get[KeyInfo](ctx, c, "/v1/key/describe/", name)
}

// DeleteKey deletes the master key. Depending on the server's key store it
// returns [ErrKeyNotFound] if the key does not exist, or succeeds.
//
// An OpenKES server with a deletion window only schedules the key for
// deletion: it stops generating and encrypting at once and is removed when
// the window ends, unless [Client.RestoreKey] restores it before. DeleteKey
// then returns [ErrKeyScheduled] for a key that is already scheduled.
func (c *Client) DeleteKey(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/key/delete/"+url.PathEscape(name), nil, nil)
}

// GenerateKey returns a new 32-byte data encryption key, in plaintext and
// encrypted with the master key. context is associated data that is
// needed again to decrypt the ciphertext; it may be empty. A rotated
// master key encrypts with its newest version, which [DEK.Version] names.
// It returns [ErrKeyNotFound] if the master key does not exist and
// [ErrKeyScheduled] if it is scheduled for deletion.
func (c *Client) GenerateKey(ctx context.Context, name string, context []byte) (DEK, error) {
	req := struct {
		Context []byte `json:"context,omitempty"`
	}{context}
	var dek DEK
	if err := c.call(ctx, http.MethodPost, "/v1/key/generate/"+url.PathEscape(name), req, &dek); err != nil {
		return DEK{}, err
	}
	return dek, nil
}

// Encrypt encrypts plaintext with the master key and context as
// associated data, which may be empty; a rotated key encrypts with its
// newest version. It returns [ErrKeyNotFound] if the key does not exist
// and [ErrKeyScheduled] if it is scheduled for deletion. The request must
// stay below the server's 1 MB body limit, so plaintext must be smaller
// than about 700 KiB.
func (c *Client) Encrypt(ctx context.Context, name string, plaintext, context []byte) ([]byte, error) {
	req := struct {
		Plaintext []byte `json:"plaintext"`
		Context   []byte `json:"context,omitempty"`
	}{nonNil(plaintext), context}
	var resp struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/key/encrypt/"+url.PathEscape(name), req, &resp); err != nil {
		return nil, err
	}
	return resp.Ciphertext, nil
}

// Decrypt decrypts ciphertext with the master key and context as
// associated data, with the key version that the ciphertext names. It
// returns [ErrDecrypt] if the ciphertext is not authentic (wrong key,
// wrong context or modified ciphertext) and [ErrKeyNotFound] if the key
// does not exist. A key scheduled for deletion still decrypts.
func (c *Client) Decrypt(ctx context.Context, name string, ciphertext, context []byte) ([]byte, error) {
	req := struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context,omitempty"`
	}{nonNil(ciphertext), context}
	var resp struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/key/decrypt/"+url.PathEscape(name), req, &resp); err != nil {
		return nil, err
	}
	return resp.Plaintext, nil
}

// HMAC returns the HMAC-SHA-256 of msg computed with the master key's HMAC
// key. It returns [ErrKeyNotFound] if the key does not exist and an
// [Error] with status 409 for keys without an HMAC key. Servers that do
// not support HMACs answer with status 501.
func (c *Client) HMAC(ctx context.Context, name string, msg []byte) ([]byte, error) {
	req := struct {
		Message []byte `json:"message"`
	}{nonNil(msg)}
	var resp struct {
		HMAC []byte `json:"hmac"`
	}
	if err := c.call(ctx, http.MethodPut, "/v1/key/hmac/"+url.PathEscape(name), req, &resp); err != nil {
		return nil, err
	}
	return resp.HMAC, nil
}

// RotateKey adds a new version to the master key and returns its number
// (2 after the first rotation: the version a key has before is 1). From
// then on [Client.GenerateKey] and [Client.Encrypt] use the new version;
// ciphertexts of older versions still decrypt. It returns
// [ErrKeyNotFound] if the key does not exist, [ErrKeyScheduled] if it is
// scheduled for deletion and [ErrKeyConflict] if concurrent rotations took
// the version numbers it tried. Rotation is an OpenKES extension
// (docs/keys.md): upstream servers answer 404 "404 page not found".
func (c *Client) RotateKey(ctx context.Context, name string) (int, error) {
	path := "/v1/key/rotate/" + url.PathEscape(name)
	var resp struct {
		Version int `json:"version"`
	}
	if err := c.call(ctx, http.MethodPost, path, nil, &resp); err != nil {
		return 0, err
	}
	if resp.Version < 1 {
		return 0, invalidResponse(http.MethodPost, path, errNoVersion)
	}
	return resp.Version, nil
}

// RewrapKey decrypts ciphertext with the master key and context, which
// may be empty, and encrypts the plaintext again with the key's newest
// version and the same context, all on the server: the plaintext never
// reaches the client. It returns the new ciphertext and the version that
// made it. It returns [ErrDecrypt] if the ciphertext is not authentic
// (wrong key, wrong context or modified ciphertext), [ErrKeyNotFound] if
// the key does not exist and [ErrKeyScheduled] if it is scheduled for
// deletion. Rewrap is an OpenKES extension (docs/keys.md).
func (c *Client) RewrapKey(ctx context.Context, name string, ciphertext, context []byte) ([]byte, int, error) {
	path := "/v1/key/rewrap/" + url.PathEscape(name)
	req := struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context,omitempty"`
	}{nonNil(ciphertext), context}
	var resp struct {
		Ciphertext []byte `json:"ciphertext"`
		Version    int    `json:"version"`
	}
	if err := c.call(ctx, http.MethodPost, path, req, &resp); err != nil {
		return nil, 0, err
	}
	switch {
	case resp.Version < 1:
		return nil, 0, invalidResponse(http.MethodPost, path, errNoVersion)
	case len(resp.Ciphertext) == 0:
		return nil, 0, invalidResponse(http.MethodPost, path, errors.New("no ciphertext"))
	}
	return resp.Ciphertext, resp.Version, nil
}

// RestoreKey cancels the scheduled deletion of the master key, which then
// works as before. It returns [ErrKeyNotScheduled] if the key is not
// scheduled for deletion and [ErrKeyNotFound] if it does not exist (also
// once its deletion window has ended). Restore is an OpenKES extension
// (docs/keys.md).
func (c *Client) RestoreKey(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/key/restore/"+url.PathEscape(name), nil, nil)
}

var errNoVersion = errors.New("no key version")

// ListKeys returns the names of the master keys that match the pattern,
// sorted, and a continuation name ("" if the list is complete). An empty
// pattern or "*" lists all keys. The server returns all names it has at
// once (possibly with a continuation); if n > 0, at most n names are
// returned and the continuation is the first name left out.
func (c *Client) ListKeys(ctx context.Context, pattern string, n int) ([]string, string, error) {
	return c.listNames(ctx, "/v1/key/list/", pattern, n)
}

// DescribePolicy returns information about the policy. It returns
// [ErrPolicyNotFound] if the policy does not exist.
func (c *Client) DescribePolicy(ctx context.Context, name string) (*PolicyInfo, error) {
	return get[PolicyInfo](ctx, c, "/v1/policy/describe/", name)
}

// GetPolicy returns the policy's rules. It returns [ErrPolicyNotFound] if
// the policy does not exist.
func (c *Client) GetPolicy(ctx context.Context, name string) (*Policy, error) {
	return get[Policy](ctx, c, "/v1/policy/read/", name)
}

// ListPolicies returns the names of the policies that match the pattern,
// sorted, and a continuation name, like [Client.ListKeys]. An empty
// pattern or "*" lists all policies; a trailing "*" makes the rest a
// prefix.
func (c *Client) ListPolicies(ctx context.Context, pattern string, n int) ([]string, string, error) {
	return c.listNames(ctx, "/v1/policy/list/", pattern, n)
}

// DescribeIdentity returns information about the identity. It returns
// [ErrIdentityNotFound] if the identity is neither the admin nor assigned
// to a policy.
func (c *Client) DescribeIdentity(ctx context.Context, id Identity) (*IdentityInfo, error) {
	info, err := get[IdentityInfo](ctx, c, "/v1/identity/describe/", string(id))
	if err == nil && info.Identity == "" {
		// The server does not repeat the identity it was asked about.
		info.Identity = id
	}
	return info, err
}

// DescribeSelf returns information about the client's own identity and
// the rules of its policy (empty for the admin). It returns
// [ErrIdentityNotFound] if the identity is neither the admin nor assigned
// to a policy; the original KES server returns it for every identity but
// the admin.
func (c *Client) DescribeSelf(ctx context.Context) (*IdentityInfo, *Policy, error) {
	var resp struct {
		Identity  Identity            `json:"identity"`
		IsAdmin   bool                `json:"admin"`
		Policy    json.RawMessage     `json:"policy"`
		Allow     map[string]struct{} `json:"allow"`
		Deny      map[string]struct{} `json:"deny"`
		CreatedAt time.Time           `json:"created_at"`
		CreatedBy Identity            `json:"created_by"`
	}
	const path = "/v1/identity/self/describe"
	if err := c.call(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, nil, err
	}
	info := &IdentityInfo{
		Identity:  resp.Identity,
		IsAdmin:   resp.IsAdmin,
		CreatedAt: resp.CreatedAt,
		CreatedBy: resp.CreatedBy,
	}
	policy := &Policy{
		Allow:     resp.Allow,
		Deny:      resp.Deny,
		CreatedAt: resp.CreatedAt,
		CreatedBy: resp.CreatedBy,
	}
	switch p := bytes.TrimSpace(resp.Policy); {
	case len(p) == 0 || string(p) == "null":
	case p[0] == '"':
		if err := json.Unmarshal(p, &info.Policy); err != nil {
			return nil, nil, invalidResponse(http.MethodGet, path, err)
		}
	default:
		// The original server's code, if its lookup worked, would nest the
		// whole policy here instead of sending its name.
		var nested struct {
			Name      string              `json:"name"`
			Allow     map[string]struct{} `json:"allow"`
			Deny      map[string]struct{} `json:"deny"`
			CreatedAt time.Time           `json:"created_at"`
			CreatedBy Identity            `json:"created_by"`
		}
		if err := json.Unmarshal(p, &nested); err != nil {
			return nil, nil, invalidResponse(http.MethodGet, path, err)
		}
		info.Policy = nested.Name
		policy = &Policy{
			Allow:     nested.Allow,
			Deny:      nested.Deny,
			CreatedAt: nested.CreatedAt,
			CreatedBy: nested.CreatedBy,
		}
	}
	return info, policy, nil
}

// ListIdentities returns the identities that match the pattern, sorted,
// and a continuation, like [Client.ListPolicies].
func (c *Client) ListIdentities(ctx context.Context, pattern string, n int) ([]Identity, string, error) {
	var resp struct {
		Identities []Identity `json:"identities"`
		ContinueAt string     `json:"continue_at"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/identity/list/"+url.PathEscape(pattern), nil, &resp); err != nil {
		return nil, "", err
	}
	ids, next := limit(resp.Identities, resp.ContinueAt, n)
	return ids, string(next), nil
}

// get decodes the answer of GET route+name, name escaped as one path
// segment.
func get[T any](ctx context.Context, c *Client, route, name string) (*T, error) {
	v := new(T)
	if err := c.call(ctx, http.MethodGet, route+url.PathEscape(name), nil, v); err != nil {
		return nil, err
	}
	return v, nil
}

// listNames returns the names the list route answers for pattern, cut by
// [limit].
func (c *Client) listNames(ctx context.Context, route, pattern string, n int) ([]string, string, error) {
	var resp struct {
		Names      []string `json:"names"`
		ContinueAt string   `json:"continue_at"`
	}
	if err := c.call(ctx, http.MethodGet, route+url.PathEscape(pattern), nil, &resp); err != nil {
		return nil, "", err
	}
	names, next := limit(resp.Names, resp.ContinueAt, n)
	return names, next, nil
}

// limit cuts list to n entries if n > 0 and the list is longer; the
// continuation then becomes the first entry left out.
func limit[T ~string](list []T, next string, n int) ([]T, T) {
	if n > 0 && len(list) > n {
		return list[:n:n], list[n]
	}
	return list, T(next)
}

// nonNil makes sure that a []byte field is encoded as "" and not as null.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// call sends a request with in as JSON body (none if in is nil) and
// decodes a JSON response into out (discarded if out is nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	req := request{method: method, path: path}
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("kes: encode %s %s request: %w", method, path, err)
		}
		req.body, req.contentType = body, "application/json"
	}
	if out != nil {
		req.accept = "application/json"
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		// Draining lets the connection be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
		return nil
	}
	body, err := readBody(resp.Body, maxResponseBody)
	if err != nil {
		return invalidResponse(method, path, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return invalidResponse(method, path, err)
	}
	return nil
}

func invalidResponse(method, path string, err error) error {
	return fmt.Errorf("kes: invalid response to %s %s: %w", method, path, err)
}

// readBody reads all of r, failing if it is longer than max bytes.
func readBody(r io.Reader, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("response body exceeds %d bytes", max)
	}
	return body, nil
}

// request is what is needed to send one request to any endpoint.
type request struct {
	method      string
	path        string // escaped path, starting with "/"
	body        []byte // nil: no body
	contentType string
	accept      string
}

// do sends the request to the endpoints, failing over as described at
// [Client]. It returns the response only for a 2xx status; the caller
// closes its body. Any other status becomes an [Error].
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	endpoints := c.order()
	if len(endpoints) == 0 {
		return nil, errNoEndpoint
	}
	var lastErr error
	for _, endpoint := range endpoints {
		req, err := r.newHTTPRequest(ctx, endpoint)
		if err != nil {
			lastErr = err
			continue
		}
		resp, err := c.HTTPClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about the endpoint.
				return nil, err
			}
			c.penalize(endpoint)
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			c.penalize(endpoint)
			lastErr = parseErrorResponse(resp)
			continue
		}
		c.pardon(endpoint)
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, parseErrorResponse(resp)
		}
		return resp, nil
	}
	return nil, lastErr
}

// newHTTPRequest returns the request for the endpoint. The body is a fresh
// bytes.Reader, which also lets net/http replay it on redirects.
func (r *request) newHTTPRequest(ctx context.Context, endpoint string) (*http.Request, error) {
	base, err := baseURL(endpoint)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, body)
	if err != nil {
		return nil, fmt.Errorf("kes: invalid endpoint %q: %w", endpoint, err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	return req, nil
}

// baseURL returns the endpoint as "scheme://host[/path]", without a
// trailing slash.
func baseURL(endpoint string) (string, error) {
	s := strings.TrimSpace(endpoint)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("kes: invalid endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("kes: invalid endpoint %q", endpoint)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/"), nil
}

// order returns the endpoints to try: those not in a timeout, in the
// configured order, or all of them if every one is in a timeout.
func (c *Client) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.penalized) == 0 {
		return c.Endpoints
	}
	now := c.clock()
	healthy := make([]string, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		until, ok := c.penalized[e]
		if ok && now.Before(until) {
			continue
		}
		if ok {
			delete(c.penalized, e) // let one request through again
		}
		healthy = append(healthy, e)
	}
	if len(healthy) == 0 {
		return c.Endpoints
	}
	return healthy
}

// penalize puts the endpoint into a timeout.
func (c *Client) penalize(endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.penalized == nil {
		c.penalized = make(map[string]time.Time)
	}
	c.penalized[endpoint] = c.clock().Add(endpointTimeout)
}

// pardon ends the endpoint's timeout, if any.
func (c *Client) pardon(endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.penalized, endpoint)
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
