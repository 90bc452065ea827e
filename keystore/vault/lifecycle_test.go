package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/keystoretest"
	"github.com/openkes/openkes/keystore/vault/vaulttest"
)

// These tests inject faults into the fake: tokens that expire, cannot be
// renewed or are revoked, a Vault that is sealed, slow or gone. They
// check that the store recovers by itself and that no operation fails
// while a valid token can be had.

// hammer reads key "k" from 3 goroutines for d while fault runs, and
// returns the number of reads and the failed ones.
func hammer(t *testing.T, s *Store, d time.Duration, fault func()) (ops int64, failed []error) {
	t.Helper()
	var (
		n    atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := s.Get(ctx, "k")
				cancel()
				n.Add(1)
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	deadline := time.Now().Add(d)
	if fault != nil {
		fault()
	}
	time.Sleep(time.Until(deadline))
	close(stop)
	wg.Wait()
	return n.Load(), failed
}

// newLifecycleStore starts a fake whose tokens follow tok and opens a
// store on it with key "k".
func newLifecycleStore(t *testing.T, tok vaulttest.TokenOptions, log *slog.Logger) (*server, *Store) {
	t.Helper()
	srv := newFake(t, tok)
	conf, _ := srv.config(t, storeConfig{version: "v2", prefix: true})
	s := open(t, conf, log)
	if err := s.Create(t.Context(), "k", []byte("value")); err != nil {
		t.Fatalf("Create() = %v", err)
	}
	return srv, s
}

func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		tok   vaulttest.TokenOptions
		d     time.Duration
		fault func(f *vaulttest.Server)
		check func(t *testing.T, f *vaulttest.Server)
	}{
		{
			name: "renewal",
			tok:  vaulttest.TokenOptions{TTL: 3 * time.Second},
			d:    5 * time.Second,
			check: func(t *testing.T, f *vaulttest.Server) {
				if n := f.Count(vaulttest.CountRenewSelf); n < 2 {
					t.Errorf("%d renewals, want at least 2", n)
				}
				if n := f.Count(vaulttest.CountLogin); n != 1 {
					t.Errorf("%d logins, want 1: renewals keep the token", n)
				}
			},
		},
		{
			name:  "renewal-fails",
			tok:   vaulttest.TokenOptions{TTL: 2 * time.Second},
			d:     3500 * time.Millisecond,
			fault: func(f *vaulttest.Server) { f.FailRenewals(1 << 30) },
			check: func(t *testing.T, f *vaulttest.Server) {
				if n := f.Count(vaulttest.CountLogin); n < 2 {
					t.Errorf("%d logins, want at least 2: a failed renewal leads to a new login", n)
				}
				if n, logins := f.Count(vaulttest.CountRenewSelf), f.Count(vaulttest.CountLogin); n > 3*logins {
					t.Errorf("%d renewal attempts for %d tokens, want at most 3 per token", n, logins)
				}
			},
		},
		{
			name: "not-renewable",
			tok:  vaulttest.TokenOptions{TTL: 2 * time.Second, NotRenewable: true},
			d:    3500 * time.Millisecond,
			check: func(t *testing.T, f *vaulttest.Server) {
				if n := f.Count(vaulttest.CountRenewSelf); n != 0 {
					t.Errorf("%d renewals of a token that is not renewable, want 0", n)
				}
				if n := f.Count(vaulttest.CountLogin); n < 2 {
					t.Errorf("%d logins, want at least 2", n)
				}
			},
		},
		{
			name:  "max-ttl",
			tok:   vaulttest.TokenOptions{TTL: 2 * time.Second, MaxTTL: 3 * time.Second},
			d:     4500 * time.Millisecond,
			check: minCount(vaulttest.CountLogin, 2, "logins, want at least 2: a capped renewal leads to a new login"),
		},
		{
			name: "no-expiry",
			tok:  vaulttest.TokenOptions{},
			d:    time.Second,
			check: func(t *testing.T, f *vaulttest.Server) {
				if n := f.Count(vaulttest.CountRenewSelf); n != 0 {
					t.Errorf("%d renewals of a token without TTL, want 0", n)
				}
				if n := f.Count(vaulttest.CountLogin); n != 1 {
					t.Errorf("%d logins, want 1", n)
				}
			},
		},
		{
			name:  "revoked",
			tok:   vaulttest.TokenOptions{TTL: time.Hour},
			d:     2 * time.Second,
			fault: repeat(8, 200*time.Millisecond, (*vaulttest.Server).RevokeAll),
			check: minCount(vaulttest.CountLogin, 5, "logins, want one after each revocation"),
		},
		{
			name:  "expired-early",
			tok:   vaulttest.TokenOptions{TTL: time.Hour},
			d:     2 * time.Second,
			fault: repeat(8, 200*time.Millisecond, (*vaulttest.Server).ExpireAll),
			check: minCount(vaulttest.CountLogin, 5, "logins, want one after each expiry"),
		},
		{
			name: "revoked-while-replacing",
			tok:  vaulttest.TokenOptions{TTL: 2 * time.Second},
			d:    3500 * time.Millisecond,
			fault: func(f *vaulttest.Server) {
				f.FailRenewals(1 << 30)
				repeat(12, 250*time.Millisecond, (*vaulttest.Server).RevokeAll)(f)
			},
		},
		{
			name: "login-fails-once-while-token-valid",
			tok:  vaulttest.TokenOptions{TTL: 2 * time.Second, NotRenewable: true},
			d:    3500 * time.Millisecond,
			fault: func(f *vaulttest.Server) {
				f.FailLogins(2)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, s := newLifecycleStore(t, tt.tok, nil)
			var fault func()
			if tt.fault != nil {
				fault = func() { tt.fault(srv.fake) }
			}
			ops, failed := hammer(t, s, tt.d, fault)
			if len(failed) > 0 {
				t.Errorf("%d of %d reads failed, want none; first: %v", len(failed), ops, failed[0])
			}
			if ops < 50 {
				t.Errorf("only %d reads in %v", ops, tt.d)
			}
			if tt.check != nil {
				tt.check(t, srv.fake)
			}
		})
	}
}

