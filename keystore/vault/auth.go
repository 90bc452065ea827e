package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/openkes/openkes/internal/restclient"
	"github.com/openkes/openkes/keystore"
)

// token is a Vault token and what the client knows about its lease. Its
// fields other than value are guarded by Client.mu.
type token struct {
	value     string        // never logged, never part of an error
	renewable bool          // Vault said the token can be renewed
	ttl       time.Duration // the lease of the login: what renewals ask for
	lease     time.Duration // the current lease; 0: the token never expires
	start     time.Time     // when the current lease began (request sent)
	replace   bool          // renewal is not possible any more: log in again
	invalid   bool          // Vault rejected the token
	activate  time.Time     // a pending token is used from then on
	check     *call         // a validity check in flight
}

// expiry returns when the token expires; zero if never.
func (t *token) expiry() time.Time {
	if t.lease <= 0 {
		return time.Time{}
	}
	return t.start.Add(t.lease)
}

// usable reports whether the token can be sent at time now.
func (t *token) usable(now time.Time) bool {
	return !t.invalid && (t.lease <= 0 || now.Before(t.start.Add(t.lease)))
}

// due returns when the token should be renewed (or replaced if it cannot
// be renewed): after two thirds of its lease, which leaves a third for
// retries and a new login.
func (t *token) due() time.Time { return t.start.Add(t.lease * 2 / 3) }

// currentLocked returns the token to use at time now, or nil if there is
// none. A pending token becomes the active one once its activation time
// has come or the active one can no longer be used. c.mu is held.
func (c *Client) currentLocked(now time.Time) *token {
	if p := c.pending; p != nil && (!now.Before(p.activate) || c.active == nil || !c.active.usable(now)) {
		c.active, c.pending = p, nil
		c.log.Debug("vault: new token in use")
	}
	if a := c.active; a != nil && a.usable(now) {
		return a
	}
	return nil
}

// token returns a token for a request. Without a usable token it logs
// in (or joins a login in flight) and waits for the result as long as ctx
// allows; while logins fail it fails fast with the last login error.
func (c *Client) token(ctx context.Context) (*token, error) {
	c.mu.Lock()
	t := c.currentLocked(time.Now())
	c.mu.Unlock()
	if t != nil {
		return t, nil
	}
	err := c.login(ctx)
	c.mu.Lock()
	t = c.currentLocked(time.Now())
	loggedIn := c.loggedIn
	c.mu.Unlock()
	switch {
	case t != nil:
		return t, nil
	case err == nil:
		err = errors.New("no usable token")
	}
	if errors.Is(err, errClosed) {
		return nil, err
	}
	if !loggedIn {
		return nil, &keystore.UnreachableError{Err: fmt.Errorf("vault: not authenticated yet: %w", err)}
	}
	return nil, &keystore.UnreachableError{Err: fmt.Errorf("vault: no valid token: %w", err)}
}

// login obtains a new token, or waits for the login in flight. While
// logins are backing off after a failure it returns the last login
// error at once: requests must neither hang nor hammer Vault.
func (c *Client) login(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	cl := c.inflight
	if cl == nil {
		if time.Now().Before(c.nextLogin) {
			err := c.lastErr
			c.mu.Unlock()
			return err
		}
		cl = &call{done: make(chan struct{})}
		c.inflight = cl
		c.wg.Add(1)
		go c.runLogin(cl)
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runLogin performs one login and installs the token.
func (c *Client) runLogin(cl *call) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.t.requestTimeout)
	tok, err := c.loginRequest(ctx)
	cancel()

	c.mu.Lock()
	c.inflight = nil
	first := !c.loggedIn
	var retryIn time.Duration
	if err != nil {
		c.failures++
		retryIn = restclient.Backoff(c.failures, c.t.backoffMin, c.t.backoffMax)
		c.nextLogin = time.Now().Add(retryIn)
		c.lastErr = err
	} else {
		c.failures, c.lastErr, c.nextLogin, c.loggedIn = 0, nil, time.Time{}, true
		c.installLocked(tok)
	}
	failures := c.failures
	cl.err = err
	close(cl.done)
	c.broadcastLocked()
	c.mu.Unlock()

	switch {
	case err != nil && c.ctx.Err() != nil:
		// Closed while logging in: not worth a warning.
	case err != nil:
		c.log.Warn("vault: login failed", "auth", c.loginPath, "error", err, "failures", failures, "retry_in", retryIn.Round(time.Millisecond))
	case first:
		c.log.Info("vault: logged in", "auth", c.loginPath, "ttl", tok.lease, "renewable", tok.renewable)
	default:
		c.log.Debug("vault: logged in again", "auth", c.loginPath, "ttl", tok.lease, "renewable", tok.renewable)
	}
}

