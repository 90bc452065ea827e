package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"time"

	"github.com/openkes/openkes/keystore"
)

// Config is the complete runtime configuration of a Server. A Server can
// switch to a new Config at runtime with [Server.Update].
//
// Config is built by package config from the YAML file, or directly by
// programs that embed the server.
type Config struct {
	// Admin is the identity that may do everything. A value that is not
	// a 64-character lowercase hex string disables the admin.
	Admin string

	// Policies maps policy names to policies.
	Policies map[string]Policy

	// Keys are created at start-up and on every Update if they do not
	// exist yet, with the admin as creator.
	Keys []string

	// Store is the key store. The Server closes the Store it replaces on
	// Update and the current Store on Close.
	Store keystore.Store

	// Cache configures the in-memory key cache in front of Store.
	Cache CacheConfig

	// Deletion configures deletion protection (docs/keys.md).
	Deletion DeletionConfig

	// Routes overrides per-route settings. The map key is the route path
	// as listed by /v1/api, e.g. "/v1/status" or "/v1/key/create/".
	Routes map[string]RouteConfig

	// TLS configures the server certificate and client authentication.
	TLS TLSConfig

	// ErrorLog receives error and diagnostic records. Nil discards them.
	ErrorLog *slog.Logger

	// AuditLog receives one record per audited request. Nil discards them.
	AuditLog AuditHandler

	// Rand is the source of randomness for keys; nil means crypto/rand.
	Rand io.Reader

	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// HTTP1Stdlib serves HTTP/1.1 connections with net/http's server
	// instead of the server's own HTTP/1.1 loop. Both answer every
	// request with the same bytes; the own loop needs less CPU per
	// request. This is a kill switch for operations: it is read when a
	// connection is accepted, so an Update applies to new connections.
	// HTTP/2 is always served by net/http.
	HTTP1Stdlib bool

	// Limits bounds the resources clients can hold. Zero fields take the
	// defaults of DefaultLimits.
	Limits Limits
}

// Limits bounds connections and log streams, so that clients with
// unknown certificates, or too many of any, cannot lock out the known
// identities. A zero (or negative) field means its default
// (DefaultLimits); package config rejects negative values. Connection limits are read when a connection is
// accepted, so an Update applies to new connections.
type Limits struct {
	// Connections caps the open connections, HTTP/1.1 and HTTP/2, from
	// accept (before the TLS handshake) until they are closed.
	Connections int

	// UnauthenticatedConnections caps the connections that are in the
	// TLS handshake or whose identity is neither the admin nor in a
	// policy. Past it, a new connection closes the oldest of them.
	UnauthenticatedConnections int

	// LogStreams caps the subscribers of each log stream
	// (/v1/log/audit and /v1/log/error); past it, a subscription is
	// answered with 503 Service Unavailable.
	LogStreams int
}

// DefaultLimits are the limits of a zero Limits: 4096 connections, of
// which at most 256 unauthenticated, and 32 subscribers per log stream.
var DefaultLimits = Limits{Connections: 4096, UnauthenticatedConnections: 256, LogStreams: 32}

// withDefaults returns l with zero (or negative) fields set to their
// default; the unauthenticated budget never exceeds the cap.
func (l Limits) withDefaults() Limits {
	if l.Connections <= 0 {
		l.Connections = DefaultLimits.Connections
	}
	if l.UnauthenticatedConnections <= 0 {
		l.UnauthenticatedConnections = DefaultLimits.UnauthenticatedConnections
	}
	l.UnauthenticatedConnections = min(l.UnauthenticatedConnections, l.Connections)
	if l.LogStreams <= 0 {
		l.LogStreams = DefaultLimits.LogStreams
	}
	return l
}

// Policy is a set of allow and deny path patterns and the identities it
// applies to.
type Policy struct {
	Allow      []string
	Deny       []string
	Identities []string
}

// CacheConfig controls how long keys stay in the in-memory cache.
// A zero duration disables the corresponding expiry.
type CacheConfig struct {
	// Any evicts every entry at this interval.
	Any time.Duration
	// Unused evicts entries not used within this duration.
	Unused time.Duration
	// Offline, when > 0, keeps serving cached keys while the store is
	// unreachable, for at most this long.
	Offline time.Duration
}

// DefaultCacheConfig is the documented upstream default: any 5m, unused
// 30s, offline disabled.
var DefaultCacheConfig = CacheConfig{Any: 5 * time.Minute, Unused: 30 * time.Second}

// DeletionConfig configures deletion protection.
type DeletionConfig struct {
	// Window, if positive, makes delete schedule a key for deletion
	// Window later instead of deleting it; until then it can be
	// restored. It must be at least MinDeletionWindow. 0 deletes keys at
	// once, as upstream KES does.
	Window time.Duration
}

// MinDeletionWindow is the shortest deletion window.
const MinDeletionWindow = time.Second

// RouteConfig overrides the defaults of one route.
type RouteConfig struct {
	// Timeout, when > 0, replaces the route's default timeout.
	Timeout time.Duration
	// SkipAuth lets any TLS client call the route. Only allowed for
	// /v1/ready, /v1/status, /v1/metrics and /v1/api.
	SkipAuth bool
}

// TLSConfig configures the TLS listener.
type TLSConfig struct {
	// GetCertificate returns the server certificate; called on every
	// handshake so certificates can be rotated without restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// VerifyClients ("tls.auth: on") verifies client certificates against
	// ClientCAs (plus system roots) and requires EKU clientAuth. When
	// false, any well-formed, currently valid certificate is accepted.
	VerifyClients bool

	// ClientCAs holds the CAs of tls.ca. With VerifyClients false they are
	// not advertised in the handshake.
	ClientCAs *x509.CertPool

	// GetClientCAs, if set, is called on every handshake and replaces
	// ClientCAs with the pool it returns, so that tls.ca can be rotated
	// like the certificate (see internal/https.CAPoolLoader). It must be
	// cheap: return the same pool until the CAs change.
	GetClientCAs func() *x509.CertPool
}
