package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/keystore"
)

// Size limits of response bodies. Stored keys are a few hundred bytes;
// a list of a large folder can be big (the original allows 32 MiB).
const (
	maxResponse     = 1 << 20
	maxListResponse = 32 << 20
)

// timing holds the time constants of a client. The zero value means the
// defaults; tests set short values.
type timing struct {
	// requestTimeout bounds every HTTP request, including a login.
	requestTimeout time.Duration
	// activation is the longest a freshly obtained token waits before it
	// replaces a token that is still valid, so that it has reached every
	// Vault node (performance standbys) before it is used. The wait is
	// at most half the old token's remaining lifetime.
	activation time.Duration
	// backoffMin and backoffMax bound the exponential backoff between
	// failed logins and renewal attempts.
	backoffMin, backoffMax time.Duration
	// unhealthyPing is the probe interval while Vault is sealed or
	// unreachable, so that recovery is noticed quickly.
	unhealthyPing time.Duration
}

func (t timing) withDefaults() timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.requestTimeout, 15*time.Second)
	def(&t.activation, 3*time.Second)
	def(&t.backoffMin, 500*time.Millisecond)
	def(&t.backoffMax, 30*time.Second)
	def(&t.unhealthyPing, time.Second)
	return t
}

// Errors of the fail-fast paths. They are returned wrapped in a
// *keystore.UnreachableError.
var (
	errSealed         = errors.New("vault: key store is sealed")
	errNotInitialized = errors.New("vault: key store is not initialized")
	errClosed         = errors.New("vault: client is closed")
)

// sealState is what the last health probe (or data request) said.
type sealState int

const (
	unsealed sealState = iota
	sealed
	uninitialized
)

// Client is a connection to Vault that keeps itself logged in: it logs
// in with AppRole or Kubernetes, renews its token before it expires,
// logs in again when renewal fails, and probes sys/health in the
// background. It is safe for concurrent use. Create one with
// [NewClient]; [Config.Connect] creates one for the [Store].
type Client struct {
	endpoint  string // base URL without trailing slash
	namespace string // X-Vault-Namespace of data requests
	authNS    string // X-Vault-Namespace of login, renew-self and lookup-self
	loginPath string // e.g. "auth/approle/login"
	conf      ClientConfig
	http      *http.Client
	log       *slog.Logger
	t         timing

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu        sync.Mutex
	closed    bool
	state     sealState
	changed   chan struct{} // closed and replaced on every state change
	active    *token        // the token in use
	pending   *token        // a new token waiting to replace active
	gen       uint64        // counts installed tokens
	inflight  *call         // the login in flight
	loggedIn  bool          // a login has succeeded at least once
	failures  int           // consecutive failed logins
	nextLogin time.Time     // no login before this time (backoff)
	lastErr   error         // the error of the last failed login
}

// call is an operation that concurrent callers share.
type call struct {
	done chan struct{}
	err  error
	ok   bool
}

