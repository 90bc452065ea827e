// Package api describes the KES HTTP API as data: the route table, the
// JSON wire types, the error catalogue with the exact upstream messages and
// the single place where Go errors are translated into HTTP answers.
//
// The server (package server) owns the behaviour; this package owns the
// bytes that cross the wire. Everything here is chosen so that MinIO and the
// upstream kms-go SDK cannot tell OpenKES from the original server.
//
// # Routes
//
// [Routes] returns the 22 routes of the v1 API with their default method,
// body limit, timeout and authentication mode; [LifecycleRoutes] the 3 key
// lifecycle routes of OpenKES (rotate, rewrap, restore; docs/keys.md), and
// [AllRoutes] both, which the server serves and /v1/api lists. Paths that end in '/' are
// prefix routes: the rest of the request path is the route's resource
// argument (a key name, a policy name, a listing pattern, ...).
//
// # Errors
//
// Every error answer is a [kes.Error] of the SDK: an HTTP status plus the
// exact message text that clients compare. The catalogue is the SDK's
// sentinels (kes.ErrKeyNotFound, ...) plus the server-only errors of this
// package ([ErrReadKey], [InvalidKeyName], ...). [Translate] maps arbitrary
// Go errors (key store and crypto sentinels) onto the catalogue; anything
// it does not recognise becomes the route's generic error ([Route].Err),
// and the cause must only be logged.
//
// # Encoding
//
// [WriteJSON], [WriteError] and [WriteOK] produce the exact response bytes
// of the original server (see their docs), and [DecodeJSON] applies its
// request decoding rules.
package api

import (
	"net/http"
	"time"

	"github.com/openkes/openkes/kes"
)

// AuthMode says how a route authenticates its caller.
type AuthMode uint8

const (
	// AuthNone never looks at the client certificate (only /version).
	AuthNone AuthMode = iota
	// AuthIdentify computes the caller's identity if possible but never
	// rejects a request.
	AuthIdentify
	// AuthVerify requires an identity that is the admin or whose policy
	// allows the request path.
	AuthVerify
)

// String returns "none", "identify" or "verify".
func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthIdentify:
		return "identify"
	case AuthVerify:
		return "verify"
	default:
		return "invalid"
	}
}

// MaxBody is the request body limit of the routes that read a body:
// 1 MB (decimal), as upstream.
const MaxBody = 1_000_000

// Route is one entry of the route table.
type Route struct {
	// Method is the HTTP method of the route. Routes whose method is PUT
	// also accept POST.
	Method string
	// Path is the registered path. A trailing '/' marks a prefix route
	// whose remaining path is the resource argument.
	Path string
	// MaxBody is the maximum number of request body bytes read; 0 means
	// the body is never read.
	MaxBody int64
	// Timeout bounds the time to produce the whole response; 0 means none.
	Timeout time.Duration
	// Auth is the default authentication mode.
	Auth AuthMode
	// Counted reports whether the route is instrumented with the
	// kes_http_request_* and kes_http_response_time metrics, as upstream
	// counts them (docs/monitoring.md#upstream-kes-metrics).
	Counted bool
	// Err is the answer to a failure of the route's own operation that
	// [Translate] does not know (the cause is only logged), e.g. 500
	// "failed to encrypt plaintext". Steps that routes share have their
	// own: reading a key answers ErrReadKey, storing one ErrCreateKey.
	// The zero Error means ErrInternal.
	Err kes.Error
}

// IsPrefix reports whether r is a prefix route (its path ends in '/').
func (r *Route) IsPrefix() bool { return len(r.Path) > 0 && r.Path[len(r.Path)-1] == '/' }

// AcceptsMethod reports whether a request with the given method may use
// the route: the route's own method, or POST where the route wants PUT.
func (r *Route) AcceptsMethod(method string) bool {
	return method == r.Method || (r.Method == http.MethodPut && method == http.MethodPost)
}

