package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/openkes/openkes/server"
)

// auditLog writes audit records to stdout in the text format of upstream
// KES. Like upstream it prints the records of key creation, import and
// deletion; every record reaches the /v1/log/audit stream regardless.
type auditLog struct {
	mu    sync.Mutex
	w     io.Writer
	level *slog.LevelVar
}

var _ server.AuditHandler = (*auditLog)(nil)

// HandleAudit implements server.AuditHandler.
func (a *auditLog) HandleAudit(_ context.Context, r *server.AuditRecord) {
	if a.level.Level() > slog.LevelInfo || !strings.HasPrefix(r.Message, "secret key '") {
		return
	}
	line := formatAudit(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	io.WriteString(a.w, line)
}

// formatAudit renders r as one slog-style text line.
func formatAudit(r *server.AuditRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "time=%s level=INFO msg=%q req.method=%s req.path=%s", r.Time.Format("2006-01-02T15:04:05.000Z07:00"), r.Message, r.Method, r.Path)
	if r.IP != "" {
		fmt.Fprintf(&b, " req.ip=%s", r.IP)
	}
	if r.Identity != "" {
		fmt.Fprintf(&b, " req.identity=%s", r.Identity)
	}
	fmt.Fprintf(&b, " res.code=%d res.time=%s\n", r.Status, r.Latency.Round(10*time.Nanosecond))
	return b.String()
}
