package maintenance

import (
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Retention applies the policy's effective retention to a protected
// machine's active points: the policy's days, raised to the security
// minimum (7 days) while the vault's security features are on. It never
// removes the newest point or one held by retainUntil, and leaves stopped
// and deleted machines, machines without a policy and soft-deleted points
// (the purge's) alone.
func TestRetentionEnforcesTheEffectiveRetention(t *testing.T) {
	type pt struct {
		id          string
		age         time.Duration
		retainUntil time.Duration // from now; 0: none
		deleted     bool
	}
	for _, tc := range []struct {
		name      string
		secure    bool
		dailyDays int
		state     string
		noPolicy  bool
		points    []pt
		expired   []string
	}{
		{"security off: the policy's 1 day", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 3 * day}, {id: "b", age: day}, {id: "c", age: 23 * time.Hour}, {id: "d", age: time.Hour}}, []string{"a", "b"}},
		{"security on: 1 day raised to the 7-day minimum", true, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 8 * day}, {id: "b", age: 3 * day}, {id: "c", age: time.Hour}}, []string{"a"}},
		{"security on: a policy beyond the minimum", true, 10, wire.MachineProtected, false,
			[]pt{{id: "a", age: 11 * day}, {id: "b", age: 8 * day}, {id: "c", age: time.Hour}}, []string{"a"}},
		{"the newest point is kept however old", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 100 * day}}, nil},
		{"the newest of old points is kept", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 100 * day}, {id: "b", age: 50 * day}}, []string{"a"}},
		{"retainUntil ahead holds a point", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 3 * day, retainUntil: time.Hour}, {id: "b", age: time.Hour}}, nil},
		{"retainUntil passed holds it no longer", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 3 * day, retainUntil: -time.Hour}, {id: "b", age: time.Hour}}, []string{"a"}},
		{"a soft-deleted point waits for the purge", false, 1, wire.MachineProtected, false,
			[]pt{{id: "a", age: 30 * day, deleted: true}, {id: "b", age: 3 * day}, {id: "c", age: time.Hour}}, []string{"b"}},
		{"a stopped machine keeps its points", false, 1, wire.MachineStopped, false,
			[]pt{{id: "a", age: 30 * day}, {id: "b", age: time.Hour}}, nil},
		{"a deleted machine waits for its purge", false, 1, wire.MachineDeleted, false,
			[]pt{{id: "a", age: 30 * day}, {id: "b", age: time.Hour}}, nil},
		{"a machine without a policy keeps everything", false, 1, wire.MachineProtected, true,
			[]pt{{id: "a", age: 30 * day}, {id: "b", age: time.Hour}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var purgeAfter time.Time
			if tc.state == wire.MachineDeleted {
				purgeAfter = start.Add(10 * day)
			}
			m := e.machine(e.vault(tc.secure, tc.dailyDays), "pc-1", tc.state, purgeAfter)
			if tc.noPolicy {
				m.Policy = ""
				e.put(m)
			}
			var all []string
			for _, p := range tc.points {
				all = append(all, p.id)
				if p.deleted {
					e.deletedPoint(m, p.id, start.Add(-p.age), start.Add(10*day))
					continue
				}
				e.point(m, p.id, start.Add(-p.age))
				if p.retainUntil != 0 {
					e.retain(m, p.id, start.Add(p.retainUntil))
				}
			}

			rep, err := e.timers.EnforceRetention(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			left := slices.DeleteFunc(sorted(all...), func(id string) bool { return slices.Contains(tc.expired, id) })
			if got := e.points.ids(m.ID); !slices.Equal(got, left) {
				t.Fatalf("points left %v, want %v", got, left)
			}
			if got := e.blobs.pointsDeleted(m.Container); !slices.Equal(got, sorted(tc.expired...)) {
				t.Fatalf("point objects deleted %v, want %v", got, tc.expired)
			}
			if rep.Expired != len(tc.expired) || len(rep.Skipped) != 0 {
				t.Fatalf("report %+v", rep)
			}
			if len(tc.expired) > 0 && !slices.Equal(e.blobs.collected, []string{m.Container}) {
				t.Fatalf("collected %v: unreferenced packs stay after expiry", e.blobs.collected)
			}
		})
	}
}

// A running job defers retention by at most the stale-job bound (2 hours
// here) from when the points became due: a point expired a month ago goes
// whatever the agent claims.
func TestRetentionDeferredByARunningJob(t *testing.T) {
	for _, tc := range []struct {
		name    string
		age     time.Duration // of the oldest point; the policy keeps 1 day
		running bool
		removed bool
	}{
		{"expired an hour ago, no job", day + time.Hour, false, true},
		{"expired an hour ago, a job running", day + time.Hour, true, false},
		{"expired a month ago, a job running", 31 * day, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.machine(e.vault(false, 1), "pc-1", wire.MachineProtected, time.Time{})
			e.point(m, "old", start.Add(-tc.age))
			e.point(m, "mid", start.Add(-3*time.Hour))
			e.point(m, "new", start.Add(-time.Hour))
			if tc.running {
				e.runningBackup(m)
			}
			rep, err := e.timers.EnforceRetention(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			if removed := !slices.Contains(e.points.ids(m.ID), "old"); removed != tc.removed {
				t.Fatalf("removed %v, want %v (report %+v)", removed, tc.removed, rep)
			}
			if wantSkipped := !tc.removed; (len(rep.Skipped) == 1) != wantSkipped {
				t.Fatalf("skipped %q, want skipped %v", rep.Skipped, wantSkipped)
			}
		})
	}
}

// An agent that keeps a job in progress for ever, reporting every minute,
// holds an expired point back for the stale-job bound and no longer.
func TestRetentionWaitsForARunningJobAtMostTheBound(t *testing.T) {
	e := newEnv(t)
	m := e.machine(e.vault(false, 1), "pc-1", wire.MachineProtected, time.Time{})
	e.point(m, "old", start.Add(-day)) // expires at start: the policy keeps a day
	e.point(m, "mid", start.Add(-3*time.Hour))
	e.point(m, "new", start.Add(-time.Hour))
	job := e.runningBackup(m)
	for _, step := range []struct {
		at      time.Duration // after the point expired
		removed bool
	}{
		{0, false},
		{time.Hour, false},
		{2*time.Hour - time.Second, false},
		{2 * time.Hour, true},
	} {
		e.at(start.Add(step.at))
		e.jobs.report(job.ID)
		rep, err := e.timers.EnforceRetention(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if removed := !slices.Contains(e.points.ids(m.ID), "old"); removed != step.removed {
			t.Fatalf("%s after expiry: removed %v, want %v (report %+v)", step.at, removed, step.removed, rep)
		}
	}
	if got := e.points.ids(m.ID); !slices.Equal(got, []string{"mid", "new"}) {
		t.Fatalf("points left %v", got)
	}
}
