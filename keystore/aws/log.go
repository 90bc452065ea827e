package aws

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger sends the AWS SDK's own log messages (warnings such as a
// misconfigured shared credentials file; request logging is never turned
// on) to the store's logger instead of the SDK's default, standard error.
type sdkLogger struct{ log *slog.Logger }

var _ logging.Logger = sdkLogger{}

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, "aws: sdk: "+fmt.Sprintf(format, v...))
}
