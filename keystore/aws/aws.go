// Package aws implements a [keystore.Store] on [AWS Secrets Manager], with
// the layout of the original KES server, so that secrets written by
// either server are read by the other.
//
// # Layout
//
// A key named <name> is the secret named <name> in the configured
// region. Its value is the stored value (the serialised key) as the
// secret's SecretString, as the original writes it; values that are not
// valid UTF-8, which the server never stores, go to SecretBinary. On
// reading, SecretString is used if the secret has one, else SecretBinary.
//
//   - Create is CreateSecret with Name, the value and, if kmskey is set,
//     KmsKeyId; ResourceExistsException is [keystore.ErrExists]. The
//     service creates a name at most once, so of concurrent Creates,
//     also across servers, exactly one wins. The SDK retries a Create
//     with the same ClientRequestToken, which the service treats as the
//     same request.
//   - Get is GetSecretValue of the name (the current version);
//     ResourceNotFoundException is [keystore.ErrNotFound].
//   - Delete is DeleteSecret with ForceDeleteWithoutRecovery, so a
//     deleted key is gone at once, without a recovery window; a missing
//     secret is ErrNotFound.
//   - List pages through ListSecrets, filtered to the names starting
//     with the prefix (the service's "name" filter, a case-sensitive
//     prefix match), and sorts the names. Without a prefix it lists
//     every secret of the account and region, not only KES's, as the
//     original does: give KES its own account or region, or an IAM
//     policy that limits what it can see. Secrets scheduled for
//     deletion are not listed.
//
// # Credentials
//
// Static credentials (credentials.accesskey, secretkey and, for
// temporary credentials, token) are used as they are. With all three
// empty, the SDK's default credential chain is used: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the
// shared credentials file (~/.aws/credentials, or AWS_SHARED_CREDENTIALS_FILE;
// profile AWS_PROFILE), web identity (AWS_WEB_IDENTITY_TOKEN_FILE, as on
// EKS), the container endpoint (ECS, or AWS_CONTAINER_CREDENTIALS_FULL_URI)
// and the EC2 instance role. Like the original, the shared config file
// (~/.aws/config: profiles with SSO, assume-role or credential_process)
// is not read, so that a config file meant for people does not change
// which identity the server uses; region and endpoint come from the KES
// config only. Temporary credentials are cached and renewed between
// half of [CredentialExpiryWindow] and all of it before they expire; a request the service
// rejects because its credentials expired anyway (ExpiredTokenException)
// is repeated once with fresh ones. Neither the secret key nor the token
// ever appears in a log record or an error.
//
// # Outages
//
// Connect does no I/O, so the server starts while the service is down
// (the original refuses to start). Every call is bounded by
// [DefaultTimeout], including the SDK's retries. A call that gets no
// answer (connection refused, reset, timeout) or that the service
// throttles or fails with a server error returns an error wrapping
// *[keystore.UnreachableError], so the server answers 504 and its key
// cache keeps serving under cache.expiry.offline; the next call after
// the service is back works. Status, like the original's, is a plain GET
// of the endpoint: any HTTP answer means reachable.
//
// # Configuration
//
// The package's [Config] is the section "aws.secretsmanager"; keystore/all
// registers it:
//
//	keystore:
//	  aws:
//	    secretsmanager:
//	      endpoint: secretsmanager.us-east-2.amazonaws.com
//	      region:   us-east-2
//	      kmskey:   alias/kes          # optional
//	      credentials:                 # optional: empty = default chain
//	        accesskey: ${AWS_ACCESS_KEY_ID}
//	        secretkey: ${AWS_SECRET_ACCESS_KEY}
//	        token:     ""
//
// See docs/keystores/aws.md for the IAM permissions needed.
//
// [AWS Secrets Manager]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/
package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/openkes/openkes/keystore"
)

// Store is a key store in AWS Secrets Manager. It is safe for concurrent
// use.
type Store struct {
	client   *secretsmanager.Client
	creds    *awssdk.CredentialsCache // nil if the SDK did not cache
	http     *http.Client             // for Status
	endpoint string                   // as configured, for the banner
	url      string                   // base URL
	kmsKey   string
	timeout  time.Duration
	log      *slog.Logger
	closed   atomic.Bool
}

var _ keystore.Store = (*Store)(nil)

// errClosed is returned by every operation on a closed Store.
var errClosed = errors.New("aws: store is closed")

