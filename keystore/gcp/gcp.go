// Package gcp implements a [keystore.Store] in [GCP Secret Manager], with
// the secret layout of the original KES server, so that a project written
// by either server can be used by the other.
//
// # Layout
//
// A key named <name> is the secret projects/<project>/secrets/<name>,
// created with automatic replication, whose version 1 holds the stored
// value byte for byte (the serialised key every other store holds):
//
//   - Create calls CreateSecret and then AddSecretVersion. Secret Manager
//     answers AlreadyExists to all but one of concurrent CreateSecret
//     calls for one name, so exactly one Create wins, also across
//     servers; the others get [keystore.ErrExists]. If AddSecretVersion
//     fails, Create deletes the new, empty secret again (best effort).
//   - Get reads version 1 with AccessSecretVersion, always version 1 like
//     the original, so versions added by others are ignored. The payload's
//     CRC32C checksum is verified when the service sends one.
//   - Delete calls DeleteSecret, which removes all versions.
//   - List lists every secret of the project (also those not written by
//     KES), page by page, and applies the prefix and page size itself.
//
// A secret without version 1 (left behind by a Create whose cleanup failed,
// or whose version 1 was destroyed) reads as a missing key but cannot be
// created again until it is deleted.
//
// # Credentials
//
// With credentials in the config, the store uses the service account key
// made of them, as the original does. Without, it uses Application
// Default Credentials: the key file named by GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's credentials, or the metadata server when running on GCP.
// Access tokens come from the SDK's token source, which refreshes them
// before they expire; a failed token request is retried with exponential
// backoff (see tokenProvider). No token or key is logged or part of an
// error.
//
// # Outages
//
// [New] does no I/O on the network, so a server starts while Secret
// Manager is down and uses it once it is back. Every call is bounded by
// [Config.Timeout] (default 10 s), including the SDK's retries. A call
// that fails with gRPC code Unavailable, DeadlineExceeded or
// ResourceExhausted (throttling), or whose access token could not be
// fetched because the token endpoint was unreachable, returns an error
// wrapping *[keystore.UnreachableError]. Status lists one secret, so it
// checks the network path, the credentials and the permission to list.
//
// # Configuration
//
// The package registers the config section "gcp.secretmanager" ([Config])
// with [keystore.Register]:
//
//	keystore:
//	  gcp:
//	    secretmanager:
//	      project_id: my-project
//	      endpoint: ""        # default secretmanager.googleapis.com:443
//	      scopes:             # default cloud-platform
//	      - https://www.googleapis.com/auth/cloud-platform
//	      credentials:        # all empty: Application Default Credentials
//	        client_email: kes@my-project.iam.gserviceaccount.com
//	        client_id: "1234567890"
//	        private_key_id: 0123456789abcdef
//	        private_key: "-----BEGIN PRIVATE KEY-----\n..."
//
// See docs/keystores/gcp.md for the IAM roles the service account needs.
//
// [GCP Secret Manager]: https://cloud.google.com/secret-manager/docs
package gcp

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/openkes/openkes/keystore"
)

// MaxValueSize is the largest value Secret Manager holds in a version
// (64 KiB). Stored keys are a few hundred bytes.
const MaxValueSize = 64 << 10

// Store is a key store in the secrets of one GCP project. It is safe for
// concurrent use.
type Store struct {
	client    *secretmanager.Client
	project   string // "projects/<id>"
	projectID string
	timeout   time.Duration
	log       *slog.Logger
}

var _ keystore.Store = (*Store)(nil)

// sdkLogger silences the SDK's own logging, which would show access
// tokens and secret payloads.
var sdkLogger = slog.New(slog.DiscardHandler)

// castagnoli is the CRC32C table Secret Manager's checksums use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// New returns a store for the project described by conf. It validates
// conf and prepares the credentials, but contacts neither Secret Manager
// nor the token endpoint, so it succeeds while they are down.
//
// New returns an error for an invalid configuration, for credentials that
// cannot be parsed (a malformed private key) and, without credentials in
// the config, when no Application Default Credentials can be found. log
// receives the store's messages; nil discards them.
//
// opts are appended to the client options made from conf, for programs
// that embed the store and need more control over the connection (a
// proxy, other gRPC dial options, other credentials).
func New(ctx context.Context, conf *Config, log *slog.Logger, opts ...option.ClientOption) (*Store, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("gcp: invalid config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		projectID: strings.TrimSpace(conf.ProjectID),
		timeout:   conf.Timeout,
		log:       log,
	}
	s.project = "projects/" + s.projectID
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}

	var clientOpts []option.ClientOption
	if conf.Endpoint != "" {
		endpoint, _ := normalizeEndpoint(conf.Endpoint) // checked by Validate
		clientOpts = append(clientOpts, option.WithEndpoint(endpoint))
	}
	creds, err := s.credentials(conf)
	if err != nil {
		return nil, err
	}
	// The SDK logs requests and responses, tokens and secret payloads
	// included, when GOOGLE_SDK_GO_LOGGING_LEVEL is set; an explicit
	// logger takes precedence over the variable.
	clientOpts = append(clientOpts, option.WithAuthCredentials(creds), option.WithLogger(sdkLogger))
	clientOpts = append(clientOpts, opts...)

	// NewClient dials lazily: it does no network I/O.
	client, err := secretmanager.NewClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: create client: %w", err)
	}
	s.client = client
	return s, nil
}

