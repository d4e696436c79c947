package logging

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// sinkHandler formats a record as "message k=v …" and hands it, with its
// level, to an OS log. The OS log stamps time and keeps the level itself, so
// the line carries neither.
type sinkHandler struct {
	level slog.Leveler
	text  slog.Handler // writes the attributes into shared.buf
	sh    *sinkShared
}

type sinkShared struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	sink func(slog.Level, string) error
}

func (s *sinkShared) Write(p []byte) (int, error) { return s.buf.Write(p) }

func newSinkHandler(level slog.Leveler, sink func(slog.Level, string) error) *sinkHandler {
	sh := &sinkShared{sink: sink}
	text := slog.NewTextHandler(sh, &slog.HandlerOptions{
		Level: slog.LevelDebug - 100, // the sinkHandler filters
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &sinkHandler{level: level, text: text, sh: sh}
}

func (h *sinkHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	h.sh.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	line := r.Message
	if attrs := strings.TrimSpace(h.sh.buf.String()); attrs != "" {
		line += " " + attrs
	}
	return h.sh.sink(r.Level, line)
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{level: h.level, text: h.text.WithAttrs(as), sh: h.sh}
}

func (h *sinkHandler) WithGroup(name string) slog.Handler {
	return &sinkHandler{level: h.level, text: h.text.WithGroup(name), sh: h.sh}
}

// journalSink writes lines with sd-daemon priority prefixes ("<3>…"), which
// journald reads from a service's stderr, so `journalctl -p warning` works.
func journalSink(w io.Writer) func(slog.Level, string) error {
	return func(l slog.Level, msg string) error {
		p := "<6>" // info
		switch {
		case l >= slog.LevelError:
			p = "<3>"
		case l >= slog.LevelWarn:
			p = "<4>"
		case l < slog.LevelInfo:
			p = "<7>"
		}
		_, err := io.WriteString(w, p+msg+"\n")
		return err
	}
}
