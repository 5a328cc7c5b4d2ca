package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// levelBadgerDebug is the slog level of Badger's Debugf records, one step
// below slog.LevelDebug because Badger's Info is already logged at Debug.
const levelBadgerDebug = slog.LevelDebug - 4

// badgerLogger adapts an slog.Logger to badger.Logger. Badger is chatty at
// Info (table counts, replay progress, GC passes), so its Info records are
// demoted to Debug.
type badgerLogger struct {
	log *slog.Logger
}

// Errorf logs at slog.LevelError.
func (l badgerLogger) Errorf(format string, args ...any) {
	l.logf(slog.LevelError, format, args)
}

// Warningf logs at slog.LevelWarn.
func (l badgerLogger) Warningf(format string, args ...any) {
	l.logf(slog.LevelWarn, format, args)
}

// Infof logs at slog.LevelDebug.
func (l badgerLogger) Infof(format string, args ...any) {
	l.logf(slog.LevelDebug, format, args)
}

// Debugf logs at levelBadgerDebug.
func (l badgerLogger) Debugf(format string, args ...any) {
	l.logf(levelBadgerDebug, format, args)
}

func (l badgerLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.log.Log(ctx, level, msg, slog.String("component", "badger"))
}
