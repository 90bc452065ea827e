// Package gcptest provides fakes of GCP Secret Manager and of Google's
// OAuth 2.0 token endpoint, for testing keystore/gcp and the server with
// the official client.
//
// [Server] implements the gRPC service google.cloud.secretmanager.v1
// (secretmanagerpb.SecretManagerServiceServer) for one project, following
// Google's published API: resource names projects/<number>/secrets/<id>
// and .../versions/<n> (requests may name the project by ID or number),
// status codes NotFound, AlreadyExists, InvalidArgument, FailedPrecondition
// and Unauthenticated, page tokens, CRC32C checksums. Its page size is
// small, so that clients have to follow page tokens. It can be stopped
// and started again on the same address, and told to fail calls, to
// simulate outages and throttling.
//
// [TokenServer] is an OAuth 2.0 token endpoint for service accounts
// (JWT bearer grant, RFC 7523): it verifies the RS256 signature of the
// assertion with the service account's public key and issues access
// tokens with a configurable lifetime, which a Server with
// [Options.Tokens] requires and rejects once expired.
package gcptest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openkes/openkes/internal/testlisten"
	"github.com/openkes/openkes/internal/testpki"
)

// ProjectNumber is the number of the fake's project, which it uses in
// the resource names it returns, as Secret Manager does.
const ProjectNumber = "123456789012"

// DefaultPageSize is the page size of ListSecrets when Options.PageSize
// is zero. It is small on purpose.
const DefaultPageSize = 3

// Options configure a Server.
type Options struct {
	// ProjectID is the project's ID. Default "openkes-test".
	ProjectID string

	// PageSize is the largest page ListSecrets returns. Default
	// DefaultPageSize.
	PageSize int

	// TLS makes the server use TLS with a certificate for 127.0.0.1 and
	// localhost; see Server.CACertPEM.
	TLS bool

	// Tokens, if set, makes the server require a valid, unexpired
	// access token issued by it in the authorization header of every
	// call.
	Tokens *TokenServer
}

// Server is a fake Secret Manager. It is safe for concurrent use.
type Server struct {
	opts Options
	addr string
	cert *testpki.Cert

	mu       sync.Mutex
	srv      *grpc.Server
	secrets  map[string]*secret
	seq      int
	inject   map[string][]codes.Code // codes the next calls fail with, by method ("" any)
	calls    map[string]int
	rejected int // calls rejected for a missing, unknown or expired token
}

type secret struct {
	seq      int
	created  time.Time
	versions []*version
}

type version struct {
	data  []byte
	crc   int64
	state secretmanagerpb.SecretVersion_State
}

// New starts a Server on a loopback port. It is stopped when the test
// ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ProjectID == "" {
		opts.ProjectID = "openkes-test"
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	s := &Server{opts: opts, secrets: map[string]*secret{}, calls: map[string]int{}, inject: map[string][]codes.Code{}}
	if opts.TLS {
		s.cert = testpki.Server(t)
	}
	ln := testlisten.New(t)
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's address, host:port.
func (s *Server) Addr() string { return s.addr }

// ProjectID returns the project's ID.
func (s *Server) ProjectID() string { return s.opts.ProjectID }

// CACertPEM returns the PEM certificate a client must trust to reach a
// TLS server (it is self-signed), or nil without TLS.
func (s *Server) CACertPEM() []byte {
	if s.cert == nil {
		return nil
	}
	return s.cert.CertPEM()
}

func (s *Server) serve(ln net.Listener) {
	var opts []grpc.ServerOption
	if s.cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{s.cert.TLS},
			MinVersion:   tls.VersionTLS12,
		})))
	}
	opts = append(opts, grpc.UnaryInterceptor(s.intercept))
	srv := grpc.NewServer(opts...)
	secretmanagerpb.RegisterSecretManagerServiceServer(srv, &service{s: s})
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Stop stops the server and closes all connections, as an outage does.
// Calls fail with Unavailable until Start.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Start starts a stopped server again on the same address, with the
// secrets it had. It fails the test if the address cannot be taken.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.serve(testlisten.Again(t, "gcptest", s.addr))
}

