// Package logging sets up the agent's logger: a rotating file in the log
// folder plus the operating system's log (journald or syslog, the Windows
// Event Log), so an admin finds Coffer's messages where they look first and
// the file keeps a history even when the OS log is unavailable.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
)

// EventSource names Coffer in the OS log: the syslog tag and the Windows
// Event Log source (which `coffer service install` registers).
const EventSource = "coffer"

// FileName is the active log file in Options.Dir; rotated files get .1, .2, ….
const FileName = "coffer.log"

const (
	defaultMaxBytes = 10 << 20
	defaultMaxFiles = 5
)

// Options configures New.
type Options struct {
	// Dir is the log folder, created 0700 when missing; see DefaultDir.
	Dir string
	// MaxBytes is the size at which coffer.log is rotated; default 10 MiB.
	MaxBytes int64
	// MaxFiles is how many files are kept in all, coffer.log included; default 5.
	MaxFiles int
	// Level is the least level written to the file. The OS log gets Info and
	// above even when Level is Debug, so debugging doesn't flood it.
	Level slog.Level
	// JSON writes the file as one JSON object a line instead of key=value text.
	JSON bool
}

// DefaultDir is where a system-wide agent keeps its logs on this OS.
func DefaultDir() string {
	switch runtime.GOOS {
	case "windows":
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		return filepath.Join(base, "Coffer", "logs")
	case "darwin":
		return "/Library/Logs/Coffer"
	default:
		return "/var/log/coffer"
	}
}

// openOSLog is replaced in tests so they neither need nor spam the OS log.
var openOSLog = openSystemLog

// New returns a logger that writes to the rotating file and, when available,
// the OS log, and the closer that flushes and closes both.
func New(o Options) (*slog.Logger, io.Closer, error) {
	if o.Dir == "" {
		return nil, nil, errors.New("logging: no log folder given; set the log folder (for example " + DefaultDir() + ")")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = defaultMaxFiles
	}
	w, err := OpenRotatingFile(o.Dir, o.MaxBytes, o.MaxFiles)
	if err != nil {
		return nil, nil, err
	}
	ho := &slog.HandlerOptions{Level: o.Level}
	var file slog.Handler = slog.NewTextHandler(w, ho)
	if o.JSON {
		file = slog.NewJSONHandler(w, ho)
	}
	handlers := []slog.Handler{file}
	closers := multiCloser{w}
	if h, c := openOSLog(max(o.Level, slog.LevelInfo)); h != nil {
		handlers = append(handlers, h)
		if c != nil {
			closers = append(closers, c)
		}
	}
	return slog.New(Fanout(handlers...)), closers, nil
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("logging: closing the logs: %w", err)
	}
	return nil
}
