package awsconfig

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger routes the SDK's own log lines (such as "Response has no
// supported checksum") through slog. Without it the SDK writes plain
// "SDK 2026/11/28 ... DEBUG ..." lines to stderr whatever the level, which
// breaks a service's one-JSON-object-per-line log.
type sdkLogger struct {
	log func() *slog.Logger // read at each line, so slog.SetDefault applies
	ctx context.Context
}

// Logf implements logging.Logger: DEBUG lines are slog debug, everything
// else (WARN, and any classification a future SDK adds) slog warn.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelWarn
	if c == logging.Debug {
		level = slog.LevelDebug
	}
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	lg := l.log()
	if !lg.Enabled(ctx, level) {
		return
	}
	lg.Log(ctx, level, fmt.Sprintf(format, v...), "source", "aws-sdk")
}

// WithContext implements logging.ContextLogger.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	l.ctx = ctx
	return l
}

// SDKLogger returns the SDK logger that writes to log, or to slog's
// default logger when log is nil.
func SDKLogger(log *slog.Logger) logging.Logger {
	if log == nil {
		return sdkLogger{log: slog.Default}
	}
	return sdkLogger{log: func() *slog.Logger { return log }}
}
