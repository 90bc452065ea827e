// Package etcd implements a [keystore.Store] in an [etcd] cluster, so that
// any number of stateless KES servers can share their keys.
//
// Each key is one etcd key, "<prefix>/<name>", holding the same serialised
// key every other store holds. Create is a transaction on the key's create
// revision, so of two servers racing to create a key exactly one wins;
// reads are linearizable, and [Store.Watch] lets a server's key cache drop
// keys changed through another server (see [keystore.Watcher]). Connecting
// never waits for the cluster; every operation is bounded by
// [Config.Timeout], and one that finds no member or no quorum returns an
// error wrapping *[keystore.UnreachableError] (it may still take effect
// later: etcd keeps a proposal that reached a member).
//
// The settings of keystore.etcd ([Config]) are described in
// docs/config.md#keystoreetcd.
//
// [etcd]: https://etcd.io
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/openkes/openkes/internal/https"
	"github.com/openkes/openkes/keystore"
	"github.com/openkes/openkes/keystore/seal"
)

// NewConfig returns an empty Config, for keystore.Register, which
// keystore/all calls: importing this package registers nothing.
func NewConfig() keystore.Config { return new(Config) }

// MaxValueSize is the largest value the store accepts and returns: 1 MiB,
// as the filesystem store. Stored keys are a few hundred bytes; etcd's
// default request limit is 1.5 MiB.
const MaxValueSize = 1 << 20

// DefaultTimeout bounds every operation when [Config.Timeout] is zero. It
// is longer than the time an etcd member itself waits for a proposal
// (about 7 s with etcd's default election timeout), so that the member's
// answer, not the client's impatience, ends a slow request.
const DefaultTimeout = 10 * time.Second

// Config is the "keystore.etcd" section of the config file.
type Config struct {
	// Endpoints are the client URLs of the etcd members,
	// "http://host:port" or "https://host:port", all with the same
	// scheme. The client spreads requests over them and moves on when
	// one fails. Members not listed are not used.
	Endpoints []string `yaml:"endpoints"`

	// Prefix is prepended, followed by a '/' if it does not end in one, to
	// every key name. Empty means the root of the key space.
	Prefix string `yaml:"prefix"`

	// Username and Password log in to etcd when its authentication is
	// enabled. Both or neither must be set.
	Username string          `yaml:"username"`
	Password keystore.Secret `yaml:"password"`

	// TLS configures HTTPS endpoints.
	TLS TLSConfig `yaml:"tls"`

	// Timeout bounds each operation, including its retries. Zero means
	// DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`

	// Seal, if set, encrypts every stored value with a key-encryption
	// key before it is sent to etcd (see package keystore/seal).
	Seal *seal.Config `yaml:"seal"`
}

// TLSConfig is the "tls" subsection of [Config].
type TLSConfig struct {
	// Key and Cert are the PEM files of a client certificate, for
	// members started with --client-cert-auth. Both or neither must be
	// set. The files are read again when they change.
	Key  string `yaml:"key"`
	Cert string `yaml:"cert"`

	// CA is a PEM file, or a directory of PEM files, of the CAs that
	// issued the members' certificates, added to the system's roots.
	CA string `yaml:"ca"`
}

func (t *TLSConfig) isSet() bool {
	return strings.TrimSpace(t.Key) != "" || strings.TrimSpace(t.Cert) != "" || strings.TrimSpace(t.CA) != ""
}

var _ keystore.Config = (*Config)(nil)

// Validate reports every problem of the configuration, joined with
// errors.Join, each error naming its field relative to the section
// ("endpoints[0]: required"). It reads no files.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	blank := func(s string) bool { return strings.TrimSpace(s) == "" }

	if len(c.Endpoints) == 0 {
		add("endpoints", "required")
	}
	var first string // scheme of the first valid endpoint
	for i, e := range c.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", i)
		if blank(e) {
			add(field, "required")
			continue
		}
		scheme, err := checkEndpoint(e)
		if err != nil {
			add(field, "%v", err)
			continue
		}
		switch {
		case first == "":
			first = scheme
		case scheme != first:
			add(field, "scheme '%s' differs from '%s' of the other endpoints (use one scheme for all)", scheme, first)
		}
		if scheme == "http" && c.TLS.isSet() {
			add(field, "'%s' does not use TLS, but tls is configured (use https://)", e)
		}
	}
	if c.Password.Reveal() != "" && blank(c.Username) {
		add("username", "required")
	}
	if c.Username != "" && blank(c.Password.Reveal()) {
		add("password", "required")
	}
	hasKey, hasCert := !blank(c.TLS.Key), !blank(c.TLS.Cert)
	if hasCert && !hasKey {
		add("tls.key", "required when tls.cert is set")
	}
	if hasKey && !hasCert {
		add("tls.cert", "required when tls.key is set")
	}
	if c.Timeout < 0 {
		add("timeout", "invalid duration '%v'", c.Timeout)
	}
	if c.Seal != nil {
		errs = append(errs, seal.PrefixErrors(c.Seal.Validate()))
	}
	return errors.Join(errs...)
}

