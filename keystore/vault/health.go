package vault

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/openkes/openkes/keystore"
)

// healthLoop probes sys/health every status.ping, and every second (at
// most) while Vault is sealed or unreachable, so that recovery is seen
// quickly.
func (c *Client) healthLoop() {
	defer c.wg.Done()
	healthy := true
	last := time.Now() // of the last probe
	for {
		// A data request that finds Vault sealed changes the state
		// between probes: from then on, probe at the unhealthy pace.
		c.mu.Lock()
		wake, unsealedNow := c.changed, c.state == unsealed
		c.mu.Unlock()
		interval := c.conf.Status.Ping
		if !healthy || !unsealedNow {
			interval = min(interval, c.t.unhealthyPing)
		}
		t := time.NewTimer(max(time.Until(last.Add(interval)), 0))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
			continue // recompute the interval, keeping the schedule
		case <-t.C:
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(c.ctx, c.t.requestTimeout)
		_, err := c.probe(ctx)
		cancel()
		healthy = err == nil
	}
}

// probe asks sys/health, without namespace and token, records what Vault
// says about its seal and returns the latency. Vault answers 200 when
// active, 429 as standby, 472 as DR secondary, 473 as performance
// standby and 474 as a standby that cannot reach the active node: all
// of them serve (or forward) requests. 501 means not initialised, 503
// sealed: both are reported as *keystore.UnreachableError, like
// transport errors. Other answers are plain errors.
func (c *Client) probe(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	resp, err := c.exchange(ctx, &apiRequest{method: http.MethodGet, path: "sys/health"}, nil)
	latency := time.Since(start)
	if err != nil {
		return 0, &keystore.UnreachableError{Err: fmt.Errorf("vault: %w", err)}
	}
	h, herr := decodeHealth(resp.body)
	switch resp.status {
	case http.StatusOK, http.StatusTooManyRequests, 472, 473, 474:
		if herr == nil && *h.Sealed {
			c.setState(sealed)
			return 0, &keystore.UnreachableError{Err: errSealed}
		}
		c.setState(unsealed)
		return latency, nil
	case http.StatusNotImplemented, http.StatusServiceUnavailable:
		switch {
		case herr != nil:
			// Not Vault's health body: a proxy in front of Vault.
			return 0, &keystore.UnreachableError{Err: fmt.Errorf("vault: health check: %w", resp.err())}
		case !*h.Initialized:
			c.setState(uninitialized)
			return 0, &keystore.UnreachableError{Err: errNotInitialized}
		default:
			c.setState(sealed)
			return 0, &keystore.UnreachableError{Err: errSealed}
		}
	}
	return 0, fmt.Errorf("vault: health check: %w", resp.err())
}

// Status asks Vault's sys/health now and returns its latency. It returns
// an error wrapping *[keystore.UnreachableError] if Vault cannot be
// reached, is sealed or not initialised, or ctx ends first; a plain
// error for other unexpected health answers, and when Vault is healthy
// but the client has no valid token because logins fail (bad
// credentials, a missing role), so that /v1/ready does not call a store
// ready that cannot serve a single key.
func (c *Client) Status(ctx context.Context) (keystore.State, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return keystore.State{}, errClosed
	}
	latency, err := c.probe(ctx)
	if err != nil {
		return keystore.State{}, err
	}
	c.mu.Lock()
	t, lastErr := c.currentLocked(time.Now()), c.lastErr
	c.mu.Unlock()
	if t == nil && lastErr != nil {
		return keystore.State{}, fmt.Errorf("vault: not authenticated: %w", lastErr)
	}
	return keystore.State{Latency: latency}, nil
}
