package maintenance

import (
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/retention"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Retention's deferral by a running job is measured from when the points
// became due: a point that was already expired a stale-job bound ago is
// removed whatever the agent claims; one that just expired may wait.
func TestRetentionDue(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tm := &Timers{StaleAfter: 2 * time.Hour}
	r := policy.Retention{DailyDays: 7}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name string
		age  time.Duration // of the expired point
		want time.Time
	}{
		{"expired an hour ago", 7*day + time.Hour, now},
		{"expired a stale-job bound ago", 7*day + 2*time.Hour + time.Minute, now.Add(-2 * time.Hour)},
		{"expired a month ago", 37 * day, now.Add(-2 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A backup three hours ago and one an hour ago: the old point
			// was not the newest (which retention always keeps) a bound ago.
			old := wire.Point{ID: "old", Time: now.Add(-tc.age)}
			ps := []wire.Point{old, {ID: "mid", Time: now.Add(-3 * time.Hour)}, {ID: "new", Time: now.Add(-time.Hour)}}
			// The oracle: the policy drops the old point now.
			var in []retention.Point
			for _, p := range ps {
				in = append(in, retention.Point{ID: p.ID, Time: p.Time})
			}
			if ds := retention.Apply(in, r, time.UTC, now); ds[0].Keep || !ds[1].Keep || !ds[2].Keep {
				t.Fatalf("set-up: decisions %+v", ds)
			}
			if got := tm.retentionDue(ps, ps[:1], r, time.UTC, now); !got.Equal(tc.want) {
				t.Fatalf("due %v, want %v", got, tc.want)
			}
		})
	}
}

// A point kept until a date is not due before that date, so deferral is
// measured from then, not from when the policy alone would drop it. (The
// newest point is always kept, so a point only falls due once a newer one
// exists: that is when it became due, too.)
func TestRetentionDueHonoursRetainUntil(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tm := &Timers{StaleAfter: 2 * time.Hour}
	r := policy.Retention{DailyDays: 7}
	until := now.Add(-time.Hour) // the hold ended an hour ago
	old := wire.Point{ID: "old", Time: now.Add(-30 * 24 * time.Hour), RetainUntil: &until}
	ps := []wire.Point{old, {ID: "mid", Time: now.Add(-3 * time.Hour)}, {ID: "new", Time: now.Add(-time.Hour)}}
	if got := tm.retentionDue(ps, ps[:1], r, time.UTC, now); !got.Equal(now) {
		t.Fatalf("due %v, want now: the hold ended less than a bound ago", got)
	}
}

func TestStaleAfterDefault(t *testing.T) {
	if (&Timers{}).staleAfter() != DefaultStaleAfter || (&Timers{StaleAfter: time.Minute}).staleAfter() != time.Minute {
		t.Fatal("stale-job bound")
	}
}