// Connect validates the configuration and returns a [*Store]. It does
// not contact the service (see the package documentation), so it fails
// for configuration problems only: invalid fields, or an AWS_PROFILE
// that names no profile of the shared credentials file. log receives
// the store's messages; nil discards them.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	return New(ctx, c, log)
}

// New is [Config.Connect] with the concrete result type.
func New(ctx context.Context, conf *Config, log *slog.Logger) (*Store, error) {
	if err := keystore.Prepare(ctx, "aws: invalid config", conf); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, _ := endpointURL(conf.Endpoint) // checked by Validate

	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(strings.TrimSpace(conf.Region)),
		// An empty, non-nil list: read no shared config file.
		awsconfig.WithSharedConfigFiles([]string{}),
		awsconfig.WithLogger(sdkLogger{log}),
		awsconfig.WithCredentialsCacheOptions(func(o *awssdk.CredentialsCacheOptions) {
			o.ExpiryWindow = CredentialExpiryWindow
			// Spread renewals of many servers over the window's last half.
			o.ExpiryWindowJitterFrac = 0.5
		}),
	}
	if cr := conf.Credentials; cr.isSet() {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			strings.TrimSpace(cr.AccessKey), cr.SecretKey.Reveal(), cr.Token.Reveal())))
		log.Debug("aws: using static credentials from the config file")
	} else {
		log.Debug("aws: using the default credential chain")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws: loading the SDK configuration: %w", err)
	}
	s := &Store{
		endpoint: strings.TrimSpace(conf.Endpoint),
		url:      u.String(),
		kmsKey:   strings.TrimSpace(conf.KMSKey),
		timeout:  DefaultTimeout,
		log:      log,
		http:     &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
	s.creds, _ = cfg.Credentials.(*awssdk.CredentialsCache)
	s.client = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = awssdk.String(s.url)
	})
	return s, nil
}

// String returns "AWS SecretsManager: <endpoint>", the name shown in the
// start-up banner.
func (s *Store) String() string { return "AWS SecretsManager: " + s.endpoint }

// GoString returns what String does, so that %#v cannot print the
// store's internals.
func (s *Store) GoString() string { return s.String() }

// Close closes idle connections. Later operations fail. Close always
// returns nil and may be called more than once.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.http.CloseIdleConnections()
	return nil
}

// call runs f with the per-call timeout. If the service rejects the
// request because the credentials have expired, which the cache should
// have prevented, the cached credentials are dropped and f runs once
// more with new ones.
func (s *Store) call(ctx context.Context, f func(ctx context.Context) error) error {
	if s.closed.Load() {
		return errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := f(ctx)
	if s.creds != nil && hasCode(err, "ExpiredTokenException", "ExpiredToken") {
		s.log.Info("aws: the service rejected expired credentials; renewing them")
		s.creds.Invalidate()
		err = f(ctx)
	}
	return err
}

func hasCode(err error, codes ...string) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, c := range codes {
		if apiErr.ErrorCode() == c {
			return true
		}
	}
	return false
}

// throttled are the error codes with which AWS services refuse a request
// because of its rate. They mean the service is unavailable for now.
var throttled = []string{
	"ThrottlingException", "Throttling", "ThrottledException", "RequestThrottledException",
	"TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
}

// fail turns the error of an operation on name into the store's error:
// the keystore sentinels for the service's not-found and exists errors,
// *keystore.UnreachableError when the service did not answer, throttled
// the request or failed on its side, and a wrapped error otherwise.
func (s *Store) fail(ctx context.Context, op, name string, err error) error {
	wrapped := fmt.Errorf("aws: %s %q: %w", op, name, err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch code := apiErr.ErrorCode(); {
		case code == "ResourceNotFoundException":
			return fmt.Errorf("aws: %s %q: %w", op, name, keystore.ErrNotFound)
		case code == "ResourceExistsException":
			return fmt.Errorf("aws: %s %q: %w", op, name, keystore.ErrExists)
		case code == "InvalidRequestException" && op == "get" && strings.Contains(apiErr.ErrorMessage(), "marked for deletion"):
			// Deleted with a recovery window (by someone else), or
			// force-deleted a moment ago and not yet gone: the key is
			// deleted either way.
			return fmt.Errorf("aws: %s %q: %w", op, name, keystore.ErrNotFound)
		case hasCode(err, throttled...), apiErr.ErrorFault() == smithy.FaultServer:
			return &keystore.UnreachableError{Err: wrapped}
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return &keystore.UnreachableError{Err: wrapped}
		}
		return wrapped
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return wrapped // the caller gave up; says nothing about the service
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return &keystore.UnreachableError{Err: wrapped}
	}
	if isNetwork(err) {
		return &keystore.UnreachableError{Err: wrapped}
	}
	return wrapped
}

