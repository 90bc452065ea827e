package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openkes/openkes/kes"
)

const logUsage = `Usage:
    kes log [options]

Subscribes to the audit log (the default) or the error log of a server
and prints its events as they happen, until interrupted (Ctrl-C).

Audit events are printed as a table, coloured by status on a terminal:
time, status, identity, client IP, API path and latency. With --json,
each event is printed as one line of JSON:
{"time":"...","request":{"ip":"...","path":"...","identity":"..."},"response":{"code":200,"time":<ms>}}
Error events are printed as the server's log lines, or with --json as
{"message":"..."}.

Options:
    --audit                  Print the audit log (default).
    --error                  Print the error log.
    --json                   Print one JSON object per event and line.
    -n, --count <n>          Stop after n events. Default: 0, no limit.
` + clientOptions + `
Examples:
    $ kes log
    $ kes log --error
    $ kes log --json | jq 'select(.response.code >= 400)'
`

var logCommand = &command{
	name:  "log",
	usage: logUsage,
	opts:  optConn | optJSON | optColor,
	flags: func(fs *flag.FlagSet) runFunc {
		var (
			audit, errorLog bool
			count           uint
		)
		boolFlag(fs, &audit, "audit")
		boolFlag(fs, &errorLog, "error")
		fs.UintVar(&count, "n", 0, "")
		fs.UintVar(&count, "count", 0, "")
		return func(ctx context.Context, c *call) error {
			if audit && errorLog {
				return c.usagef("cannot display audit and error logs at the same time")
			}
			s, err := c.connect()
			if err != nil {
				return err
			}
			if errorLog {
				stream, err := s.client.ErrorLog(ctx)
				return follow[kes.ErrorEvent](ctx, c.env, s, "error log", stream, err, c.json, count, "", func(ev *kes.ErrorEvent) string {
					return c.colorLevel(ev.Message) + "\n"
				})
			}
			stream, err := s.client.AuditLog(ctx)
			header := c.style(sgrBold, sgrUnderline).wrap(fmt.Sprintf("%-12s%-10s%-24s%-19s%-34s%s", "Time", "Status", "Identity", "IP", "API", "Latency"))
			return follow[kes.AuditEvent](ctx, c.env, s, "audit log", stream, err, c.json, count, header, c.auditLine)
		}
	},
}

// streamEnd turns the end of a log stream into the command's result:
// interruption and a server that ends the stream are no failures.
func streamEnd(ctx context.Context, s *session, err error) error {
	if err == nil || ctx.Err() != nil {
		return nil
	}
	return s.fail(err, "log stream failed")
}

// logStream is a subscription to the audit or the error log.
type logStream[T any] interface {
	Next() bool
	Event() T
	Err() error
	Close() error
}

// follow prints the events of a log stream, or the error of subscribing
// to it (name: "audit log"), until ctx ends, the stream ends or count
// events (0: no limit) are printed: one JSON object per line with
// --json, else the header, if any, and line of every event.
func follow[T any](ctx context.Context, e *env, s *session, name string, stream logStream[T], err error, jsonOut bool, count uint, header string, line func(*T) string) error {
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail(err, "failed to subscribe to the %s", name)
	}
	defer stream.Close()
	stop := context.AfterFunc(ctx, func() { stream.Close() })
	defer stop()

	if !jsonOut && header != "" {
		fmt.Fprintln(e.stdout, header)
	}
	for n := uint(0); count == 0 || n < count; n++ {
		if !stream.Next() {
			return streamEnd(ctx, s, stream.Err())
		}
		event := stream.Event()
		if jsonOut {
			if err := e.printJSONLine(event); err != nil {
				return err
			}
			continue
		}
		io.WriteString(e.stdout, line(&event))
	}
	return nil
}

// auditLine formats an audit event as a row under the header of
// the audit log; only the status is coloured.
func (e *env) auditLine(ev *kes.AuditEvent) string {
	status := e.statusStyle(ev.Response.StatusCode).wrap(fmt.Sprintf("%d", ev.Response.StatusCode))
	pad := 10 - len(fmt.Sprint(ev.Response.StatusCode))
	ip := "-"
	if ev.Request.IP != nil {
		ip = ev.Request.IP.String()
	}
	return fmt.Sprintf("%-12s%s%s%-24s%-19s%-34s%s\n",
		ev.Time.Local().Format(time.TimeOnly),
		status, strings.Repeat(" ", max(pad, 1)),
		truncate(orNone(ev.Request.Identity.String()), 21),
		truncate(ip, 18),
		truncate(ev.Request.Path, 33),
		shortDuration(ev.Response.Time),
	)
}

// statusStyle colours an HTTP status: green 2xx, yellow 4xx, red 5xx.
func (e *env) statusStyle(code int) style {
	switch {
	case code >= 500:
		return e.style(sgrRed, sgrBold)
	case code >= 400:
		return e.style(sgrYellow)
	case code >= 200 && code < 300:
		return e.style(sgrGreen)
	}
	return ""
}

// truncate shortens s to at most n characters, ending in "…" if cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// colorLevel colours the level=... field of a slog text line.
func (e *env) colorLevel(line string) string {
	for _, l := range []struct {
		level string
		st    style
	}{
		{"level=ERROR", e.style(sgrRed, sgrBold)},
		{"level=WARN", e.style(sgrYellow)},
	} {
		if i := strings.Index(line, l.level); i >= 0 && l.st != "" {
			return line[:i] + l.st.wrap(l.level) + line[i+len(l.level):]
		}
	}
	return line
}
