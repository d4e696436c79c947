//go:build !windows && !plan9

package logging

import (
	"io"
	"log/slog"
	"log/syslog"
	"os"
)

// openSystemLog returns journald (via stderr) when systemd runs us, else
// syslog (which macOS forwards to its unified log), else nothing: the file
// alone is enough to run.
func openSystemLog(level slog.Leveler) (slog.Handler, io.Closer) {
	if underJournald() {
		return newSinkHandler(level, journalSink(os.Stderr)), nil
	}
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, EventSource)
	if err != nil {
		return nil, nil
	}
	return newSinkHandler(level, func(l slog.Level, msg string) error {
		switch {
		case l >= slog.LevelError:
			return w.Err(msg)
		case l >= slog.LevelWarn:
			return w.Warning(msg)
		case l >= slog.LevelInfo:
			return w.Info(msg)
		default:
			return w.Debug(msg)
		}
	}), w
}