// checkEndpoint returns the scheme of an endpoint URL, or why it cannot be
// used. The etcd client would take "host:port" without a scheme, and
// choose TLS depending on the rest of the config; a scheme is required
// here so that nobody sends a password in plain text by accident.
func checkEndpoint(e string) (scheme string, err error) {
	if !strings.Contains(e, "://") {
		return "", fmt.Errorf("missing scheme in '%s' (use http:// or https://)", e)
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", fmt.Errorf("invalid URL '%s'", e)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return "", fmt.Errorf("unsupported scheme '%s' in '%s' (use http or https)", u.Scheme, e)
	}
	switch {
	case u.Hostname() == "":
		return "", fmt.Errorf("missing host in '%s'", e)
	case u.Port() == "":
		return "", fmt.Errorf("missing port in '%s' (etcd listens on 2379 by default)", e)
	case u.User != nil:
		return "", fmt.Errorf("'%s' must not contain a user name (use username and password)", u.Redacted())
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return "", fmt.Errorf("'%s' must be scheme://host:port only", e)
	}
	return u.Scheme, nil
}

// Connect returns a store for the cluster, as [New] does.
func (c *Config) Connect(ctx context.Context, log *slog.Logger) (keystore.Store, error) {
	s, err := New(ctx, c, log)
	if err != nil {
		return nil, err
	}
	return c.Seal.Wrap(ctx, s, log)
}

// Store is a key store in an etcd cluster. It is safe for concurrent use.
type Store struct {
	prefix    string // normalised: "" or ending in '/'
	timeout   time.Duration
	endpoints []string
	log       *slog.Logger
	conf      clientv3.Config // for creating the client, without password
	user      string
	password  keystore.Secret

	// cli is the etcd client. Without authentication it is created by
	// New; with authentication creating it means logging in, which needs
	// a reachable cluster, so it may be created later by the first
	// operation that finds the cluster up (see client).
	cli    atomic.Pointer[clientv3.Client]
	dial   chan struct{} // one-slot semaphore held while creating cli
	closed chan struct{} // closed by Close
	once   sync.Once

	// cancel ends the context of every client, so that Close also
	// interrupts a login in progress.
	cancel context.CancelFunc
}

var (
	_ keystore.Store   = (*Store)(nil)
	_ keystore.Watcher = (*Store)(nil)
)

// errClosed is returned by every operation on a closed Store.
var errClosed = errors.New("store is closed")

// New returns a store for the cluster described by conf. It does not wait
// for the cluster: operations reach it once it is up.
//
// New returns an error for an invalid configuration (see
// [Config.Validate]) and for unreadable TLS files. If the cluster
// requires a password, New tries to log in, for at most the configured
// timeout or until ctx ends: wrong credentials are an error; if the
// cluster cannot be reached New logs a warning and returns the store,
// which logs in on first use. log receives the store's and the etcd
// client's messages (the client's at debug level); nil discards them.
func New(ctx context.Context, conf *Config, log *slog.Logger) (*Store, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("etcd: invalid config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		prefix:    normalizePrefix(conf.Prefix),
		timeout:   conf.Timeout,
		endpoints: make([]string, len(conf.Endpoints)),
		log:       log,
		user:      conf.Username,
		password:  conf.Password,
		dial:      make(chan struct{}, 1),
		closed:    make(chan struct{}),
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	for i, e := range conf.Endpoints {
		s.endpoints[i] = strings.TrimSuffix(strings.TrimSpace(e), "/")
	}

	var tlsConf *tls.Config
	if strings.HasPrefix(s.endpoints[0], "https://") {
		var err error
		if tlsConf, err = clientTLS(&conf.TLS); err != nil {
			return nil, err
		}
	} else if conf.Username != "" {
		log.Warn("etcd: the password is sent to etcd unencrypted; use https:// endpoints")
	}

	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.conf = clientv3.Config{
		Context:   base,
		Endpoints: s.endpoints,
		TLS:       tlsConf,
		Username:  conf.Username,
		// Detect a member that vanished without closing the connection
		// (a partition); etcd refuses pings more often than every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               newZapLogger(log),
		DialOptions: []grpc.DialOption{
			// gRPC waits up to 2 minutes between attempts to reconnect
			// to a member that was down for a while. Come back within a
			// second of the member.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   time.Second,
				},
				MinConnectTimeout: 5 * time.Second,
			}),
		},
	}

	if conf.Username == "" {
		// Creating a client without authentication does no I/O.
		cli, err := s.newClient(0)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("etcd: %w", err)
		}
		s.cli.Store(cli)
		return s, nil
	}
	lctx, lcancel := context.WithTimeout(ctx, s.timeout)
	defer lcancel()
	if _, err := s.client(lctx); err != nil {
		if !keystore.IsUnreachable(err) {
			s.Close()
			return nil, err
		}
		log.Warn("etcd: cannot log in now, will log in when the cluster is reachable", slog.Any("err", err))
	}
	return s, nil
}

