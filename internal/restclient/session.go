package restclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/openkes/openkes/keystore"
)

// MinLifetime is the shortest token lifetime a Session accepts; a token
// that expires sooner counts as a failed login.
const MinLifetime = time.Second

// Token is an access token and when it stops being accepted.
type Token struct {
	Value  string    // never logged, never part of an error
	Expiry time.Time // zero: no known expiry
}

// SessionConfig describes how a [Session] obtains tokens.
type SessionConfig struct {
	// Name prefixes log messages and errors, e.g. "gemalto".
	Name string

	// Login obtains a new token with the configured credentials. Its
	// errors must not contain them.
	Login func(ctx context.Context) (Token, error)

	// Renew, if set, extends old; the session falls back to Login when
	// it fails.
	Renew func(ctx context.Context, old Token) (Token, error)

	// Log receives login, renewal and failure records; nil discards.
	Log *slog.Logger

	// BackoffMin and BackoffMax bound the wait between failed logins.
	// Defaults 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
}

// Session keeps a token fresh: it logs in in the background, replaces the
// token after half of its lifetime (with Renew if there is one, else by
// logging in again) while the old one stays in use, and retries failed
// logins with exponential backoff. It is safe for concurrent use.
type Session struct {
	conf   SessionConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	tok      *issued
	inflight chan struct{} // closed when the login in flight is done
	failures int
	next     time.Time // no login before this time
	lastErr  error
	wake     chan struct{}
}

// issued is a token and when it was requested.
type issued struct {
	Token
	start time.Time
}

// usable reports whether the token can still be sent at now: before its
// expiry, less a margin for the request's way to the service (a tenth of
// the lifetime, at most a second).
func (t *issued) usable(now time.Time) bool {
	if t.Expiry.IsZero() {
		return true
	}
	margin := min(time.Second, t.Expiry.Sub(t.start)/10)
	return now.Before(t.Expiry.Add(-margin))
}

// due is when the token should be replaced: after half its lifetime.
func (t *issued) due() time.Time {
	if t.Expiry.IsZero() {
		return time.Time{}
	}
	return t.start.Add(t.Expiry.Sub(t.start) / 2)
}

// NewSession starts a session; it logs in in the background at once.
// Call Close to stop it.
func NewSession(conf SessionConfig) *Session {
	if conf.Log == nil {
		conf.Log = slog.New(slog.DiscardHandler)
	}
	if conf.BackoffMin <= 0 {
		conf.BackoffMin = 500 * time.Millisecond
	}
	if conf.BackoffMax <= 0 {
		conf.BackoffMax = 30 * time.Second
	}
	s := &Session{conf: conf, wake: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.loop()
	return s
}

// Close stops the background work.
func (s *Session) Close() {
	s.cancel()
	s.wg.Wait()
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("session closed")

// Token returns a usable token. Without one it waits, as long as ctx
// allows, for a login, and returns the login's error; while logins are
// backing off it returns the last login error at once. A login that
// failed because the service was unreachable gives an error wrapping
// *keystore.UnreachableError.
func (s *Session) Token(ctx context.Context) (Token, error) {
	for {
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			return Token{}, ErrClosed
		}
		if t := s.tok; t != nil && t.usable(time.Now()) {
			s.mu.Unlock()
			return t.Token, nil
		}
		done := s.inflight
		if done == nil {
			if time.Now().Before(s.next) && s.lastErr != nil {
				err := s.lastErr
				s.mu.Unlock()
				return Token{}, s.wrap(err)
			}
			done = s.startLoginLocked()
		}
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return Token{}, &keystore.UnreachableError{Err: fmt.Errorf("%s: waiting for login: %w", s.conf.Name, ctx.Err())}
		}
		s.mu.Lock()
		t, err := s.tok, s.lastErr
		s.mu.Unlock()
		if t != nil && t.usable(time.Now()) {
			return t.Token, nil
		}
		if err != nil {
			return Token{}, s.wrap(err)
		}
	}
}

func (s *Session) wrap(err error) error {
	if keystore.IsUnreachable(err) {
		return err
	}
	return fmt.Errorf("%s: not authenticated: %w", s.conf.Name, err)
}

