// Package awstest is a fake of AWS Secrets Manager for the tests of
// keystore/aws and of the kes binary.
//
// The fake speaks the service's published protocol, AWS JSON 1.1: every
// operation is a POST of an application/x-amz-json-1.1 body to "/", named
// by the X-Amz-Target header ("secretsmanager.CreateSecret"), and errors
// are 4xx/5xx answers whose JSON body names the error in "__type"
// ("ResourceExistsException", ...), with the messages of the [Secrets
// Manager API Reference]. It implements CreateSecret, GetSecretValue,
// DeleteSecret and ListSecrets (paged, with the "name" filter).
//
// Every request must carry a valid Signature Version 4 Authorization
// header, which the fake verifies with the secret of the access key it
// names: the static test key [AccessKeyID], or a temporary key handed out
// by the container-credentials endpoint at [Server.CredentialsURL] (the
// endpoint the SDK's default chain asks when
// AWS_CONTAINER_CREDENTIALS_FULL_URI is set), whose session token must be
// sent and which is rejected with ExpiredTokenException once it expires.
//
// Tests can take the service down ([Server.Stop]: connections are
// refused) and bring it back on the same address, throttle it, register
// KMS keys for the KmsKeyId parameter and disable them, and look at what
// was stored.
//
// [Secrets Manager API Reference]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/
package awstest

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openkes/openkes/internal/testlisten"
)

// The static credentials the fake accepts. They are test values that
// exist nowhere else.
const (
	AccessKeyID     = "AKIAOPENKESFAKE00001"
	SecretAccessKey = "openkes/fake+secret/access/key/00000000"
)

// AccountID is the account of every ARN the fake makes.
const AccountID = "123456789012"

// Options configure a fake.
type Options struct {
	// Region is the region requests must be signed for. Default
	// "us-east-1".
	Region string

	// PageSize is the largest page ListSecrets returns, whatever
	// MaxResults asks for. Default 100, the service's maximum.
	PageSize int

	// TLS serves HTTPS (with httptest's certificate, see
	// [Server.CACertPEM]) instead of HTTP.
	TLS bool

	// CredentialTTL is the lifetime of the temporary credentials
	// handed out at CredentialsURL. Default one hour.
	CredentialTTL time.Duration
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the endpoint, "http://127.0.0.1:<port>" (or https).
	URL string

	opts  Options
	addr  string
	creds *httptest.Server

	mu        sync.Mutex
	srv       *httptest.Server // nil while stopped
	cert      []byte           // DER of the TLS certificate
	secrets   map[string]*secret
	seq       int
	kms       map[string]*kmsKey // by key ID
	aliases   map[string]string  // alias name -> key ID
	issued    map[string]*tempCred
	throttle  bool
	counts    map[string]int
	rejected  map[string]int
	accessKey map[string]string // static access key ID -> secret
}

type secret struct {
	name      string
	arn       string
	value     []byte
	binary    bool
	kmsKeyID  string // key ID, "" for the default key
	versionID string
	created   time.Time
	seq       int
	deleted   bool // scheduled for deletion
}

type kmsKey struct {
	id       string
	arn      string
	disabled bool
}

type tempCred struct {
	secret  string
	token   string
	expires time.Time
}

// New starts a fake that is stopped when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	// A zero or negative size or lifetime takes the default, as does an
	// empty region.
	opts.Region = cmp.Or(opts.Region, "us-east-1")
	opts.PageSize = cmp.Or(max(opts.PageSize, 0), 100)
	opts.CredentialTTL = cmp.Or(max(opts.CredentialTTL, 0), time.Hour)
	s := &Server{
		opts:      opts,
		secrets:   map[string]*secret{},
		kms:       map[string]*kmsKey{},
		aliases:   map[string]string{},
		issued:    map[string]*tempCred{},
		counts:    map[string]int{},
		rejected:  map[string]int{},
		accessKey: map[string]string{AccessKeyID: SecretAccessKey},
	}
	ln := testlisten.New(t)
	s.addr = ln.Addr().String()
	s.start(ln)
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	s.URL = scheme + "://" + s.addr
	s.creds = httptest.NewServer(http.HandlerFunc(s.serveCredentials))
	t.Cleanup(func() {
		s.Stop()
		s.creds.Close()
	})
	return s
}

func (s *Server) start(ln net.Listener) {
	srv := httptest.NewUnstartedServer(s)
	srv.Listener.Close()
	srv.Listener = ln
	if s.opts.TLS {
		srv.StartTLS()
		s.cert = srv.Certificate().Raw
	} else {
		srv.Start()
	}
	s.swap(srv)
}

