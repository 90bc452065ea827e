package gcp

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Failed token requests are retried after minBackoff at first, doubling
// (with jitter) up to maxBackoff.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// tokenProvider wraps the SDK's cached token provider, which refreshes
// the access token in the background before it expires and fetches a new
// one when it has expired. It adds what the SDK leaves out:
//
//   - After a failed token request, further requests fail at once with
//     the same error until a backoff delay has passed, so an outage of
//     the token endpoint is not hammered by every key request.
//   - A token request that failed because the token endpoint could not be
//     reached, timed out or answered 429 or 5xx fails with gRPC code
//     Unavailable, so that the store reports it as
//     *keystore.UnreachableError; a rejected credential (4xx) fails with
//     Unauthenticated. (gRPC would report both as Unauthenticated.)
//
// Its errors never contain a token or a key: the SDK's token errors hold
// the endpoint's error response only.
type tokenProvider struct {
	base auth.TokenProvider
	log  *slog.Logger

	mu       sync.Mutex
	failures int       // consecutive failed requests
	retryAt  time.Time // no request before then
	lastErr  error     // the error of the last failed request
}

func (p *tokenProvider) Token(ctx context.Context) (*auth.Token, error) {
	p.mu.Lock()
	if p.failures > 0 && time.Now().Before(p.retryAt) {
		err := p.lastErr
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()

	tok, err := p.base.Token(ctx)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		if p.failures > 0 {
			p.log.Info("gcp: access token obtained again", slog.Int("failed_attempts", p.failures))
		}
		p.failures, p.lastErr = 0, nil
		return tok, nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) && errors.Is(err, context.Canceled) {
		return nil, err // the caller gave up; says nothing about the endpoint
	}
	err = classifyTokenError(err)
	p.failures++
	d := minBackoff << min(p.failures-1, 10)
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1) // jitter, so that replicas do not retry in step
	p.retryAt, p.lastErr = time.Now().Add(d), err
	if p.failures == 1 {
		p.log.Warn("gcp: cannot obtain an access token, retrying with backoff", slog.Any("err", err))
	}
	return nil, err
}

// classifyTokenError returns err as a gRPC status error: Unauthenticated
// if the token endpoint rejected the credentials, Unavailable otherwise.
func classifyTokenError(err error) error {
	code := codes.Unavailable
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil {
		if s := ae.Response.StatusCode; s >= 400 && s < 500 && s != http.StatusTooManyRequests && s != http.StatusRequestTimeout {
			code = codes.Unauthenticated
		}
	}
	return status.Errorf(code, "gcp: fetch access token: %v", err)
}
