package repository

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// A backup that finishes while a prune holds the lock waits for the prune
// (up to PruneWait) instead of throwing its work away, and says so once.
func TestSavePointWaitsForARunningPrune(t *testing.T) {
	defer func(p time.Duration) { pruneWaitPoll = p }(pruneWaitPoll)
	pruneWaitPoll = time.Millisecond

	for _, tc := range []struct {
		name string
		// end is what happens once the backup is seen waiting.
		end     func(release func(context.Context) error, cancel context.CancelFunc, clock *atomic.Int64)
		wantErr string // "" for a saved point
	}{
		{"the prune finishes", func(release func(context.Context) error, _ context.CancelFunc, _ *atomic.Int64) {
			release(context.Background())
		}, ""},
		{"the prune outlasts the wait", func(_ func(context.Context) error, _ context.CancelFunc, clock *atomic.Int64) {
			clock.Add(int64(20 * time.Minute)) // past the wait, within PruneLockStale
		}, "still ran after 10m0s of waiting"},
		{"the user gives up", func(_ func(context.Context) error, cancel context.CancelFunc, _ *atomic.Int64) {
			cancel()
		}, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New(t.Name())
			var clock atomic.Int64 // nanoseconds past start
			start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			now := func() time.Time { return start.Add(time.Duration(clock.Load())) }
			kdf := &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1}
			pass := []byte("a test passphrase, long enough")
			if _, err := Init(t.Context(), be, pass, Options{KDF: kdf, Now: now}); err != nil {
				t.Fatal(err)
			}
			waiting := make(chan PruneLockInfo, 1)
			backup, err := Open(t.Context(), be, pass, Options{Now: now, PruneWait: 10 * time.Minute, PruneWaiting: func(l PruneLockInfo) { waiting <- l }})
			if err != nil {
				t.Fatal(err)
			}
			pruner, err := Open(t.Context(), be, pass, Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			release, err := pruner.AcquirePruneLock(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer release(context.Background())

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p := &Point{Time: now(), Paths: []string{"/x"}}
			saved := make(chan error, 1)
			go func() { saved <- backup.SavePoint(ctx, p, nil) }()
			var held PruneLockInfo
			select {
			case held = <-waiting:
			case err := <-saved:
				t.Fatalf("SavePoint returned %v without waiting for the prune", err)
			}
			if b, _ := json.Marshal(held); !strings.Contains(string(b), `"pid"`) || held.Hostname == "" {
				t.Errorf("told of the prune as %s", b)
			}
			tc.end(release, cancel, &clock)
			err = <-saved
			refs := 0
			be.List(t.Context(), layout.RefsPrefix, func(storage.Info) error { refs++; return nil })
			if tc.wantErr == "" {
				if err != nil || p.ID == "" {
					t.Fatalf("after the prune: %v", err)
				}
				if refs != 1 {
					t.Errorf("%d pack lists, want the saved point's", refs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SavePoint answered %v, want an error saying %q", err, tc.wantErr)
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrConcurrentPrune) {
				t.Errorf("%v is neither a cancellation nor ErrConcurrentPrune", err)
			}
			if refs != 0 {
				t.Errorf("the refused point left %d pack lists", refs)
			}
		})
	}
}