// normalizePrefix appends '/' to a non-empty prefix that lacks it.
func normalizePrefix(p string) string {
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// clientTLS returns the TLS config for HTTPS endpoints.
func clientTLS(c *TLSConfig) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := strings.TrimSpace(c.CA); ca != "" {
		pool, err := https.LoadCertPool(ca)
		if err != nil {
			return nil, fmt.Errorf("etcd: tls.ca: %w", err)
		}
		conf.RootCAs = pool
	}
	if cert := strings.TrimSpace(c.Cert); cert != "" {
		cc, err := https.NewClientCertificateLoader(cert, strings.TrimSpace(c.Key), "")
		if err != nil {
			return nil, fmt.Errorf("etcd: tls.cert: %w", err)
		}
		// Handshakes with etcd are rare (connections live long): look at
		// the files at every one, so a rotated certificate is used at once.
		cc.CheckInterval = time.Nanosecond
		conf.GetClientCertificate = cc.GetClientCertificate
	}
	return conf, nil
}

// newClient creates an etcd client. With authentication it logs in,
// waiting at most dialTimeout (0: no limit).
func (s *Store) newClient(dialTimeout time.Duration) (*clientv3.Client, error) {
	conf := s.conf
	conf.Password = s.password.Reveal()
	conf.DialTimeout = dialTimeout
	return clientv3.New(conf)
}

// client returns the etcd client, creating it (which means logging in)
// if there is none yet. It returns errClosed after Close.
func (s *Store) client(ctx context.Context) (*clientv3.Client, error) {
	if cli := s.cli.Load(); cli != nil {
		return cli, nil
	}
	select {
	case s.dial <- struct{}{}:
	case <-ctx.Done():
		return nil, s.fail(ctx, ctx, "log in as", s.user, time.Now(), ctx.Err())
	case <-s.closed:
		return nil, fmt.Errorf("etcd: %w", errClosed)
	}
	defer func() { <-s.dial }()
	if cli := s.cli.Load(); cli != nil {
		return cli, nil
	}
	select {
	case <-s.closed:
		return nil, fmt.Errorf("etcd: %w", errClosed)
	default:
	}
	timeout := s.timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, s.fail(ctx, ctx, "log in as", s.user, time.Now(), context.DeadlineExceeded)
	}
	start := time.Now()
	cli, err := s.newClient(timeout)
	if err != nil {
		return nil, s.fail(ctx, ctx, "log in as", s.user, start, err)
	}
	s.cli.Store(cli)
	s.log.Info("etcd: logged in", slog.String("user", s.user))
	return cli, nil
}

// String returns "etcd: <endpoints>", the name shown in the start-up
// banner.
func (s *Store) String() string {
	return "etcd: " + strings.Join(s.endpoints, ", ")
}

// GoString returns what String does, so that %#v cannot print the
// store's internals.
func (s *Store) GoString() string { return s.String() }

// key returns the etcd key of a key name.
func (s *Store) key(name string) string { return s.prefix + name }

// Close closes the connections to the cluster. Operations and watches
// running or started later fail (watches end, see [Store.Watch]). Close
// always returns nil and may be called more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.cancel()
		// Wait for a login in progress, so its client is closed too.
		s.dial <- struct{}{}
		if cli := s.cli.Swap(nil); cli != nil {
			cli.Close()
		}
		<-s.dial
	})
	return nil
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}
