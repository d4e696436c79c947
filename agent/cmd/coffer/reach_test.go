package main

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// statBackend answers Stat with stat, and the rest as an empty repository.
type statBackend struct {
	storage.Backend
	stat func(ctx context.Context) error
}

func (b statBackend) Stat(ctx context.Context, _ string) (storage.Info, error) {
	return storage.Info{}, b.stat(ctx)
}

// TestReachBoundsTheFirstContact uses a bounded policy (reachWithin set to
// milliseconds) in place of the 15 s: a storage that never answers, as a
// host that drops packets, fails with one message once the bound passes.
func TestReachBoundsTheFirstContact(t *testing.T) {
	old := reachWithin
	reachWithin = 20 * time.Millisecond
	t.Cleanup(func() { reachWithin = old })
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		stat func(ctx context.Context) error
		want string // "" for no error
	}{
		{"no answer", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, "cannot reach the storage at mem:reach: no answer within 20ms; check the address"},
		{"refused, after the wrapper's tries", func(context.Context) error { return refused }, "connection refused"},
		{"reached, no repository yet", func(context.Context) error { return storage.ErrNotFound }, ""},
		{"reached", func(context.Context) error { return nil }, ""},
		{"reached, SAS without read", func(context.Context) error { return storage.ErrPermission }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := reach(t.Context(), statBackend{mem.New("reach"), tc.stat})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("reach: %v, want %q", err, tc.want)
			}
		})
	}
	// Stopped by Ctrl-C: not reported as unreachable.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := reach(ctx, statBackend{mem.New("reach"), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}); err != nil {
		t.Fatalf("reach after Ctrl-C: %v", err)
	}
}