// credentials returns the credentials of conf, wrapped in a
// tokenProvider. The token endpoint is asked with the JWT bearer grant
// (RFC 7523): the SDK's self-signed JWTs would avoid the token endpoint,
// but the original uses it and so do all other Google clients with
// scopes.
func (s *Store) credentials(conf *Config) (*auth.Credentials, error) {
	scopes := conf.Scopes
	if len(scopes) == 0 {
		scopes = []string{DefaultScope}
	}
	detect := &credentials.DetectOptions{
		Scopes: scopes,
		Client: &http.Client{Timeout: s.timeout},
		Logger: sdkLogger, // see New
	}
	var keyFile []byte
	switch {
	case !conf.CredentialsJSON.IsZero():
		keyFile = []byte(conf.CredentialsJSON.Reveal())
	case conf.Credentials.isSet():
		if err := checkPrivateKey(conf.Credentials.PrivateKey); err != nil {
			return nil, err
		}
		b, err := conf.Credentials.serviceAccountJSON(s.projectID)
		if err != nil {
			return nil, fmt.Errorf("gcp: credentials: %w", err)
		}
		keyFile = b
	}
	var creds *auth.Credentials
	var err error
	if keyFile != nil {
		// Only service account keys: other credential files can make the
		// SDK run commands or fetch URLs they name.
		creds, err = credentials.NewCredentialsFromJSON(credentials.ServiceAccount, keyFile, detect)
		clear(keyFile)
		if err != nil {
			// Never show the SDK's error text, which may quote the key.
			return nil, errors.New("gcp: credentials: invalid service account key")
		}
	} else if creds, err = credentials.DetectDefault(detect); err != nil {
		return nil, fmt.Errorf("gcp: no credentials configured and no Application Default Credentials found: %w", err)
	}
	return auth.NewCredentials(&auth.CredentialsOptions{
		TokenProvider:          &tokenProvider{base: creds, log: s.log},
		UniverseDomainProvider: auth.CredentialsPropertyFunc(creds.UniverseDomain),
		QuotaProjectIDProvider: auth.CredentialsPropertyFunc(creds.QuotaProjectID),
		ProjectIDProvider:      auth.CredentialsPropertyFunc(creds.ProjectID),
	}), nil
}

// checkPrivateKey reports whether key is a PEM RSA private key (PKCS #8
// or PKCS #1), as service account keys are, after turning literal "\n"
// into newlines. The SDK parses it only at the first token request, which
// would make a typo look like an outage. The error never holds the key.
func checkPrivateKey(key keystore.Secret) error {
	const msg = "gcp: credentials.private_key: not a PEM-encoded RSA private key"
	b, _ := pem.Decode([]byte(strings.ReplaceAll(key.Reveal(), `\n`, "\n")))
	if b == nil {
		return errors.New(msg)
	}
	defer clear(b.Bytes)
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); ok {
			return nil
		}
		return errors.New(msg)
	}
	if _, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return nil
	}
	return errors.New(msg)
}

// String returns "GCP SecretManager: Project=<id>", the name shown in the
// start-up banner.
func (s *Store) String() string { return "GCP SecretManager: Project=" + s.projectID }

// GoString returns what String does.
func (s *Store) GoString() string { return s.String() }

// secretName returns the resource name of the secret of a key.
func (s *Store) secretName(name string) string { return s.project + "/secrets/" + name }

// checkName rejects names that are not valid secret IDs: 1 to 255
// characters of [A-Za-z0-9_-]. The server's name rules are stricter; this
// guards callers that bypass them (kes migrate, library users).
func checkName(op, name string) error {
	ok := len(name) > 0 && len(name) <= 255
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("gcp: %s %q: invalid key name (a secret ID is 1 to 255 of [A-Za-z0-9_-])", op, name)
	}
	return nil
}