// NewClient returns a client for the Vault described by conf (with the
// defaults applied to empty fields) that logs to log (nil discards). It
// does not wait for Vault: it logs in in the background, and requests
// made before the first login has succeeded wait briefly for a login in
// flight and otherwise fail with an error wrapping
// *[keystore.UnreachableError]. NewClient returns an error for invalid
// settings (see [ClientConfig.Validate]), an endpoint that is not an
// http(s) URL, and TLS files that cannot be loaded. Call [Client.Close]
// to stop the background work.
func NewClient(conf *ClientConfig, log *slog.Logger) (*Client, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	u, err := url.Parse(strings.TrimSpace(conf.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("vault: endpoint: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("vault: endpoint: '%s' is not an http or https URL", conf.Endpoint)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		endpoint:  strings.TrimRight(u.String(), "/"),
		namespace: cleanNamespace(conf.Namespace),
		conf:      *conf,
		log:       log,
		t:         conf.timing.withDefaults(),
		changed:   make(chan struct{}),
	}
	if c.conf.Status.Ping <= 0 {
		c.conf.Status.Ping = DefaultPing
	}
	var engine, authNS string
	if conf.usesAppRole() {
		engine, authNS = conf.AppRole.Engine, conf.AppRole.Namespace
		if engine == "" {
			engine = DefaultAppRoleEngine
		}
	} else {
		engine, authNS = conf.Kubernetes.Engine, conf.Kubernetes.Namespace
		if engine == "" {
			engine = DefaultKubernetesEngine
		}
	}
	enginePath, err := cleanPath(engine)
	if err != nil || enginePath == "" {
		return nil, fmt.Errorf("vault: invalid auth engine '%s'", engine)
	}
	c.loginPath = "auth/" + enginePath + "/login"
	switch strings.TrimSpace(authNS) {
	case "":
		c.authNS = c.namespace
	case "/":
		c.authNS = ""
	default:
		c.authNS = cleanNamespace(authNS)
	}

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if conf.TLS.CA != "" {
		if tlsConf.RootCAs, err = https.LoadCertPool(conf.TLS.CA); err != nil {
			return nil, fmt.Errorf("vault: tls.ca: %w", err)
		}
	}
	if conf.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(conf.TLS.Cert, conf.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("vault: tls: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	// Keep-alives stay on, unlike in the original (which disabled them):
	// every request bounded by a timeout, idle connections closed after
	// 30 s and Go retrying idempotent requests on a stale connection make
	// reuse safe, and it saves a TLS handshake per key operation. The
	// short idle timeout also moves traffic to a new active node soon
	// after a Vault HA failover.
	c.http = &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsConf,
			TLSHandshakeTimeout:   10 * time.Second,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       30 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: checkRedirect,
	}

	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go c.authLoop()
	go c.healthLoop()
	return c, nil
}

// checkRedirect follows the redirects of Vault standby nodes to the
// active node, but never from https to http (the token would travel in
// clear text) and at most 3.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("vault: stopped after 3 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("vault: refusing a redirect from https to http")
	}
	return nil
}

// String returns "Hashicorp Vault: <endpoint>".
func (c *Client) String() string { return "Hashicorp Vault: " + c.endpoint }

// Close stops the background work (renewals, health probes, logins in
// flight) and returns when it has stopped. Requests made after Close
// fail. Close always returns nil and may be called more than once.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.broadcastLocked()
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.http.CloseIdleConnections()
	})
	return nil
}

