package etcd

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a logger for the etcd client that sends every
// message to log at debug level. The client logs a warning for every
// failed attempt of a request, which during an outage would drown the
// error log; the store reports outages through its errors and its own
// messages instead, and the client's detail is there for debugging.
func newZapLogger(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log})
}

// slogCore is a zapcore.Core writing to a slog.Logger.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(zapcore.Level) bool {
	return c.log.Enabled(context.Background(), slog.LevelDebug)
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := slices.Sorted(maps.Keys(enc.Fields))
	attrs := make([]slog.Attr, 0, len(keys)+1)
	attrs = append(attrs, slog.String("etcd_level", e.Level.String()))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, enc.Fields[k]))
	}
	msg := "etcd client: " + e.Message
	if e.LoggerName != "" {
		msg = "etcd client (" + strings.TrimPrefix(e.LoggerName, "etcd-client.") + "): " + e.Message
	}
	c.log.LogAttrs(context.Background(), slog.LevelDebug, msg, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