// Paths of the 22 routes of the v1 API and the 3 OpenKES lifecycle routes.
// Prefix routes end in '/'.
const (
	PathVersion          = "/version"
	PathReady            = "/v1/ready"
	PathStatus           = "/v1/status"
	PathMetrics          = "/v1/metrics"
	PathAPI              = "/v1/api"
	PathKeyCreate        = "/v1/key/create/"
	PathKeyImport        = "/v1/key/import/"
	PathKeyDescribe      = "/v1/key/describe/"
	PathKeyList          = "/v1/key/list/"
	PathKeyDelete        = "/v1/key/delete/"
	PathKeyGenerate      = "/v1/key/generate/"
	PathKeyEncrypt       = "/v1/key/encrypt/"
	PathKeyDecrypt       = "/v1/key/decrypt/"
	PathKeyHMAC          = "/v1/key/hmac/"
	PathPolicyDescribe   = "/v1/policy/describe/"
	PathPolicyRead       = "/v1/policy/read/"
	PathPolicyList       = "/v1/policy/list/"
	PathIdentityDescribe = "/v1/identity/describe/"
	PathIdentityList     = "/v1/identity/list/"
	PathIdentitySelf     = "/v1/identity/self/describe"
	PathLogError         = "/v1/log/error"
	PathLogAudit         = "/v1/log/audit"

	PathKeyRotate  = "/v1/key/rotate/"
	PathKeyRewrap  = "/v1/key/rewrap/"
	PathKeyRestore = "/v1/key/restore/"
)

// Routes returns a fresh copy of the 22 routes of the v1 API with their
// defaults, in the order of docs/api.md#routes. Callers may modify the
// result.
func Routes() []Route {
	const (
		get = http.MethodGet
		put = http.MethodPut
		del = http.MethodDelete
		s10 = 10 * time.Second
		s15 = 15 * time.Second
	)
	return []Route{
		{Method: get, Path: PathVersion, Timeout: s10, Auth: AuthNone},
		{Method: get, Path: PathReady, Timeout: s15, Auth: AuthVerify, Err: ErrStoreError},
		{Method: get, Path: PathStatus, Timeout: s15, Auth: AuthVerify},
		{Method: get, Path: PathMetrics, Timeout: s15, Auth: AuthVerify},
		{Method: get, Path: PathAPI, Timeout: s10, Auth: AuthVerify},
		{Method: put, Path: PathKeyCreate, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrGenerateKey},
		{Method: put, Path: PathKeyImport, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrCreateKeyInternal},
		{Method: get, Path: PathKeyDescribe, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrReadKey},
		{Method: get, Path: PathKeyList, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrListKeys},
		{Method: del, Path: PathKeyDelete, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrDeleteKey},
		{Method: put, Path: PathKeyGenerate, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrGenerateKey},
		{Method: put, Path: PathKeyEncrypt, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrEncrypt},
		{Method: put, Path: PathKeyDecrypt, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrDecryptInternal},
		{Method: put, Path: PathKeyHMAC, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrInternal},
		{Method: get, Path: PathPolicyDescribe, Timeout: s15, Auth: AuthVerify, Counted: true},
		{Method: get, Path: PathPolicyRead, Timeout: s15, Auth: AuthVerify, Counted: true},
		{Method: get, Path: PathPolicyList, Timeout: s15, Auth: AuthVerify, Counted: true},
		{Method: get, Path: PathIdentityDescribe, Timeout: s15, Auth: AuthVerify, Counted: true},
		{Method: get, Path: PathIdentityList, Timeout: s15, Auth: AuthVerify, Counted: true},
		{Method: get, Path: PathIdentitySelf, Timeout: s15, Auth: AuthIdentify, Counted: true},
		{Method: get, Path: PathLogError, Auth: AuthVerify},
		{Method: get, Path: PathLogAudit, Auth: AuthVerify},
	}
}

// LifecycleRoutes returns a fresh copy of the OpenKES key lifecycle
// routes, rotate, rewrap and restore (docs/keys.md): ordinary key routes,
// counted in the request metrics.
func LifecycleRoutes() []Route {
	const (
		put = http.MethodPut
		s15 = 15 * time.Second
	)
	return []Route{
		{Method: put, Path: PathKeyRotate, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrRotateKey},
		{Method: put, Path: PathKeyRewrap, MaxBody: MaxBody, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrDecryptInternal},
		{Method: put, Path: PathKeyRestore, Timeout: s15, Auth: AuthVerify, Counted: true, Err: ErrRestoreKey},
	}
}

// AllRoutes returns Routes followed by LifecycleRoutes: every route the
// server serves, in the order /v1/api lists them.
func AllRoutes() []Route { return append(Routes(), LifecycleRoutes()...) }