// repeat returns a fault that calls f n times, each after a pause of d.
func repeat(n int, d time.Duration, f func(*vaulttest.Server)) func(*vaulttest.Server) {
	return func(srv *vaulttest.Server) {
		for range n {
			time.Sleep(d)
			f(srv)
		}
	}
}

// minCount returns a check that the fake counted at least min requests
// of kind; the error message is "<count> <what>".
func minCount(kind string, min int, what string) func(*testing.T, *vaulttest.Server) {
	return func(t *testing.T, f *vaulttest.Server) {
		if n := f.Count(kind); n < min {
			t.Errorf("%d %s", n, what)
		}
	}
}

// checkFast runs op and checks that it fails fast with an
// UnreachableError whose text contains want.
func checkFast(t *testing.T, what string, op func(ctx context.Context) error, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := op(ctx)
	elapsed := time.Since(start)
	if !keystore.IsUnreachable(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s = %v, want an UnreachableError saying %q", what, err, want)
	}
	if elapsed > time.Second {
		t.Errorf("%s took %v, want it to fail fast", what, elapsed)
	}
}

// storeOps are the key operations, for checking that all fail alike.
func storeOps(s *Store) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
		"Create": func(ctx context.Context) error { return s.Create(ctx, "other", []byte("v")) },
		"Delete": func(ctx context.Context) error { return s.Delete(ctx, "k") },
		"List":   func(ctx context.Context) error { _, _, err := s.List(ctx, "", 0); return err },
		"Status": func(ctx context.Context) error { _, err := s.Status(ctx); return err },
	}
}