// fail returns the error of a failed call: an error wrapping
// *keystore.UnreachableError for outages and throttling, the caller's
// context error if it ended, else a plain error.
func fail(ctx context.Context, op, name string, err error) error {
	if cerr := ctx.Err(); errors.Is(cerr, context.Canceled) {
		return fmt.Errorf("gcp: %s %q: %w", op, name, cerr)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return fmt.Errorf("gcp: %s %q: %w", op, name, &keystore.UnreachableError{Err: err})
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gcp: %s %q: %w", op, name, &keystore.UnreachableError{Err: err})
	}
	return fmt.Errorf("gcp: %s %q: %w", op, name, err)
}

// Create creates the secret name with value as its version 1. It returns
// an error wrapping [keystore.ErrExists] if the secret exists, a plain
// error for an invalid name or a value larger than [MaxValueSize], and
// the errors described at [Store.Get] otherwise.
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	if err := checkName("create", name); err != nil {
		return err
	}
	if len(value) == 0 || len(value) > MaxValueSize {
		return fmt.Errorf("gcp: create %q: value must be 1 to %d bytes", name, MaxValueSize)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	secret, err := s.client.CreateSecret(cctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   s.project,
		SecretId: name,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			},
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		return fmt.Errorf("gcp: create %q: %w", name, keystore.ErrExists)
	}
	if err != nil {
		return fail(ctx, "create", name, err)
	}

	data := make([]byte, len(value)) // the request must not alias the caller's slice
	copy(data, value)
	defer clear(data)
	sum := int64(crc32.Checksum(data, castagnoli))
	_, err = s.client.AddSecretVersion(cctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secret.GetName(),
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum},
	})
	if err == nil {
		return nil
	}
	err = fail(ctx, "create", name, err)
	// Without version 1 the secret is unusable and would block a retry.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer dcancel()
	if derr := s.client.DeleteSecret(dctx, &secretmanagerpb.DeleteSecretRequest{Name: secret.GetName()}); derr != nil && status.Code(derr) != codes.NotFound {
		s.log.Warn("gcp: cannot delete the secret of a failed create; delete it before creating the key again",
			slog.String("key", name), slog.Any("err", derr))
	}
	return err
}

// Get returns version 1 of the secret name. It returns an error wrapping
// [keystore.ErrNotFound] if there is no such secret or version, an error
// wrapping *[keystore.UnreachableError] if Secret Manager or the token
// endpoint could not be reached, timed out or throttled the request, an
// error wrapping the caller's context error if ctx was canceled, and a
// plain error otherwise (permission denied, a disabled or destroyed
// version, a checksum mismatch).
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName("get", name); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.client.AccessSecretVersion(cctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: s.secretName(name) + "/versions/1",
	})
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("gcp: get %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return nil, fail(ctx, "get", name, err)
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && *sum != int64(crc32.Checksum(data, castagnoli)) {
		clear(data)
		return nil, fmt.Errorf("gcp: get %q: payload checksum mismatch", name)
	}
	if len(data) > MaxValueSize {
		clear(data)
		return nil, fmt.Errorf("gcp: get %q: value exceeds %d bytes", name, MaxValueSize)
	}
	return data, nil // owned by this response only
}

// Delete deletes the secret name with all its versions. It returns an
// error wrapping [keystore.ErrNotFound] if there is no such secret, and
// the errors described at [Store.Get] otherwise.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.client.DeleteSecret(cctx, &secretmanagerpb.DeleteSecretRequest{Name: s.secretName(name)})
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("gcp: delete %q: %w", name, keystore.ErrNotFound)
	}
	if err != nil {
		return fail(ctx, "delete", name, err)
	}
	return nil
}

// List returns the sorted names of the project's secrets that start with
// prefix, paged by n as described at [keystore.Store.List]. It reads all
// pages of ListSecrets within one timeout, and returns the errors
// described at [Store.Get].
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	it := s.client.ListSecrets(cctx, &secretmanagerpb.ListSecretsRequest{Parent: s.project})
	var names []string
	for {
		secret, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, "", fail(ctx, "list", prefix, err)
		}
		// Names are projects/<project number>/secrets/<id>.
		id := secret.GetName()
		id = id[strings.LastIndexByte(id, '/')+1:]
		if strings.HasPrefix(id, prefix) {
			names = append(names, id)
		}
	}
	names, next := keystore.Page(names, prefix, n)
	return names, next, nil
}

// Status lists at most one secret of the project, which checks the
// network, the credentials and the permission to list secrets, and
// reports the time it took. It returns the errors described at
// [Store.Get].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	it := s.client.ListSecrets(cctx, &secretmanagerpb.ListSecretsRequest{Parent: s.project, PageSize: 1})
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return keystore.State{}, fail(ctx, "status of project", s.projectID, err)
	}
	return keystore.State{Latency: time.Since(start)}, nil
}

// Close closes the connection to Secret Manager. Operations fail after
// it.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil && status.Code(err) != codes.Canceled {
		return fmt.Errorf("gcp: close: %w", err)
	}
	return nil
}