// swap makes srv the running server and returns the one before it.
func (s *Server) swap(srv *httptest.Server) *httptest.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.srv
	s.srv = srv
	return old
}

// Stop takes the service down: open connections are closed and new ones
// refused until Start. Stored secrets are kept.
func (s *Server) Stop() {
	if srv := s.swap(nil); srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Start brings a stopped service back on its address. It fails t if the
// address cannot be listened on again.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return
	}
	s.start(testlisten.Again(t, "awstest", s.addr))
}

// CACertPEM returns the certificate of a TLS fake, to be trusted by
// clients (for example through SSL_CERT_FILE).
func (s *Server) CACertPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert})
}

// Region returns the region of the fake.
func (s *Server) Region() string { return s.opts.Region }

// SetThrottle makes every API request fail with ThrottlingException
// (on) or work again (off).
func (s *Server) SetThrottle(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = on
}

// AddKMSKey registers a KMS key with the given key ID (and, if alias is
// not empty, the alias "alias/<alias>") that CreateSecret accepts as
// KmsKeyId by ID, ARN, alias name or alias ARN. It returns the key's ARN.
func (s *Server) AddKMSKey(id, alias string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := &kmsKey{id: id, arn: fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.opts.Region, AccountID, id)}
	s.kms[id] = k
	if alias != "" {
		s.aliases["alias/"+alias] = id
	}
	return k.arn
}

// SetKMSKeyEnabled enables or disables a KMS key. Secrets encrypted with
// a disabled key cannot be read (DecryptionFailure) and none can be
// created with it (EncryptionFailure).
func (s *Server) SetKMSKeyEnabled(id string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.kms[id]; ok {
		k.disabled = !enabled
	}
}

// Secret is a stored secret as the fake holds it.
type Secret struct {
	Name     string
	ARN      string
	String   *string // SecretString, or nil
	Binary   []byte  // SecretBinary, or nil
	KMSKeyID string  // the key ID of the KMS key, "" for the default key
}

// PutString stores a secret with a SecretString, as the original KES
// server writes them. It replaces an existing secret.
func (s *Server) PutString(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(name, []byte(value), false, "", newID())
}

// PutBinary stores a secret with a SecretBinary.
func (s *Server) PutBinary(name string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(name, bytes.Clone(value), true, "", newID())
}

func (s *Server) put(name string, value []byte, binary bool, kmsKeyID, version string) *secret {
	s.seq++
	sec := &secret{
		name:      name,
		arn:       fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.opts.Region, AccountID, name, randomSuffix()),
		value:     value,
		binary:    binary,
		kmsKeyID:  kmsKeyID,
		versionID: version,
		created:   time.Now(),
		seq:       s.seq,
	}
	s.secrets[name] = sec
	return sec
}

// ScheduleDeletion marks the secret name as scheduled for deletion, as
// DeleteSecret with a recovery window does. It reports whether there was
// such a secret.
func (s *Server) ScheduleDeletion(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	if ok {
		sec.deleted = true
	}
	return ok
}

// Lookup returns the secret stored under name.
func (s *Server) Lookup(name string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, ok := s.secrets[name]
	if !ok || sec.deleted {
		return Secret{}, false
	}
	out := Secret{Name: sec.name, ARN: sec.arn, KMSKeyID: sec.kmsKeyID}
	if sec.binary {
		out.Binary = bytes.Clone(sec.value)
	} else {
		v := string(sec.value)
		out.String = &v
	}
	return out, true
}

// Names returns the names of the stored secrets, sorted.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, sec := range s.secrets {
		if !sec.deleted {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Count returns how many requests of an operation ("ListSecrets", ...)
// the fake answered, successfully or not, after authentication.
func (s *Server) Count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[op]
}

// Rejected returns how many requests were rejected with the given
// authentication error ("ExpiredTokenException", ...).
func (s *Server) Rejected(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected[code]
}

// CredentialsURL is a container-credentials endpoint (the protocol of
// AWS_CONTAINER_CREDENTIALS_FULL_URI) that hands out a fresh temporary
// access key, secret and session token at every GET, valid for
// Options.CredentialTTL. It stays up while the service is stopped.
func (s *Server) CredentialsURL() string { return s.creds.URL + "/credentials" }

// Issued returns how many temporary credentials were handed out.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.issued)
}