func TestSealed(t *testing.T) {
	t.Parallel()
	srv, s := newLifecycleStore(t, vaulttest.TokenOptions{TTL: 2 * time.Second}, nil)
	f := srv.fake

	f.Seal()
	// The first request may learn it from Vault's 503, later ones from
	// the state the client keeps: all fail fast, with the same error.
	for range 3 {
		for name, op := range storeOps(s) {
			checkFast(t, name+" while sealed", op, "key store is sealed")
		}
	}
	if n := f.Count(vaulttest.CountSealed); n > 2 {
		t.Errorf("%d requests reached the sealed Vault, want at most 2: the client fails fast", n)
	}

	// Renewals and logins pause while sealed, even past the token's
	// expiry.
	renewals, logins := f.Count(vaulttest.CountRenewSelf), f.Count(vaulttest.CountLogin)
	time.Sleep(2500 * time.Millisecond)
	if n := f.Count(vaulttest.CountRenewSelf) - renewals; n > 1 {
		t.Errorf("%d renewals while sealed, want none", n)
	}
	if n := f.Count(vaulttest.CountLogin) - logins; n > 0 {
		t.Errorf("%d logins while sealed, want none", n)
	}

	f.Unseal()
	keystoretest.WaitUntil(t, "the store to work after unsealing", func() bool {
		_, err := s.Get(t.Context(), "k")
		return err == nil
	})
	if _, err := s.Status(t.Context()); err != nil {
		t.Errorf("Status() after unsealing = %v", err)
	}
	if ops, failed := hammer(t, s, 500*time.Millisecond, nil); len(failed) > 0 {
		t.Errorf("%d of %d reads failed after unsealing; first: %v", len(failed), ops, failed[0])
	}

	// A seal seen by the health probe first.
	f.Seal()
	keystoretest.WaitUntil(t, "the probe to see the seal", func() bool {
		_, err := s.Get(t.Context(), "k")
		return err != nil
	})
	before := f.Count(vaulttest.CountSealed)
	checkFast(t, "Get after the probe saw the seal", storeOps(s)["Get"], "key store is sealed")
	if n := f.Count(vaulttest.CountSealed) - before; n != 0 {
		t.Errorf("%d requests reached Vault, want none", n)
	}
	f.Unseal()
	keystoretest.WaitUntil(t, "the store to work after unsealing", func() bool {
		_, err := s.Get(t.Context(), "k")
		return err == nil
	})
}

func TestHealthStates(t *testing.T) {
	t.Parallel()
	t.Run("not-initialized", func(t *testing.T) {
		t.Parallel()
		srv, s := newLifecycleStore(t, vaulttest.TokenOptions{TTL: time.Hour}, nil)
		srv.fake.SetInitialized(false)
		checkFast(t, "Status", storeOps(s)["Status"], "not initialized")
		checkFast(t, "Get", storeOps(s)["Get"], "not initialized")
		srv.fake.SetInitialized(true)
		keystoretest.WaitUntil(t, "the store to work", func() bool {
			_, err := s.Get(t.Context(), "k")
			return err == nil
		})
	})
	t.Run("standby", func(t *testing.T) {
		t.Parallel()
		srv, s := newLifecycleStore(t, vaulttest.TokenOptions{TTL: time.Hour}, nil)
		srv.fake.SetStandby(true)
		if st, err := s.Status(t.Context()); err != nil || st.Latency <= 0 {
			t.Errorf("Status() of a standby = %+v, %v; want a latency", st, err)
		}
		if _, err := s.Get(t.Context(), "k"); err != nil {
			t.Errorf("Get() from a standby = %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
		conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
		srv.fake.Close()
		s := open(t, conf, nil)
		for name, op := range storeOps(s) {
			checkFast(t, name, op, "connection refused")
		}
	})
}

func TestSlowVault(t *testing.T) {
	t.Parallel()
	srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
	conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
	conf.timing.requestTimeout = 300 * time.Millisecond
	s := open(t, conf, nil)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.fake.SetLatency(5 * time.Second)
	for name, op := range storeOps(s) {
		start := time.Now()
		err := op(t.Context())
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s took %v with a Vault that answers after 5 s, want it bounded by the request timeout", name, elapsed)
		}
		if !keystore.IsUnreachable(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s = %v, want an UnreachableError wrapping context.DeadlineExceeded", name, err)
		}
	}
	srv.fake.SetLatency(0)
	if _, err := s.Get(t.Context(), "k"); err != nil {
		t.Errorf("Get() after the latency is gone = %v", err)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	t.Run("transient", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
		srv.fake.FailLogins(3)
		conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
		s := open(t, conf, nil)
		start := time.Now()
		_, err := s.Get(t.Context(), "k")
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("first Get() took %v, want it fast", elapsed)
		}
		if !errors.Is(err, keystore.ErrNotFound) && (!keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "not authenticated yet") || !strings.Contains(err.Error(), "internal error")) {
			t.Errorf("first Get() = %v, want ErrNotFound or a 'not authenticated yet' UnreachableError with Vault's message", err)
		}
		keystoretest.WaitUntil(t, "a login to succeed", func() bool {
			_, err := s.Get(t.Context(), "k")
			return errors.Is(err, keystore.ErrNotFound)
		})
	})
	t.Run("wrong-secret", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
		conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
		conf.AppRole.Secret = keystore.NewSecret("wrong-secret")
		s := open(t, conf, nil)
		checkFast(t, "Get", storeOps(s)["Get"], "not authenticated yet")
		time.Sleep(time.Second)
		if n := srv.fake.Count(vaulttest.CountLogin); n > 20 {
			t.Errorf("%d logins in a second, want backoff", n)
		}
		_, err := s.Get(t.Context(), "k")
		if !strings.Contains(err.Error(), "invalid role or secret ID") {
			t.Errorf("Get() = %v, want Vault's message", err)
		}
		// Status: Vault is fine, the store is not.
		if _, err := s.Status(t.Context()); err == nil || keystore.IsUnreachable(err) || !strings.Contains(err.Error(), "not authenticated") {
			t.Errorf("Status() = %v, want a plain 'not authenticated' error", err)
		}
	})
}

