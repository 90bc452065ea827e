package server

import (
	"context"
	"time"
)

// AuditRecord describes one request-response pair.
type AuditRecord struct {
	Time     time.Time // when the request was received
	Method   string
	Path     string
	IP       string // client IP without port
	Identity string // empty if the client sent no certificate
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