// Fail makes the next calls of method (e.g. "AddSecretVersion"; "" means
// any method) fail, one with each of the given codes (for example
// codes.ResourceExhausted for throttling).
func (s *Server) Fail(method string, c ...codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject[method] = append(s.inject[method], c...)
}

// Calls returns how many calls of the method (e.g. "ListSecrets") the
// server has answered, including failed ones.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Rejected returns how many calls the server rejected for a missing,
// unknown or expired access token.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Put creates the secret id, if it does not exist, and adds a version
// holding data, as another client of the project would.
func (s *Server) Put(id string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[id]
	if sec == nil {
		s.seq++
		sec = &secret{seq: s.seq, created: time.Now()}
		s.secrets[id] = sec
	}
	sec.versions = append(sec.versions, &version{data: slices.Clone(data), crc: checksum(data), state: secretmanagerpb.SecretVersion_ENABLED})
}

// Versions returns copies of the data of all versions of secret id, in
// order, and whether the secret exists.
func (s *Server) Versions(id string) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[id]
	if !ok {
		return nil, false
	}
	var out [][]byte
	for _, v := range sec.versions {
		out = append(out, slices.Clone(v.data))
	}
	return out, true
}

// IDs returns the sorted IDs of all secrets.
func (s *Server) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.secrets))
	return ids
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// intercept counts calls, checks the access token and fails injected
// calls.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	s.mu.Lock()
	s.calls[method]++
	s.mu.Unlock()
	if s.opts.Tokens != nil {
		var tok string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) == 1 {
				tok, _ = strings.CutPrefix(v[0], "Bearer ")
			}
		}
		if !s.opts.Tokens.valid(tok) {
			s.mu.Lock()
			s.rejected++
			s.mu.Unlock()
			return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		}
	}
	s.mu.Lock()
	for _, m := range []string{method, ""} {
		if len(s.inject[m]) > 0 {
			c := s.inject[m][0]
			s.inject[m] = s.inject[m][1:]
			s.mu.Unlock()
			return nil, status.Errorf(c, "injected failure (%s)", c)
		}
	}
	s.mu.Unlock()
	return handler(ctx, req)
}

// service implements the gRPC service.
type service struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	s *Server
}

// secretID is the documented syntax of a secret ID.
var secretID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// parseProject checks a parent "projects/<id or number>".
func (s *Server) parseProject(parent string) error {
	p, ok := strings.CutPrefix(parent, "projects/")
	if !ok || strings.Contains(p, "/") || p == "" {
		return status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: parent %q", parent)
	}
	if p != s.opts.ProjectID && p != ProjectNumber {
		return status.Errorf(codes.PermissionDenied, "Permission denied on resource project %s.", p)
	}
	return nil
}

// parseSecret returns the ID of a secret name
// "projects/<project>/secrets/<id>".
func (s *Server) parseSecret(name string) (string, error) {
	i := strings.Index(name, "/secrets/")
	if i < 0 {
		return "", status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: name %q", name)
	}
	if err := s.parseProject(name[:i]); err != nil {
		return "", err
	}
	id := name[i+len("/secrets/"):]
	if !secretID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: name %q", name)
	}
	return id, nil
}

func (s *Server) name(id string) string { return "projects/" + ProjectNumber + "/secrets/" + id }

func (s *Server) secretPB(id string, sec *secret) *secretmanagerpb.Secret {
	return &secretmanagerpb.Secret{
		Name:       s.name(id),
		CreateTime: timestamppb.New(sec.created),
		Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		},
	}
}

func (v *service) CreateSecret(_ context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	s := v.s
	if err := s.parseProject(req.GetParent()); err != nil {
		return nil, err
	}
	if !secretID.MatchString(req.GetSecretId()) {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid secret ID %q.", req.GetSecretId())
	}
	if req.GetSecret().GetReplication().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "Replication policy must be specified.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := req.GetSecretId()
	if _, ok := s.secrets[id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", s.name(id))
	}
	s.seq++
	sec := &secret{seq: s.seq, created: time.Now()}
	s.secrets[id] = sec
	return s.secretPB(id, sec), nil
}