// installLocked makes tok the token to use. If the current token is still
// good for a while, tok becomes pending and replaces it after a delay, so
// that it has reached every Vault node before it is used. c.mu is held.
func (c *Client) installLocked(tok *token) {
	now := time.Now()
	c.gen++
	if a := c.active; a != nil && a.usable(now) {
		delay := c.t.activation
		if exp := a.expiry(); !exp.IsZero() {
			delay = min(delay, exp.Sub(now)/2)
		}
		tok.activate = now.Add(delay)
		c.pending = tok
		return
	}
	c.active, c.pending = tok, nil
}

// loginRequest logs in with the configured method.
func (c *Client) loginRequest(ctx context.Context) (*token, error) {
	var body map[string]string
	if c.conf.usesAppRole() {
		body = map[string]string{"role_id": c.conf.AppRole.ID, "secret_id": c.conf.AppRole.Secret.Reveal()}
	} else {
		jwt := c.conf.Kubernetes.JWT.Reveal()
		if isJWTFile(jwt) {
			// The kubelet rotates the service account token: read it
			// at every login.
			b, err := os.ReadFile(jwt)
			if err != nil {
				return nil, fmt.Errorf("login at %s: reading the JWT: %w", c.loginPath, err)
			}
			jwt = strings.TrimSpace(string(b))
			clear(b)
		}
		body = map[string]string{"role": c.conf.Kubernetes.Role, "jwt": jwt}
	}
	start := time.Now()
	resp, err := c.exchange(ctx, &apiRequest{method: http.MethodPost, path: c.loginPath, body: body, namespace: c.authNS}, nil)
	clear(body)
	if err != nil {
		return nil, fmt.Errorf("login at %s: %w", c.loginPath, err)
	}
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("login at %s: %w", c.loginPath, resp.err())
	}
	auth, err := decodeAuth(resp.body)
	if err != nil {
		return nil, fmt.Errorf("login at %s: %w", c.loginPath, err)
	}
	lease := time.Duration(auth.LeaseDuration) * time.Second
	return &token{value: auth.ClientToken, renewable: auth.Renewable, ttl: lease, lease: lease, start: start}, nil
}

// renew renews tok with up to 3 attempts; 4xx answers are not retried.
// It returns the new lease and when it began.
func (c *Client) renew(tok *token) (lease time.Duration, start time.Time, err error) {
	c.mu.Lock()
	increment := int64(tok.ttl / time.Second)
	c.mu.Unlock()
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 && !c.sleep(restclient.Backoff(attempt-1, c.t.backoffMin, c.t.backoffMax), nil) {
			return 0, time.Time{}, errClosed
		}
		if err := c.ready(); err != nil {
			return 0, time.Time{}, err // sealed: renewals pause
		}
		start = time.Now()
		var resp *response
		resp, err = c.roundTrip(c.ctx, &apiRequest{
			method:    http.MethodPost,
			path:      "auth/token/renew-self",
			body:      map[string]int64{"increment": increment},
			namespace: c.authNS,
		}, tok)
		if err != nil {
			continue
		}
		if resp.status != http.StatusOK {
			err = resp.err()
			if resp.status >= 400 && resp.status < 500 {
				break
			}
			continue
		}
		auth, err := decodeAuth(resp.body)
		if err != nil {
			return 0, time.Time{}, err
		}
		if auth.LeaseDuration <= 0 {
			return 0, time.Time{}, errors.New("vault: renewal returned no lease")
		}
		return time.Duration(auth.LeaseDuration) * time.Second, start, nil
	}
	return 0, time.Time{}, err
}

