package maintenance

import (
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/containers"
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

// A junk pack list the collector set aside, whichever timer's collection
// found it, raises one critical alert naming the object, its machine and
// the reason, and the removal goes on.
func TestQuarantinedListRaisesAnAlert(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(e *env) error
	}{
		{"purge", func(e *env) error { _, err := e.timers.PurgeSoftDeleted(e.ctx()); return err }},
		{"retention", func(e *env) error { _, err := e.timers.EnforceRetention(e.ctx()); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.machine(e.vault(false, 1), "pc-1", wire.MachineProtected, time.Time{})
			e.point(m, "expired", start.Add(-3*day))
			e.deletedPoint(m, "deleted", start.Add(-20*day), start.Add(-time.Hour))
			e.point(m, "new", start.Add(-time.Hour))
			e.blobs.quarantine[m.Container] = []containers.Quarantined{{Object: "refs/junk", Reason: "names another point"}}
			if err := tc.run(e); err != nil {
				t.Fatal(err)
			}
			if len(e.blobs.pointsDeleted(m.Container)) != 1 {
				t.Fatalf("points deleted %v, want one: the collection goes on", e.blobs.pointsDeleted(m.Container))
			}
			alerts := e.alerts.ofKind(wire.AlertCriticalOperation)
			if len(alerts) != 1 {
				t.Fatalf("alerts %+v, want one", alerts)
			}
			a := alerts[0]
			if a.Severity != wire.SeverityCritical || a.MachineID != m.ID || a.VaultID != m.VaultID ||
				!strings.Contains(a.Detail, "refs/junk") || !strings.Contains(a.Detail, "names another point") {
				t.Fatalf("alert %+v, want a critical one naming the object and the reason", a)
			}
		})
	}
}
