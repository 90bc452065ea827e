package gcptest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// client dials s with a raw gRPC client.
func client(t *testing.T, s *Server) secretmanagerpb.SecretManagerServiceClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return secretmanagerpb.NewSecretManagerServiceClient(conn)
}

// TestTokens checks that the token endpoint refuses assertions it cannot
// verify and that the server refuses missing, unknown and expired tokens.
func TestTokens(t *testing.T) {
	t.Parallel()
	ts := NewTokenServer(t, time.Second)
	s := New(t, Options{TLS: true, Tokens: ts})
	c := client(t, s)
	list := func(tok string) codes.Code {
		ctx := t.Context()
		if tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		_, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: "projects/" + s.ProjectID()})
		return status.Code(err)
	}
	if got := list(""); got != codes.Unauthenticated {
		t.Errorf("ListSecrets without a token = %v, want Unauthenticated", got)
	}
	if got := list("ya29.made-up"); got != codes.Unauthenticated {
		t.Errorf("ListSecrets with an unknown token = %v, want Unauthenticated", got)
	}

	// A forged assertion (signature of another key) is refused.
	resp, err := http.PostForm(ts.URL, url.Values{"grant_type": {jwtBearer}, "assertion": {"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.AAAA"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || ts.Issued() != 0 {
		t.Errorf("token request with a forged assertion = %d, %d issued; want 400, none", resp.StatusCode, ts.Issued())
	}

	// A token issued directly (as if the client had signed an assertion)
	// works until it expires.
	ts.mu.Lock()
	ts.tokens["ya29.short"] = time.Now().Add(500 * time.Millisecond)
	ts.mu.Unlock()
	if got := list("ya29.short"); got != codes.OK {
		t.Errorf("ListSecrets with a valid token = %v, want OK", got)
	}
	time.Sleep(600 * time.Millisecond)
	if got := list("ya29.short"); got != codes.Unauthenticated {
		t.Errorf("ListSecrets with an expired token = %v, want Unauthenticated", got)
	}
	if got := s.Rejected(); got != 3 {
		t.Errorf("Rejected() = %d, want 3", got)
	}
}

// TestAPI checks the fake's answers against Secret Manager's documented
// behaviour.
func TestAPI(t *testing.T) {
	t.Parallel()
	s := New(t, Options{TLS: true})
	c := client(t, s)
	ctx := t.Context()
	parent := "projects/" + s.ProjectID()
	auto := &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}

	sec, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: parent, SecretId: "a", Secret: &secretmanagerpb.Secret{Replication: auto}})
	if err != nil || sec.GetName() != "projects/"+ProjectNumber+"/secrets/a" {
		t.Fatalf("CreateSecret = %v, %v", sec, err)
	}
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"create-existing", func() error {
			_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: parent, SecretId: "a", Secret: &secretmanagerpb.Secret{Replication: auto}})
			return err
		}(), codes.AlreadyExists},
		{"create-no-replication", func() error {
			_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: parent, SecretId: "b", Secret: &secretmanagerpb.Secret{}})
			return err
		}(), codes.InvalidArgument},
		{"create-bad-id", func() error {
			_, err := c.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: parent, SecretId: "a.b", Secret: &secretmanagerpb.Secret{Replication: auto}})
			return err
		}(), codes.InvalidArgument},
		{"other-project", func() error {
			_, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: "projects/other"})
			return err
		}(), codes.PermissionDenied},
		{"access-no-version", func() error {
			_, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: sec.GetName() + "/versions/1"})
			return err
		}(), codes.NotFound},
		{"bad-checksum", func() error {
			bad := int64(1)
			_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: sec.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: []byte("x"), DataCrc32C: &bad}})
			return err
		}(), codes.InvalidArgument},
		{"delete-missing", func() error {
			_, err := c.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: parent + "/secrets/missing"})
			return err
		}(), codes.NotFound},
	}
	for _, tt := range tests {
		if got := status.Code(tt.err); got != tt.want {
			t.Errorf("%s: code = %v (%v), want %v", tt.name, got, tt.err, tt.want)
		}
	}

	// Paging: 7 secrets, pages of 3, every secret once.
	for _, id := range []string{"b", "c", "d", "e", "f", "g"} {
		s.Put(id, []byte(id))
	}
	seen := map[string]int{}
	token, pages := "", 0
	for {
		resp, err := c.ListSecrets(ctx, &secretmanagerpb.ListSecretsRequest{Parent: parent, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(resp.GetSecrets()) > DefaultPageSize {
			t.Errorf("page of %d secrets, want at most %d", len(resp.GetSecrets()), DefaultPageSize)
		}
		for _, sec := range resp.GetSecrets() {
			seen[sec.GetName()[strings.LastIndexByte(sec.GetName(), '/')+1:]]++
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	b, _ := json.Marshal(seen)
	if pages != 3 || len(seen) != 7 || strings.Contains(string(b), ":2") {
		t.Errorf("listing = %d pages, %s; want 3 pages with every secret once", pages, b)
	}
}
