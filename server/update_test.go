package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testpki"
	"github.com/openkes/openkes/keystore/keystoretest"
)

func TestUpdatePoliciesAndAdmin(t *testing.T) {
	t.Parallel()
	e, oldAdmin := adminEnv(t)
	newAdmin, user := e.client(t, e.stranger), e.client(t, e.user)

	do(t, oldAdmin, "POST", e.url("/v1/key/create/my-app-k"), "").wantEmpty(t)
	do(t, newAdmin, "GET", e.url("/v1/status"), "").want(t, 403)
	do(t, user, "GET", e.url("/v1/key/describe/my-app-k"), "").want(t, 200)

	conf := *e.conf
	conf.Admin = e.stranger.Identity()
	conf.Policies = map[string]Policy{
		"readonly": {Allow: []string{"/v1/key/list/*"}, Identities: []string{e.user.Identity()}},
	}
	if err := e.srv.Update(t.Context(), &conf); err != nil {
		t.Fatalf("Update: %v", err)
	}
	do(t, newAdmin, "GET", e.url("/v1/status"), "").want(t, 200)
	do(t, oldAdmin, "GET", e.url("/v1/status"), "").wantError(t, 403, "not authorized: insufficient permissions")
	do(t, user, "GET", e.url("/v1/key/describe/my-app-k"), "").want(t, 403)
	do(t, user, "GET", e.url("/v1/key/list/"), "").want(t, 200)
	// Same store: keys survive, the store was not closed.
	do(t, newAdmin, "GET", e.url("/v1/key/describe/my-app-k"), "").want(t, 200)

	var self struct {
		Policy string `json:"policy"`
	}
	do(t, user, "GET", e.url("/v1/identity/self/describe"), "").decode(t, &self)
	if self.Policy != "readonly" {
		t.Errorf("self policy = %q, want readonly", self.Policy)
	}

	// An invalid config is refused and the old one stays.
	bad := conf
	bad.Policies = map[string]Policy{"x": {Identities: []string{e.stranger.Identity()}}} // admin in a policy
	if err := e.srv.Update(t.Context(), &bad); err == nil {
		t.Fatal("Update with admin in a policy succeeded")
	}
	do(t, newAdmin, "GET", e.url("/v1/status"), "").want(t, 200)
	do(t, user, "GET", e.url("/v1/key/list/"), "").want(t, 200)
}

func TestUpdateClosesOldStore(t *testing.T) {
	t.Parallel()
	first := &closeCounter{Store: newMemStore()}
	e := newEnv(t, func(c *Config) { c.Store = first })
	c := e.client(t, e.admin)
	do(t, c, "POST", e.url("/v1/key/create/k"), "").wantEmpty(t)

	second := &closeCounter{Store: newMemStore()}
	conf := *e.conf
	conf.Store = second
	conf.Keys = []string{"predefined"}
	if err := e.srv.Update(t.Context(), &conf); err != nil {
		t.Fatal(err)
	}
	do(t, c, "GET", e.url("/v1/key/describe/k"), "").wantError(t, 404, "key does not exist")
	do(t, c, "GET", e.url("/v1/key/describe/predefined"), "").want(t, 200)
	keystoretest.WaitUntil(t, "the old store to be closed after Update", func() bool { return first.closed.Load() != 0 })
	if second.closed.Load() != 0 {
		t.Error("new store closed")
	}
}

func TestUpdateTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	e := newEnv(t)
	if handshakeFails(t, e, e.admin) {
		t.Fatal("self-signed admin rejected before Update")
	}
	// Rotate the server certificate and switch to verified client certs.
	newServer := testpki.Server(t)
	conf := *e.conf
	conf.TLS = TLSConfig{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &newServer.TLS, nil },
		VerifyClients:  true,
		ClientCAs:      ca.Pool(),
	}
	if err := e.srv.Update(t.Context(), &conf); err != nil {
		t.Fatal(err)
	}
	e.roots.AddCert(newServer.X509)
	if !handshakeFails(t, e, e.admin) {
		t.Error("self-signed admin accepted after switching to auth on")
	}
	if handshakeFails(t, e, ca.Issue(t, testpki.Options{})) {
		t.Error("CA-signed client rejected after switching to auth on")
	}
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: e.roots, ServerName: "localhost",
		Certificates: []tls.Certificate{ca.Issue(t, testpki.Options{}).TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(newServer.X509) {
		t.Error("server certificate not rotated")
	}
}

// TestUpdateConcurrent hammers the server with requests while the
// configuration is swapped; run with -race.
func TestUpdateConcurrent(t *testing.T) {
	t.Parallel()
	e, c := adminEnv(t, "k")

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", e.url("/v1/key/generate/k"), nil)
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err.Error()
					}
					return
				}
				var v struct{ Plaintext []byte }
				err = json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if ctx.Err() != nil {
					return
				}
				if err != nil || resp.StatusCode != 200 || len(v.Plaintext) != 32 {
					errs <- resp.Status
					return
				}
			}
		}()
	}
	for i := range 20 {
		conf := *e.conf
		if i%2 == 1 {
			conf.Policies = map[string]Policy{}
		}
		if err := e.srv.Update(t.Context(), &conf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request during Update: %s", err)
	}
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Update(t.Context(), e.conf); err == nil {
		t.Error("Update after Close succeeded")
	}
}