// ExpireCredentials makes every temporary credential handed out so far
// expire now, as if their lifetime had ended early.
func (s *Server) ExpireCredentials() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, c := range s.issued {
		c.expires = now
	}
}

// IssuedSecrets returns every secret access key and session token handed
// out, for tests that check none of them leaks into logs.
func (s *Server) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.issued {
		out = append(out, c.secret, c.token)
	}
	return out
}

func (s *Server) serveCredentials(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/credentials" {
		http.NotFound(w, r)
		return
	}
	id := "ASIAOPENKESFAKE" + strings.ToUpper(randomSuffix()[:5])
	c := &tempCred{
		secret:  "tmp/" + newID(),
		token:   "FwoGZXIvYXdzE" + newID() + newID(),
		expires: time.Now().Add(s.opts.CredentialTTL),
	}
	s.mu.Lock()
	s.issued[id] = c
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId":     id,
		"SecretAccessKey": c.secret,
		"Token":           c.token,
		"Expiration":      c.expires.UTC().Format(time.RFC3339Nano),
	})
}

// apiError is an error answer of the service.
type apiError struct {
	status int
	code   string
	msg    string
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-Requestid", newID())
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		// What a reachability probe with a plain GET sees: the service
		// answers, but not with an operation.
		writeError(w, errorf(http.StatusNotFound, "UnknownOperationException", "Unknown operation"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return
	}
	if len(body) > 1<<20 {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, "SerializationException", "request too large"))
		return
	}
	if aerr := s.authenticate(r, body); aerr != nil {
		s.mu.Lock()
		s.rejected[aerr.code]++
		s.mu.Unlock()
		writeError(w, aerr)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, errorf(http.StatusNotFound, "UnknownOperationException", "Unknown operation"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		writeError(w, errorf(http.StatusBadRequest, "SerializationException", "unsupported content type %q", ct))
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	if !ok {
		writeError(w, errorf(http.StatusBadRequest, "UnknownOperationException", "Unknown operation"))
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[op]++
	if s.throttle {
		writeError(w, errorf(http.StatusBadRequest, "ThrottlingException", "Rate exceeded"))
		return
	}
	var out any
	var aerr *apiError
	switch op {
	case "CreateSecret":
		out, aerr = s.createSecret(body)
	case "GetSecretValue":
		out, aerr = s.getSecretValue(body)
	case "DeleteSecret":
		out, aerr = s.deleteSecret(body)
	case "ListSecrets":
		out, aerr = s.listSecrets(body)
	default:
		aerr = errorf(http.StatusBadRequest, "UnknownOperationException", "Unknown operation %s", op)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", e.code)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "Message": e.msg})
}

// authenticate verifies the SigV4 signature of r.
func (s *Server) authenticate(r *http.Request, body []byte) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errorf(http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return errorf(http.StatusBadRequest, "IncompleteSignatureException", "%v", err)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	when, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return errorf(http.StatusBadRequest, "IncompleteSignatureException", "missing or malformed X-Amz-Date")
	}
	if d := time.Since(when); d > 5*time.Minute || d < -5*time.Minute {
		return errorf(http.StatusBadRequest, "InvalidSignatureException", "Signature expired: %s is now earlier or later than 5 minutes from now", amzDate)
	}
	if a.Date != amzDate[:8] || a.Region != s.opts.Region || a.Service != "secretsmanager" {
		return errorf(http.StatusBadRequest, "InvalidSignatureException", "Credential should be scoped to a valid region and service (%s, secretsmanager) and to the date of X-Amz-Date", s.opts.Region)
	}
	for _, need := range []string{"host", "x-amz-date", "x-amz-target", "content-type"} {
		if !slices.Contains(a.SignedHeaders, need) {
			return errorf(http.StatusBadRequest, "IncompleteSignatureException", "'%s' must be a signed header", need)
		}
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if token != "" && !slices.Contains(a.SignedHeaders, "x-amz-security-token") {
		return errorf(http.StatusBadRequest, "IncompleteSignatureException", "'x-amz-security-token' must be a signed header")
	}
	if sha := r.Header.Get("X-Amz-Content-Sha256"); sha != "" {
		if got := hexSHA256(body); sha != got {
			return errorf(http.StatusBadRequest, "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
	}

	s.mu.Lock()
	secretKey, static := s.accessKey[a.AccessKeyID]
	temp := s.issued[a.AccessKeyID]
	s.mu.Unlock()
	const invalidToken = "The security token included in the request is invalid."
	switch {
	case static:
		if token != "" {
			return errorf(http.StatusBadRequest, "UnrecognizedClientException", invalidToken)
		}
	case temp != nil:
		if token != temp.token {
			return errorf(http.StatusBadRequest, "UnrecognizedClientException", invalidToken)
		}
		if !time.Now().Before(temp.expires) {
			return errorf(http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired")
		}
		secretKey = temp.secret
	default:
		return errorf(http.StatusBadRequest, "UnrecognizedClientException", invalidToken)
	}
	want := signature(r, body, a, amzDate, secretKey)
	if !bytesEqual(want, a.Signature) {
		return errorf(http.StatusBadRequest, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

func bytesEqual(a, b []byte) bool { return hmac.Equal(a, b) }

// decode decodes a JSON request body into v, rejecting unknown fields
// the way the service does (SerializationException).
func decode(body []byte, v any) *apiError {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "SerializationException", "%v", err)
	}
	return nil
}

// validName checks a secret name: 1 to 512 characters of ASCII letters,
// digits and /_+=.@-.
func validName(name string) bool {
	if name == "" || len(name) > 512 {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("/_+=.@-", c):
		default:
			return false
		}
	}
	return true
}

// lookup finds a secret by name or ARN. Secrets scheduled for deletion
// are found too.
func (s *Server) lookup(id string) *secret {
	if sec, ok := s.secrets[id]; ok {
		return sec
	}
	for _, sec := range s.secrets {
		if sec.arn == id {
			return sec
		}
	}
	return nil
}

// resolveKMSKey finds the key ID of a KmsKeyId parameter: a key ID, key
// ARN, alias name or alias ARN.
func (s *Server) resolveKMSKey(ref string) (*kmsKey, bool) {
	if k, ok := s.kms[ref]; ok {
		return k, true
	}
	for _, k := range s.kms {
		if k.arn == ref {
			return k, true
		}
	}
	aliasARN := fmt.Sprintf("arn:aws:kms:%s:%s:", s.opts.Region, AccountID)
	if id, ok := s.aliases[strings.TrimPrefix(ref, aliasARN)]; ok {
		return s.kms[id], true
	}
	return nil, false
}

const notFound = "Secrets Manager can't find the specified secret."

type createSecretInput struct {
	Name                        string
	ClientRequestToken          string
	Description                 string
	KmsKeyId                    string
	SecretBinary                []byte
	SecretString                *string
	Tags                        []map[string]string
	AddReplicaRegions           []map[string]string
	ForceOverwriteReplicaSecret bool
}

func (s *Server) createSecret(body []byte) (any, *apiError) {
	var in createSecretInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if !validName(in.Name) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if in.SecretString != nil && in.SecretBinary != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	value, binary := in.SecretBinary, true
	if in.SecretString != nil {
		value, binary = []byte(*in.SecretString), false
	}
	if len(value) > 65536 {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "The secret value exceeds the maximum size of 65536 bytes.")
	}
	token := in.ClientRequestToken
	if token == "" {
		token = newID()
	} else if len(token) < 32 || len(token) > 64 {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "ClientRequestToken must be 32 to 64 characters long.")
	}
	if sec := s.lookup(in.Name); sec != nil {
		switch {
		case sec.deleted:
			return nil, errorf(http.StatusBadRequest, "InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		case sec.versionID == token && sec.binary == binary && bytes.Equal(sec.value, value):
			// A retried request with the same token and value is
			// ignored: the service is idempotent for it.
			return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": sec.versionID}, nil
		default:
			return nil, errorf(http.StatusBadRequest, "ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
		}
	}
	var keyID string
	if in.KmsKeyId != "" {
		k, ok := s.resolveKMSKey(in.KmsKeyId)
		if !ok || k.disabled {
			return nil, errorf(http.StatusBadRequest, "EncryptionFailure", "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is available, enabled, and not in an invalid state.")
		}
		keyID = k.id
	}
	sec := s.put(in.Name, bytes.Clone(value), binary, keyID, token)
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": sec.versionID}, nil
}

type getSecretValueInput struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

func (s *Server) getSecretValue(body []byte) (any, *apiError) {
	var in getSecretValueInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.SecretId == "" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "SecretId is required.")
	}
	sec := s.lookup(in.SecretId)
	if sec == nil {
		return nil, errorf(http.StatusBadRequest, "ResourceNotFoundException", notFound)
	}
	if sec.deleted {
		return nil, errorf(http.StatusBadRequest, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
	}
	if (in.VersionId != "" && in.VersionId != sec.versionID) || (in.VersionStage != "" && in.VersionStage != "AWSCURRENT") {
		return nil, errorf(http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for the specified version.")
	}
	if sec.kmsKeyID != "" && s.kms[sec.kmsKeyID].disabled {
		return nil, errorf(http.StatusBadRequest, "DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
	}
	out := map[string]any{
		"ARN":           sec.arn,
		"Name":          sec.name,
		"VersionId":     sec.versionID,
		"VersionStages": []string{"AWSCURRENT"},
		"CreatedDate":   epoch(sec.created),
	}
	if sec.binary {
		out["SecretBinary"] = base64.StdEncoding.EncodeToString(sec.value)
	} else {
		out["SecretString"] = string(sec.value)
	}
	return out, nil
}

type deleteSecretInput struct {
	SecretId                   string
	ForceDeleteWithoutRecovery *bool
	RecoveryWindowInDays       *int64
}

func (s *Server) deleteSecret(body []byte) (any, *apiError) {
	var in deleteSecretInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if force && in.RecoveryWindowInDays != nil {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	if w := in.RecoveryWindowInDays; w != nil && (*w < 7 || *w > 30) {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
	}
	sec := s.lookup(in.SecretId)
	if sec == nil {
		return nil, errorf(http.StatusBadRequest, "ResourceNotFoundException", notFound)
	}
	deletion := time.Now()
	if force {
		delete(s.secrets, sec.name)
	} else {
		days := int64(30)
		if in.RecoveryWindowInDays != nil {
			days = *in.RecoveryWindowInDays
		}
		deletion = deletion.Add(time.Duration(days) * 24 * time.Hour)
		sec.deleted = true
	}
	return map[string]any{"ARN": sec.arn, "Name": sec.name, "DeletionDate": epoch(deletion)}, nil
}

type listSecretsInput struct {
	MaxResults             *int
	NextToken              string
	IncludePlannedDeletion bool
	SortOrder              string
	SortBy                 string
	Filters                []struct {
		Key    string
		Values []string
	}
}

func (s *Server) listSecrets(body []byte) (any, *apiError) {
	var in listSecretsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "MaxResults must be between 1 and 100.")
		}
		limit = *in.MaxResults
	}
	limit = min(limit, s.opts.PageSize)
	match := func(sec *secret) bool { return true }
	for _, f := range in.Filters {
		if f.Key != "name" {
			// The fake implements the filter keystore/aws uses only.
			return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "awstest: filter key %q is not implemented", f.Key)
		}
		if len(f.Values) == 0 || len(f.Values) > 10 {
			return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "A filter needs 1 to 10 values.")
		}
		values := f.Values
		prev := match
		match = func(sec *secret) bool {
			if !prev(sec) {
				return false
			}
			// Values of one filter are ORed; "!" negates a value.
			for _, v := range values {
				if neg, ok := strings.CutPrefix(v, "!"); ok {
					if !strings.HasPrefix(sec.name, neg) {
						return true
					}
				} else if strings.HasPrefix(sec.name, v) {
					return true
				}
			}
			return false
		}
	}
	after := 0
	if in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), "seq:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(raw), "seq:") {
			return nil, errorf(http.StatusBadRequest, "InvalidNextTokenException", "The NextToken value is invalid.")
		}
		after = n
	}
	var all []*secret
	for _, sec := range s.secrets {
		if sec.seq > after && (!sec.deleted || in.IncludePlannedDeletion) && match(sec) {
			all = append(all, sec)
		}
	}
	slices.SortFunc(all, func(a, b *secret) int { return a.seq - b.seq })
	out := map[string]any{}
	list := []map[string]any{}
	for i, sec := range all {
		if i == limit {
			out["NextToken"] = base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.Itoa(all[i-1].seq)))
			break
		}
		entry := map[string]any{"ARN": sec.arn, "Name": sec.name, "CreatedDate": epoch(sec.created), "LastChangedDate": epoch(sec.created)}
		if sec.kmsKeyID != "" {
			entry["KmsKeyId"] = s.kms[sec.kmsKeyID].arn
		}
		list = append(list, entry)
	}
	out["SecretList"] = list
	return out, nil
}

// epoch is a timestamp as AWS JSON protocols send it: seconds since the
// epoch, with a fraction.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomSuffix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