// broadcastLocked wakes everyone waiting for a state change. c.mu is held.
func (c *Client) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// sleep waits for d (forever if d < 0), a state change on wake, or Close.
// It returns false on Close.
func (c *Client) sleep(d time.Duration, wake <-chan struct{}) bool {
	if d < 0 {
		select {
		case <-c.ctx.Done():
			return false
		case <-wake:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// apiRequest is one Vault API request.
type apiRequest struct {
	method    string
	path      string // escaped API path after /v1/
	query     url.Values
	body      any    // JSON-encoded if not nil
	namespace string // X-Vault-Namespace; "" sends none
	limit     int64  // response body limit; 0 means maxResponse
}

// response is a Vault response.
type response struct {
	status int
	body   []byte
}

// err returns the Vault error of a response.
func (r *response) err() error {
	return &ResponseError{StatusCode: r.status, Errors: decodeErrors(r.body)}
}

// exchange sends one request, with tok if not nil, bounded by the
// request timeout. It returns transport errors unchanged.
func (c *Client) exchange(ctx context.Context, r *apiRequest, tok *token) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.t.requestTimeout)
	defer cancel()

	target := c.endpoint + "/v1/" + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	var raw []byte
	if r.body != nil {
		var err error
		if raw, err = json.Marshal(r.body); err != nil {
			return nil, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Vault's own client sends it; Vault may require it to protect
	// against server-side request forgery.
	req.Header.Set("X-Vault-Request", "true")
	if r.namespace != "" {
		req.Header.Set("X-Vault-Namespace", r.namespace)
	}
	if tok != nil {
		req.Header.Set("X-Vault-Token", tok.value)
	}
	resp, err := c.http.Do(req)
	clear(raw) // it may hold a value or a secret ID
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := r.limit
	if limit <= 0 {
		limit = maxResponse
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("vault: %s %s: response exceeds %d bytes", r.method, r.path, limit)
	}
	return &response{status: resp.StatusCode, body: data}, nil
}

// roundTrip is exchange plus the classification of errors that mean
// Vault cannot be used right now: transport errors, 503 (sealed,
// standby without active node) and 501 (not initialised) become
// *keystore.UnreachableError; a "Vault is sealed" answer also marks the
// client sealed, so that further requests fail without asking.
func (c *Client) roundTrip(ctx context.Context, r *apiRequest, tok *token) (*response, error) {
	resp, err := c.exchange(ctx, r, tok)
	if err != nil {
		var ue *keystore.UnreachableError
		if errors.As(err, &ue) {
			return nil, err
		}
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("vault: %w", err)}
	}
	switch resp.status {
	case http.StatusServiceUnavailable:
		if isSealedError(resp.body) {
			c.setState(sealed)
			return nil, &keystore.UnreachableError{Err: errSealed}
		}
		return nil, &keystore.UnreachableError{Err: resp.err()}
	case http.StatusNotImplemented:
		return nil, &keystore.UnreachableError{Err: resp.err()}
	}
	return resp, nil
}

// isSealedError reports whether a 503 body says "Vault is sealed".
func isSealedError(body []byte) bool {
	for _, e := range decodeErrors(body) {
		if strings.Contains(strings.ToLower(e), "sealed") {
			return true
		}
	}
	return false
}

// ready returns the error of the fail-fast paths: a closed client, a
// sealed or uninitialised Vault.
func (c *Client) ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return errClosed
	case c.state == sealed:
		return &keystore.UnreachableError{Err: errSealed}
	case c.state == uninitialized:
		return &keystore.UnreachableError{Err: errNotInitialized}
	}
	return nil
}

// maxTokenRetries is how often a request is repeated with a new token
// after Vault rejected the token: twice covers a token that was
// revoked while its replacement was waiting for activation.
const maxTokenRetries = 2

// do sends an authenticated request in c's namespace, failing fast while
// Vault is sealed. If Vault rejects the token (revoked, or expired before
// the client expected), it logs in again and repeats the request, so a
// token lost unexpectedly costs no failed request.
func (c *Client) do(ctx context.Context, r *apiRequest) (*response, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	for retry := 0; ; retry++ {
		tok, err := c.token(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, r, tok)
		if err != nil {
			return nil, err
		}
		if resp.status != http.StatusForbidden || retry == maxTokenRetries || !c.tokenRejected(ctx, tok, resp) {
			return resp, nil
		}
		c.invalidate(tok)
	}
}

// setState records what Vault said about its seal and logs changes.
func (c *Client) setState(s sealState) {
	c.mu.Lock()
	old := c.state
	c.state = s
	if old != s {
		c.broadcastLocked()
	}
	c.mu.Unlock()
	if old == s {
		return
	}
	switch s {
	case sealed:
		c.log.Warn("vault: key store is sealed; key operations fail until it is unsealed", "endpoint", c.endpoint)
	case uninitialized:
		c.log.Warn("vault: key store is not initialized", "endpoint", c.endpoint)
	default:
		c.log.Info("vault: key store is unsealed", "endpoint", c.endpoint)
	}
}

// ResponseError is an error response of Vault: its status code and the
// messages of its {"errors":[...]} body.
type ResponseError struct {
	StatusCode int
	Errors     []string
}

func (e *ResponseError) Error() string {
	s := fmt.Sprintf("vault: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if len(e.Errors) > 0 {
		s += ": " + strings.Join(e.Errors, "; ")
	}
	return s
}
