package logging

import (
	"context"
	"errors"
	"log/slog"
)

// fanout hands each record to every handler that wants its level.
type fanout []slog.Handler

// Fanout returns a handler that sends each record to each of hs that is
// enabled for the record's level; each keeps its own level and format.
func Fanout(hs ...slog.Handler) slog.Handler {
	return fanout(append([]slog.Handler(nil), hs...))
}

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if !h.Enabled(ctx, r.Level) {
			continue
		}
		// A clone each, so one handler adding attributes can't affect another.
		if err := h.Handle(ctx, r.Clone()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
