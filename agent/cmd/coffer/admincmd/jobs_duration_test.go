package admincmd

import (
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

func TestJobDuration(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ended := start.Add(90 * time.Second)
	for _, tc := range []struct {
		name string
		job  wire.Job
		now  time.Time
		want string
	}{
		{"running: now minus start, not the last report",
			wire.Job{Status: wire.StatusInProgress, StartedAt: start, UpdatedAt: start.Add(30 * time.Second)}, start.Add(5 * time.Minute), "5m0s"},
		{"running, local clock behind the server's: up to the last report",
			wire.Job{Status: wire.StatusInProgress, StartedAt: start, UpdatedAt: start.Add(time.Minute)}, start.Add(-time.Hour), "1m0s"},
		{"ended: end minus start, whatever the time now",
			wire.Job{Status: wire.StatusCompleted, StartedAt: start, UpdatedAt: ended, EndedAt: &ended}, start.Add(24 * time.Hour), "1m30s"},
		{"failed by the monitor without an end: the last report",
			wire.Job{Status: wire.StatusFailed, StartedAt: start, UpdatedAt: start.Add(2 * time.Hour)}, start.Add(48 * time.Hour), "2h0m0s"},
		{"times out of order",
			wire.Job{Status: wire.StatusCompleted, StartedAt: start, UpdatedAt: start.Add(-time.Second)}, start, "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := jobDuration(tc.job, tc.now); got != tc.want {
				t.Errorf("jobDuration = %q, want %q", got, tc.want)
			}
		})
	}
}
