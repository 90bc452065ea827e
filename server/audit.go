package server

import (
	"context"
	"time"
)

// AuditRecord describes one request-response pair.
//
// Every HTTP request that reaches the server's handler yields exactly one
// record, after the response: all routes, failures and rejections
// (403, 405, 400 bodies, 413-size bodies answered with 400), unknown
// paths (404), redirects to the clean path (301), panics (500), and log
// streams when they end. This extends upstream, which audits only key
// creation, import and deletion (docs/monitoring.md#audit-log). Identity and
// Policy are those of the client certificate even on routes that do not
// authenticate (/version) and on requests answered before
// authentication. No record is made for what never becomes a request:
// failed TLS handshakes (counted in kes_tls_handshake_failures_*_total),
// and requests the HTTP layer rejects before routing (malformed request
// lines or headers, oversized headers). A handler that aborts with
// http.ErrAbortHandler yields no record either. Records never contain
// key material, plaintexts or ciphertexts.
type AuditRecord struct {
	Time     time.Time // when the request was received
	Method   string
	Path     string
	IP       string // client IP without port
	Identity string // empty if the client sent no usable certificate
	Policy   string // policy of the identity, if any
	KeyName  string // key argument of key routes, if any
	Status   int
	Latency  time.Duration
	Message  string // e.g. "secret key 'my-key' created", or the error message
}

// AuditHandler receives audit records. Implementations must be safe for
// concurrent use and must not block for long.
type AuditHandler interface {
	HandleAudit(ctx context.Context, r *AuditRecord)
}