func TestKubernetesAuth(t *testing.T) {
	t.Parallel()
	const jwt2 = "eyJhbGciOiJSUzI1NiJ9.rotated.c2lnbmF0dXJl"
	for _, fromFile := range []bool{false, true} {
		t.Run(fmt.Sprint("file=", fromFile), func(t *testing.T) {
			t.Parallel()
			srv := newFake(t, vaulttest.TokenOptions{TTL: time.Hour})
			srv.fake.AddKubernetesRole("", "k8s", vaulttest.KubernetesRole{Name: "kes", JWT: testJWT, Token: vaulttest.TokenOptions{TTL: time.Hour}})
			conf, _ := srv.config(t, storeConfig{version: "v1", prefix: true})
			conf.AppRole = AppRoleConfig{}
			conf.Kubernetes = KubernetesConfig{Engine: "k8s", Role: "kes", JWT: keystore.NewSecret(testJWT)}
			file := filepath.Join(t.TempDir(), "token")
			if fromFile {
				if err := os.WriteFile(file, []byte(testJWT+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				conf.Kubernetes.JWT = keystore.NewSecret(file)
			}
			s := open(t, conf, nil)
			if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
				t.Fatalf("Create() = %v", err)
			}
			if !fromFile {
				return
			}
			// The kubelet rotates the token file: the next login reads it.
			srv.fake.AddKubernetesRole("", "k8s", vaulttest.KubernetesRole{Name: "kes", JWT: jwt2, Token: vaulttest.TokenOptions{TTL: time.Hour}})
			if err := os.WriteFile(file, []byte(jwt2), 0o600); err != nil {
				t.Fatal(err)
			}
			srv.fake.RevokeAll()
			if _, err := s.Get(t.Context(), "k"); err != nil {
				t.Errorf("Get() after the token file was rotated = %v", err)
			}
			if n := srv.fake.Count(vaulttest.CountLogin); n != 2 {
				t.Errorf("%d logins, want 2", n)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	f := vaulttest.New(t, vaulttest.Options{ClientCAs: ca.Pool()})
	f.MountKV("", "kv", 1)
	f.AddAppRole("", "approle", vaulttest.AppRole{RoleID: testRoleID, SecretID: testSecretID, Token: vaulttest.TokenOptions{TTL: time.Hour}})
	dir := t.TempDir()
	client := ca.Issue(t, testpki.Options{CommonName: "kes"})
	certFile, keyFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, client.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, client.KeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := &Config{ClientConfig: ClientConfig{
		Endpoint: f.URL,
		AppRole:  AppRoleConfig{ID: testRoleID, Secret: keystore.NewSecret(testSecretID)},
		TLS:      TLSConfig{CA: writeCA(t, f), Cert: certFile, Key: keyFile},
		timing:   testTiming,
	}}
	s := open(t, conf, nil)
	if err := s.Create(t.Context(), "k", []byte("v")); err != nil {
		t.Errorf("Create() with a client certificate = %v", err)
	}

	conf.TLS.Cert, conf.TLS.Key = "", ""
	s = open(t, conf, nil)
	if err := s.Create(t.Context(), "k2", []byte("v")); !keystore.IsUnreachable(err) {
		t.Errorf("Create() without a client certificate = %v, want an UnreachableError", err)
	}
}