// Invalidate drops tok after the service rejected it, so that the next
// Token call logs in again.
func (s *Session) Invalidate(tok Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.Value == tok.Value {
		s.tok = nil
		s.next = time.Time{} // a rejected token is no reason to wait
		s.conf.Log.Info(s.conf.Name + ": access token rejected; logging in again")
	}
}

// Reachable tells the session that the service answered (a status probe
// succeeded): if logins are backing off after the service was
// unreachable, the next one is tried at once instead of after the
// backoff, so that requests recover as soon as the service is back.
func (s *Session) Reachable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil && keystore.IsUnreachable(s.lastErr) && time.Now().Before(s.next) {
		s.next = time.Time{}
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// startLoginLocked starts a login (or renewal) in the background.
func (s *Session) startLoginLocked() chan struct{} {
	done := make(chan struct{})
	s.inflight = done
	old := s.tok
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.refresh(old)
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		close(done)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}()
	return done
}

// refresh obtains a new token, renewing old if possible.
func (s *Session) refresh(old *issued) {
	ctx, cancel := context.WithTimeout(s.ctx, DefaultTimeout)
	defer cancel()
	start := time.Now()
	var (
		tok   Token
		err   error
		how   = "logged in"
		renew = old != nil && s.conf.Renew != nil && old.usable(start)
	)
	if renew {
		tok, err = s.conf.Renew(ctx, old.Token)
		how = "renewed the access token"
		if err != nil {
			s.conf.Log.Info(s.conf.Name+": token renewal failed; logging in", "error", err)
		}
	}
	if !renew || err != nil {
		start = time.Now()
		tok, err = s.conf.Login(ctx)
		how = "logged in"
	}
	if err == nil && !tok.Expiry.IsZero() && tok.Expiry.Sub(start) < MinLifetime {
		// Already expired or about to: a clock skew between us and
		// the service, or a broken answer. Logging in again at once
		// would hammer the service; back off instead.
		err = fmt.Errorf("%s: the new token expires in %v (clock skew?)", s.conf.Name, tok.Expiry.Sub(start).Round(time.Millisecond))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.ctx.Err() != nil {
			return
		}
		s.failures++
		wait := Backoff(s.failures, s.conf.BackoffMin, s.conf.BackoffMax)
		s.next, s.lastErr = time.Now().Add(wait), err
		s.conf.Log.Warn(s.conf.Name+": login failed", "error", err, "failures", s.failures, "retry_in", wait.Round(time.Millisecond))
		return
	}
	first := s.failures > 0 || old == nil
	s.failures, s.lastErr, s.next = 0, nil, time.Time{}
	s.tok = &issued{Token: tok, start: start}
	if first {
		s.conf.Log.Info(s.conf.Name+": "+how, "expires_in", lifetime(tok, start))
	} else {
		s.conf.Log.Debug(s.conf.Name+": "+how, "expires_in", lifetime(tok, start))
	}
}

func lifetime(t Token, start time.Time) time.Duration {
	if t.Expiry.IsZero() {
		return 0
	}
	return t.Expiry.Sub(start).Round(time.Second)
}

// loop logs in at start and replaces the token when it is due.
func (s *Session) loop() {
	defer s.wg.Done()
	for s.ctx.Err() == nil {
		now := time.Now()
		s.mu.Lock()
		wait := time.Duration(-1)
		switch t := s.tok; {
		case s.inflight != nil:
		case t == nil || !t.usable(now) || !now.Before(t.due()) && !t.due().IsZero():
			if now.Before(s.next) {
				wait = s.next.Sub(now)
			} else {
				s.startLoginLocked()
			}
		case !t.due().IsZero():
			wait = t.due().Sub(now)
		}
		s.mu.Unlock()
		var timer <-chan time.Time
		var tm *time.Timer
		if wait >= 0 {
			tm = time.NewTimer(wait)
			timer = tm.C
		}
		select {
		case <-s.ctx.Done():
		case <-s.wake:
		case <-timer:
		}
		if tm != nil {
			tm.Stop()
		}
	}
}

// Backoff returns the wait after the n-th consecutive failure: doubling
// from min up to max, with jitter between half and all of it, so that
// several servers do not retry in lockstep. keystore/vault uses it too.
func Backoff(n int, min, max time.Duration) time.Duration {
	d := max
	if n < 30 {
		if e := min << (n - 1); e > 0 && e < max {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}
