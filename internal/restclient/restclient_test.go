package restclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
)

func TestDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		unreachable bool
	}{
		{"ok", http.StatusOK, false},
		{"not found", http.StatusNotFound, false},
		{"unauthorized", http.StatusUnauthorized, false},
		{"internal error", http.StatusInternalServerError, false},
		{"too many requests", http.StatusTooManyRequests, true},
		{"bad gateway", http.StatusBadGateway, true},
		{"unavailable", http.StatusServiceUnavailable, true},
		{"gateway timeout", http.StatusGatewayTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Secret") != "s3cret" {
					http.Error(w, "bad request headers", http.StatusBadRequest)
					return
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(`{"message":"answer"}`))
			}))
			t.Cleanup(srv.Close)
			resp, err := Do(t.Context(), srv.Client(), &Request{Method: http.MethodPost, URL: srv.URL + "/p?q=s3cret", Body: map[string]string{"password": "s3cret"}, Header: http.Header{"X-Secret": {"s3cret"}}})
			if got := keystore.IsUnreachable(err); got != tt.unreachable {
				t.Fatalf("Do = %v; unreachable = %t, want %t", err, got, tt.unreachable)
			}
			if err != nil {
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("Do error %q contains the secret", err)
				}
				return
			}
			if resp.Status != tt.status || string(resp.Body) != `{"message":"answer"}`+"\n" && string(resp.Body) != `{"message":"answer"}` {
				t.Errorf("Do = %d %q, want %d and the body", resp.Status, resp.Body, tt.status)
			}
		})
	}
}

func TestDoNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := Do(t.Context(), http.DefaultClient, &Request{Method: http.MethodGet, URL: url + "/x?token=s3cret"})
	if !keystore.IsUnreachable(err) {
		t.Fatalf("Do on a closed server = %v, want an UnreachableError", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Do error %q contains the query", err)
	}
}

func TestNewHTTPClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint, ca string
		wantBase     string
		wantErr      bool
	}{
		{"https://kms.example.net/", "", "https://kms.example.net", false},
		{" https://kms.example.net:8443/api ", "", "https://kms.example.net:8443/api", false},
		{"kms.example.net", "", "", true},
		{"ftp://kms.example.net", "", "", true},
		{"https://kms.example.net?x=1", "", "", true},
		{"https://kms.example.net", "/nonexistent/ca.pem", "", true},
	}
	for _, tt := range tests {
		base, _, err := NewHTTPClient(tt.endpoint, tt.ca)
		if (err != nil) != tt.wantErr || base != tt.wantBase {
			t.Errorf("NewHTTPClient(%q, %q) = %q, %v; want %q, error %t", tt.endpoint, tt.ca, base, err, tt.wantBase, tt.wantErr)
		}
	}
}

func TestMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		keys       []string
		want       string
	}{
		{"json", `{"code":5,"codeDesc":"Resource already exists"}`, []string{"codeDesc"}, "Resource already exists"},
		{"json two keys", `{"code":5,"codeDesc":"exists"}`, []string{"code", "codeDesc"}, "5: exists"},
		{"json without key", `{"other":"x"}`, []string{"error"}, ""},
		{"plain", "sobject already exists\n", []string{"message"}, "sobject already exists"},
		{"binary", "\x00\x01\x02", nil, "???"},
		{"control in json", `{"error":"a\nb\u007f"}`, []string{"error"}, "a?b?"},
		{"long", strings.Repeat("a", 300), nil, strings.Repeat("a", 200) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Message([]byte(tt.body), tt.keys...); got != tt.want {
				t.Errorf("Message(%q) = %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func FuzzMessage(f *testing.F) {
	f.Add([]byte(`{"code":1,"codeDesc":"x"}`))
	f.Add([]byte(`{"error":"Secret not found"}`))
	f.Add([]byte("sobject does not exist"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := Message(body, "code", "codeDesc", "error", "message")
		if utf8.RuneCountInString(m) > 203 || strings.ContainsFunc(m, func(r rune) bool { return r < 0x20 || r == 0x7f }) || !utf8.ValidString(m) {
			t.Fatalf("Message(%q) = %q: too long or not printable", body, m)
		}
	})
}

// fakeAuth counts logins and issues tokens that live for ttl.
type fakeAuth struct {
	ttl    time.Duration
	logins atomic.Int32
	renews atomic.Int32
	fail   atomic.Bool
}

func (a *fakeAuth) login(context.Context) (Token, error) {
	if a.fail.Load() {
		return Token{}, &keystore.UnreachableError{Err: errors.New("connection refused")}
	}
	n := a.logins.Add(1)
	return Token{Value: "tok-" + string(rune('a'+n)), Expiry: time.Now().Add(a.ttl)}, nil
}

func (a *fakeAuth) renew(_ context.Context, old Token) (Token, error) {
	a.renews.Add(1)
	return Token{Value: old.Value + "+", Expiry: time.Now().Add(a.ttl)}, nil
}

func TestSessionRefreshes(t *testing.T) {
	t.Parallel()
	a := &fakeAuth{ttl: 1200 * time.Millisecond}
	s := NewSession(SessionConfig{Name: "test", Login: a.login})
	t.Cleanup(s.Close)
	// Logins happen in the background, one per half lifetime.
	keystoretest.WaitUntil(t, "three logins", func() bool { return a.logins.Load() >= 3 })
	if _, err := s.Token(t.Context()); err != nil {
		t.Fatalf("Token = %v", err)
	}
}

func TestSessionRenews(t *testing.T) {
	t.Parallel()
	a := &fakeAuth{ttl: 1200 * time.Millisecond}
	s := NewSession(SessionConfig{Name: "test", Login: a.login, Renew: a.renew})
	t.Cleanup(s.Close)
	keystoretest.WaitUntil(t, "two renewals", func() bool { return a.renews.Load() >= 2 })
	if n := a.logins.Load(); n != 1 {
		t.Errorf("%d logins, want 1 (renewals replace the rest)", n)
	}
	tok, err := s.Token(t.Context())
	if err != nil || !strings.HasSuffix(tok.Value, "+") {
		t.Errorf("Token = %q, %v; want a renewed token", tok.Value, err)
	}
}

func TestSessionFailure(t *testing.T) {
	t.Parallel()
	a := &fakeAuth{ttl: time.Hour}
	a.fail.Store(true)
	s := NewSession(SessionConfig{Name: "test", Login: a.login, BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	t.Cleanup(s.Close)
	if _, err := s.Token(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Token while logins fail = %v, want an UnreachableError", err)
	}
	a.fail.Store(false)
	keystoretest.WaitUntil(t, "a login after recovery", func() bool { return a.logins.Load() >= 1 })
	tok, err := s.Token(t.Context())
	if err != nil {
		t.Fatalf("Token after recovery = %v", err)
	}
	s.Invalidate(tok)
	tok2, err := s.Token(t.Context())
	if err != nil || tok2.Value == tok.Value {
		t.Errorf("Token after Invalidate = %q, %v; want a new token", tok2.Value, err)
	}
	s.Close()
	if _, err := s.Token(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Token after Close = %v, want %v", err, ErrClosed)
	}
}

func TestSessionReachable(t *testing.T) {
	t.Parallel()
	a := &fakeAuth{ttl: time.Hour}
	a.fail.Store(true)
	// A backoff far longer than the test: only Reachable can end it.
	s := NewSession(SessionConfig{Name: "test", Login: a.login, BackoffMin: time.Hour, BackoffMax: time.Hour})
	t.Cleanup(s.Close)
	if _, err := s.Token(t.Context()); !keystore.IsUnreachable(err) {
		t.Fatalf("Token while logins fail = %v, want an UnreachableError", err)
	}
	a.fail.Store(false)
	s.Reachable()
	keystoretest.WaitUntil(t, "a login after Reachable", func() bool { return a.logins.Load() >= 1 })
	if _, err := s.Token(t.Context()); err != nil {
		t.Fatalf("Token after Reachable = %v", err)
	}
}

// TestSessionExpiredToken: a token that is expired when it arrives (a
// clock skew) is a failed login that backs off, not a login loop.
func TestSessionExpiredToken(t *testing.T) {
	t.Parallel()
	var logins atomic.Int32
	login := func(context.Context) (Token, error) {
		logins.Add(1)
		return Token{Value: "t", Expiry: time.Now().Add(-time.Minute)}, nil
	}
	s := NewSession(SessionConfig{Name: "test", Login: login, BackoffMin: time.Hour, BackoffMax: time.Hour})
	t.Cleanup(s.Close)
	_, err := s.Token(t.Context())
	if err == nil || !strings.Contains(err.Error(), "clock skew") {
		t.Fatalf("Token = %v, want an error about the expired token", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := logins.Load(); n != 1 {
		t.Errorf("%d logins, want 1 (then backoff)", n)
	}
}