// authLoop keeps the client logged in: it logs in, renews the token
// after two thirds of each lease, and logs in again when the token
// cannot be renewed (renewal failed, not renewable, maximum TTL reached)
// while the old token stays in use. Failed logins back off
// exponentially; nothing happens while Vault is sealed.
func (c *Client) authLoop() {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		now := time.Now()
		c.mu.Lock()
		c.currentLocked(now)
		t := c.pending
		if t == nil {
			t = c.active
		}
		state, next, wake := c.state, c.nextLogin, c.changed
		var activate time.Time
		if c.pending != nil {
			activate = c.pending.activate
		}
		var replace, usable bool
		var due time.Time
		var lease time.Duration
		if t != nil {
			replace, usable, due, lease = t.replace, t.usable(now), t.due(), t.lease
		}
		c.mu.Unlock()

		wait := time.Duration(-1)
		switch {
		case state != unsealed:
			// Wait for the health probe to see Vault unsealed.
		case t == nil || !usable || replace:
			if now.Before(next) {
				wait = next.Sub(now)
				break
			}
			c.login(c.ctx)
			continue
		case lease <= 0:
			// A token without expiry needs no care.
		case now.Before(due):
			wait = due.Sub(now)
		default:
			c.maintain(t)
			continue
		}
		if !activate.IsZero() {
			if d := max(activate.Sub(now), 0); wait < 0 || d < wait {
				wait = d
			}
		}
		if !c.sleep(wait, wake) {
			return
		}
	}
}

// maintain renews t, or marks it for replacement if that is not
// possible.
func (c *Client) maintain(t *token) {
	c.mu.Lock()
	renewable := t.renewable
	c.mu.Unlock()
	if !renewable {
		c.log.Debug("vault: token is not renewable; logging in again")
		c.markReplace(t)
		return
	}
	lease, start, err := c.renew(t)
	switch {
	case errors.Is(err, errClosed):
		return
	case err != nil && c.ready() != nil:
		return // sealed: try again after unsealing
	case err != nil:
		c.log.Warn("vault: token renewal failed; logging in again", "error", err)
		c.markReplace(t)
		return
	}
	c.mu.Lock()
	t.lease, t.start = lease, start
	capped := lease < t.ttl
	if capped {
		t.replace = true
	}
	c.broadcastLocked()
	c.mu.Unlock()
	if capped {
		c.log.Info("vault: token reached its maximum TTL; logging in again", "ttl", lease)
	} else {
		c.log.Debug("vault: token renewed", "ttl", lease)
	}
}

func (c *Client) markReplace(t *token) {
	c.mu.Lock()
	t.replace = true
	c.broadcastLocked()
	c.mu.Unlock()
}

// invalidate marks tok as rejected by Vault, so that the next request
// uses the pending token or logs in.
func (c *Client) invalidate(tok *token) {
	c.mu.Lock()
	already := tok.invalid
	tok.invalid = true
	if !already {
		c.broadcastLocked()
	}
	c.mu.Unlock()
	if !already {
		c.log.Info("vault: token rejected by Vault (revoked or expired); logging in again")
	}
}

// tokenRejected reports whether a 403 answer means that tok is not valid
// any more, as opposed to a policy that denies the path. Vault says
// "invalid token" in the first case (since 1.16); otherwise the client
// asks Vault with auth/token/lookup-self, which the default policy
// allows. Concurrent checks of one token share one lookup.
func (c *Client) tokenRejected(ctx context.Context, tok *token, resp *response) bool {
	for _, e := range decodeErrors(resp.body) {
		if strings.Contains(e, "invalid token") {
			return true
		}
	}
	c.mu.Lock()
	if tok.invalid {
		c.mu.Unlock()
		return true
	}
	cl := tok.check
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		tok.check = cl
		c.mu.Unlock()
		r, err := c.exchange(ctx, &apiRequest{method: http.MethodGet, path: "auth/token/lookup-self", namespace: c.authNS}, tok)
		cl.ok = err == nil && r.status == http.StatusForbidden
		c.mu.Lock()
		tok.check = nil
		close(cl.done)
		c.mu.Unlock()
		return cl.ok
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		return cl.ok
	case <-ctx.Done():
		return false
	}
}