func (v *service) AddSecretVersion(_ context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s := v.s
	id, err := s.parseSecret(req.GetParent())
	if err != nil {
		return nil, err
	}
	data := req.GetPayload().GetData()
	if len(data) > 64<<10 {
		return nil, status.Error(codes.InvalidArgument, "Secret payload exceeds the 64 KiB limit.")
	}
	if sum := req.GetPayload().DataCrc32C; sum != nil && *sum != checksum(data) {
		return nil, status.Error(codes.InvalidArgument, "Checksum mismatch: the payload's data_crc32c does not match its data.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", s.name(id))
	}
	sec.versions = append(sec.versions, &version{data: slices.Clone(data), crc: checksum(data), state: secretmanagerpb.SecretVersion_ENABLED})
	n := len(sec.versions)
	return &secretmanagerpb.SecretVersion{
		Name:  fmt.Sprintf("%s/versions/%d", s.name(id), n),
		State: secretmanagerpb.SecretVersion_ENABLED,
	}, nil
}

func (v *service) AccessSecretVersion(_ context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s := v.s
	secretName, ver, ok := strings.Cut(req.GetName(), "/versions/")
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: name %q", req.GetName())
	}
	id, err := s.parseSecret(secretName)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", s.name(id))
	}
	n := len(sec.versions)
	if ver != "latest" {
		if n, err = strconv.Atoi(ver); err != nil || n < 1 {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid secret version %q.", ver)
		}
	}
	if n < 1 || n > len(sec.versions) {
		return nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", s.name(id), ver)
	}
	vv := sec.versions[n-1]
	if vv.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s/versions/%d] is in %s state.", s.name(id), n, vv.state)
	}
	crc := vv.crc
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    fmt.Sprintf("%s/versions/%d", s.name(id), n),
		Payload: &secretmanagerpb.SecretPayload{Data: slices.Clone(vv.data), DataCrc32C: &crc},
	}, nil
}

func (v *service) DeleteSecret(_ context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	s := v.s
	id, err := s.parseSecret(req.GetName())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[id]; !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", s.name(id))
	}
	delete(s.secrets, id)
	return &emptypb.Empty{}, nil
}

// DestroyVersion destroys version n of secret id, as someone with
// access to the project could.
func (s *Server) DestroyVersion(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec, ok := s.secrets[id]; ok && n >= 1 && n <= len(sec.versions) {
		sec.versions[n-1].state = secretmanagerpb.SecretVersion_DESTROYED
		sec.versions[n-1].data = nil
	}
}

// ListSecrets returns the secrets newest first, at most PageSize (or the
// smaller requested page size) per page. The page token is opaque to
// clients.
func (v *service) ListSecrets(_ context.Context, req *secretmanagerpb.ListSecretsRequest) (*secretmanagerpb.ListSecretsResponse, error) {
	s := v.s
	if err := s.parseProject(req.GetParent()); err != nil {
		return nil, err
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "gcptest: filters are not implemented")
	}
	size := s.opts.PageSize
	if n := int(req.GetPageSize()); n < 0 {
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	} else if n > 0 && n < size {
		size = n
	}
	after := int(^uint(0) >> 1) // list secrets with seq < after
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "Invalid page token.")
		}
		if after, err = strconv.Atoi(strings.TrimPrefix(string(b), "seq:")); err != nil {
			return nil, status.Error(codes.InvalidArgument, "Invalid page token.")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		id  string
		sec *secret
	}
	var all []entry
	for id, sec := range s.secrets {
		if sec.seq < after {
			all = append(all, entry{id, sec})
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return b.sec.seq - a.sec.seq })
	resp := &secretmanagerpb.ListSecretsResponse{}
	for i, e := range all {
		if i == size {
			resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.Itoa(all[i-1].sec.seq)))
			break
		}
		resp.Secrets = append(resp.Secrets, s.secretPB(e.id, e.sec))
	}
	return resp, nil
}
