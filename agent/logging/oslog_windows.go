package logging

import (
	"io"
	"log/slog"

	"golang.org/x/sys/windows/svc/eventlog"
)

// eventID is the one ID we log under: the EventCreate.exe message file that
// `coffer service install` registers shows IDs 1–1000 as the raw text.
const eventID = 1

// openSystemLog returns the Application Event Log under source "coffer", or
// nothing if it can't be opened: the file alone is enough to run.
func openSystemLog(level slog.Leveler) (slog.Handler, io.Closer) {
	l, err := eventlog.Open(EventSource)
	if err != nil {
		return nil, nil
	}
	return newSinkHandler(level, func(lv slog.Level, msg string) error {
		switch {
		case lv >= slog.LevelError:
			return l.Error(eventID, msg)
		case lv >= slog.LevelWarn:
			return l.Warning(eventID, msg)
		default:
			return l.Info(eventID, msg)
		}
	}), l
}
