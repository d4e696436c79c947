package repository_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// A prune lock is taken over only when its holder is known to be gone:
// a process of this host that no longer exists, or a holder that has not
// refreshed it for PruneLockStale. Backups ignore such a lock too.
func TestPruneLockTakeover(t *testing.T) {
	host, _ := os.Hostname()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const gonePID = 1<<22 + 1 // above Linux's largest PID
	for _, tc := range []struct {
		name     string
		held     repository.PruneLockInfo
		takeover bool
	}{
		{"live process of this host", repository.PruneLockInfo{Hostname: host, PID: os.Getpid(), Time: now.Add(-time.Hour), Refreshed: now.Add(-time.Minute)}, false},
		{"gone process of this host", repository.PruneLockInfo{Hostname: host, PID: gonePID, Time: now.Add(-time.Minute)}, true},
		{"other host, refreshed lately", repository.PruneLockInfo{Hostname: "elsewhere", PID: 7, Time: now.Add(-2 * time.Hour), Refreshed: now.Add(-time.Minute)}, false},
		{"other host, just begun", repository.PruneLockInfo{Hostname: "elsewhere", PID: 7, Time: now.Add(-time.Minute)}, false},
		{"other host, silent too long", repository.PruneLockInfo{Hostname: "elsewhere", PID: 7, Time: now.Add(-2 * time.Hour), Refreshed: now.Add(-repository.PruneLockStale - time.Second)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := mem.New(t.Name())
			r, err := repository.Init(t.Context(), be, []byte(passphrase), repository.Options{KDF: cheapKDF, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(tc.held)
			if err := be.Create(t.Context(), repository.PruneLock, b); err != nil {
				t.Fatal(err)
			}
			// A backup's point is refused exactly when the lock holds.
			p := &repository.Point{Time: now, Paths: []string{"/x"}}
			err = r.SavePoint(t.Context(), p, nil)
			if tc.takeover != (err == nil) || err != nil && !errors.Is(err, repository.ErrConcurrentPrune) {
				t.Errorf("a point saved beside the lock: %v", err)
			}
			release, err := r.AcquirePruneLock(t.Context())
			if !tc.takeover {
				if !errors.Is(err, repository.ErrPruneRunning) {
					t.Fatalf("lock taken from a live holder: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a stale lock was not taken over: %v", err)
			}
			got, err := storage.ReadAll(t.Context(), be, repository.PruneLock)
			var info repository.PruneLockInfo
			if err != nil || json.Unmarshal(got, &info) != nil || info.PID != os.Getpid() || !info.Time.Equal(now) {
				t.Fatalf("the lock now says %s (%v)", got, err)
			}
			if err := release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := be.Stat(t.Context(), repository.PruneLock); !storage.IsNotFound(err) {
				t.Fatalf("lock left after release: %v", err)
			}
		})
	}
}