// isNetwork reports whether err means that no answer was received.
func isNetwork(err error) bool {
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	return errors.As(err, &send) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Create stores value as the secret name. It returns an error wrapping
// [keystore.ErrExists] if the secret exists, also if it is scheduled for
// deletion by someone else (the service's InvalidRequestException is
// returned as is then).
func (s *Store) Create(ctx context.Context, name string, value []byte) error {
	in := &secretsmanager.CreateSecretInput{Name: awssdk.String(name)}
	if utf8.Valid(value) {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = append([]byte(nil), value...)
	}
	if s.kmsKey != "" {
		in.KmsKeyId = awssdk.String(s.kmsKey)
	}
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := s.client.CreateSecret(ctx, in)
		return err
	})
	if err != nil {
		return s.fail(ctx, "create", name, err)
	}
	return nil
}

// Get returns the value of the secret name: its SecretString, or else
// its SecretBinary. It returns an error wrapping [keystore.ErrNotFound]
// if there is no such secret or it is scheduled for deletion.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	var out *secretsmanager.GetSecretValueOutput
	err := s.call(ctx, func(ctx context.Context) (err error) {
		out, err = s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(name)})
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "get", name, err)
	}
	if out.SecretString != nil {
		return []byte(*out.SecretString), nil
	}
	if out.SecretBinary != nil {
		return append([]byte(nil), out.SecretBinary...), nil
	}
	return nil, fmt.Errorf("aws: get %q: the secret has no value", name)
}

// Delete deletes the secret name without a recovery window. It returns
// an error wrapping [keystore.ErrNotFound] if there is no such secret.
func (s *Store) Delete(ctx context.Context, name string) error {
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := s.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
			SecretId:                   awssdk.String(name),
			ForceDeleteWithoutRecovery: awssdk.Bool(true),
		})
		return err
	})
	if err != nil {
		return s.fail(ctx, "delete", name, err)
	}
	return nil
}

// listPageSize is the MaxResults of ListSecrets, the service's maximum.
const listPageSize = 100

// List returns the names of the secrets that start with prefix, as
// described at [keystore.Store.List]. It reads every page of ListSecrets,
// each call with its own timeout.
func (s *Store) List(ctx context.Context, prefix string, n int) ([]string, string, error) {
	in := &secretsmanager.ListSecretsInput{MaxResults: awssdk.Int32(listPageSize)}
	if prefix != "" && filterable(prefix) {
		in.Filters = []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{prefix}}}
	}
	var names []string
	for {
		var out *secretsmanager.ListSecretsOutput
		err := s.call(ctx, func(ctx context.Context) (err error) {
			out, err = s.client.ListSecrets(ctx, in)
			return err
		})
		if err != nil {
			return nil, "", s.fail(ctx, "list", prefix, err)
		}
		for _, e := range out.SecretList {
			if e.Name != nil {
				names = append(names, *e.Name)
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	page, next := keystore.Page(names, prefix, n)
	return page, next, nil
}

// filterable reports whether prefix can be sent as a "name" filter value,
// whose alphabet is [a-zA-Z0-9 :_@/+=.-] and in which a leading "!"
// negates. Other prefixes are filtered here only.
func filterable(prefix string) bool {
	if len(prefix) > 512 {
		return false
	}
	for _, c := range prefix {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune(":_@/+=.-", c):
		default:
			return false
		}
	}
	return true
}

// Status sends a GET to the endpoint, as the original does. Any HTTP
// answer means the service is reachable; no answer within the timeout is
// an error wrapping *[keystore.UnreachableError].
func (s *Store) Status(ctx context.Context) (keystore.State, error) {
	if s.closed.Load() {
		return keystore.State{}, errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return keystore.State{}, fmt.Errorf("aws: status: %w", err)
	}
	start := time.Now()
	resp, err := s.http.Do(req)
	if err != nil {
		return keystore.State{}, &keystore.UnreachableError{Err: fmt.Errorf("aws: status: %w", err)}
	}
	latency := time.Since(start)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return keystore.State{Latency: latency}, nil
}
