package maintenance

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// A machine whose data is deleted is purged whole at its purge date, even
// while an agent claims a job (the claim is the agent's, and a compromised
// agent would claim for ever); nothing else is ever purged whole: not a
// stopped machine, not one undeleted back to stopped, not one whose purge
// date is still ahead.
func TestPurgeTakesDeletedMachinesOnTime(t *testing.T) {
	for _, tc := range []struct {
		name       string
		state      string
		purgeAfter time.Time // zero: none
		running    bool
		purged     bool
	}{
		{"deleted, purge date passed", wire.MachineDeleted, start.Add(-time.Minute), false, true},
		{"deleted, purge date now", wire.MachineDeleted, start, false, true},
		{"deleted, purge date passed, a job running", wire.MachineDeleted, start.Add(-time.Minute), true, true},
		{"deleted, purge date a month ago, a job running", wire.MachineDeleted, start.Add(-30 * day), true, true},
		{"deleted, purge date a minute ahead", wire.MachineDeleted, start.Add(time.Minute), false, false},
		{"undeleted (stopped, data retained)", wire.MachineStopped, time.Time{}, false, false},
		// The state decides, not a date left on the record.
		{"stopped with a leftover purge date", wire.MachineStopped, start.Add(-day), false, false},
		{"protected with a leftover purge date", wire.MachineProtected, start.Add(-day), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.vault(true, 7)
			m := e.machine(v, "pc-1", tc.state, tc.purgeAfter)
			e.point(m, "a", start.Add(-3*day))
			e.deletedPoint(m, "b", start.Add(-2*day), start.Add(day))
			other := e.machine(v, "pc-2", wire.MachineProtected, time.Time{})
			e.point(other, "c", start.Add(-day))
			if tc.running {
				e.runningBackup(m)
			}

			rep, err := e.timers.PurgeSoftDeleted(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			_, kept := e.reg.machine(m.ID)
			if kept == tc.purged || e.blobs.containerDeleted(m.Container) != tc.purged {
				t.Fatalf("record kept %v, container deleted %v; want purged %v", kept, e.blobs.containerDeleted(m.Container), tc.purged)
			}
			want, wantMachines := []string{"a", "b"}, 0
			if tc.purged {
				want, wantMachines = nil, 1
			}
			if got := e.points.ids(m.ID); !slices.Equal(got, want) {
				t.Fatalf("point records left %v, want %v", got, want)
			}
			if rep.Machines != wantMachines || len(rep.Skipped) != 0 {
				t.Fatalf("report %+v", rep)
			}
			if e.blobs.containerDeleted(other.Container) || !slices.Equal(e.points.ids(other.ID), []string{"c"}) {
				t.Fatal("the other machine was touched")
			}
		})
	}
}

// A soft-deleted point is purged (objects, record, then the packs no
// remaining point names) once its purge date has come, and not before; an
// active point never is. A running job defers the purge by at most the
// stale-job bound (2 hours here) past the purge date.
func TestPurgeTakesSoftDeletedPointsOnTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		state   string
		purgeIn time.Duration // purge date, from now
		running bool
		purged  bool
	}{
		{"purge date passed", wire.MachineProtected, -time.Minute, false, true},
		{"purge date now", wire.MachineProtected, 0, false, true},
		{"purge date a minute ahead", wire.MachineProtected, time.Minute, false, false},
		{"purge date 13 days ahead", wire.MachineProtected, 13 * day, false, false},
		{"stopped machine, purge date passed", wire.MachineStopped, -time.Minute, false, true},
		{"a job running, purge date an hour ago", wire.MachineProtected, -time.Hour, true, false},
		{"a job running, purge date a stale-job bound ago", wire.MachineProtected, -2 * time.Hour, true, true},
		{"a job running, purge date a week ago", wire.MachineProtected, -7 * day, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			m := e.machine(e.vault(true, 7), "pc-1", tc.state, time.Time{})
			e.point(m, "old", start.Add(-60*day)) // active, however old
			e.deletedPoint(m, "del", start.Add(-20*day), start.Add(tc.purgeIn))
			e.point(m, "new", start.Add(-day))
			if tc.running {
				e.runningBackup(m)
			}

			rep, err := e.timers.PurgeSoftDeleted(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			wantLeft, wantObjects, wantCollected, wantSkipped := []string{"del", "new", "old"}, []string(nil), 0, 0
			if tc.purged {
				wantLeft, wantObjects, wantCollected = []string{"new", "old"}, []string{"del"}, 1
			} else if tc.running {
				wantSkipped = 1
			}
			if got := e.points.ids(m.ID); !slices.Equal(got, wantLeft) {
				t.Fatalf("point records left %v, want %v", got, wantLeft)
			}
			if got := e.blobs.pointsDeleted(m.Container); !slices.Equal(got, wantObjects) {
				t.Fatalf("point objects deleted %v, want %v", got, wantObjects)
			}
			if len(e.blobs.collected) != wantCollected || len(rep.Skipped) != wantSkipped || rep.Points != len(wantObjects) {
				t.Fatalf("collections %v, report %+v", e.blobs.collected, rep)
			}
			if _, ok := e.reg.machine(m.ID); !ok || e.blobs.containerDeleted(m.Container) {
				t.Fatal("the machine went with its point")
			}
		})
	}
}

// An agent that keeps a job in progress for ever, reporting every minute,
// holds a due point back for the stale-job bound past its purge date and no
// longer.
func TestPurgeWaitsForARunningJobAtMostTheBound(t *testing.T) {
	e := newEnv(t)
	m := e.machine(e.vault(true, 7), "pc-1", wire.MachineProtected, time.Time{})
	e.deletedPoint(m, "del", start.Add(-20*day), start)
	e.point(m, "keep", start.Add(-day))
	job := e.runningBackup(m)
	for _, step := range []struct {
		at     time.Duration // after the purge date
		purged bool
	}{
		{0, false},
		{time.Hour, false},
		{2*time.Hour - time.Second, false},
		{2 * time.Hour, true},
	} {
		e.at(start.Add(step.at))
		e.jobs.report(job.ID)
		rep, err := e.timers.PurgeSoftDeleted(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if purged := !slices.Contains(e.points.ids(m.ID), "del"); purged != step.purged {
			t.Fatalf("%s after the purge date: purged %v, want %v (report %+v)", step.at, purged, step.purged, rep)
		}
		if !step.purged && (len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0], "a job is running")) {
			t.Fatalf("%s after the purge date: skipped %q, want the running job named", step.at, rep.Skipped)
		}
	}
	if got := e.points.ids(m.ID); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("points left %v", got)
	}
}

// fakeRevoker records the roles taken back, and fails while told to.
type fakeRevoker struct {
	revoked []string // secret + " " + principal
	fail    error
}

func (f *fakeRevoker) Revoke(_ context.Context, secret, principal string) error {
	if f.fail != nil {
		return f.fail
	}
	f.revoked = append(f.revoked, secret+" "+principal)
	return nil
}

// A purged machine's Key Vault identity loses its role on the passphrase
// secret before the machine's record, the only note of that identity,
// goes; if the role cannot be taken back, the record stays for the next
// run. A machine that gave no identity needs nothing revoked.
func TestPurgeTakesBackTheMachinesKeyVaultRole(t *testing.T) {
	e := newEnv(t)
	kv := &fakeRevoker{fail: errors.New("Resource Manager is unreachable")}
	e.timers.KeyVault = kv
	v := e.vault(true, 7)
	m := e.machine(v, "pc-1", wire.MachineDeleted, start.Add(-time.Minute))
	m.KeyVaultPrincipal = "aaaaaaaa-0000-4000-8000-00000000000a"
	e.put(m)
	bare := e.machine(v, "pc-2", wire.MachineDeleted, start.Add(-time.Minute))

	if _, err := e.timers.PurgeSoftDeleted(e.ctx()); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("purge with Resource Manager down: %v", err)
	}
	if _, kept := e.reg.machine(m.ID); !kept {
		t.Fatal("the record went though its identity kept its role: nothing could revoke it later")
	}
	if _, kept := e.reg.machine(bare.ID); kept {
		t.Error("a machine without a Key Vault identity waited for Resource Manager")
	}
	kv.fail = nil
	if _, err := e.timers.PurgeSoftDeleted(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if _, kept := e.reg.machine(m.ID); kept {
		t.Fatal("the machine was not purged once its role was revoked")
	}
	if want := []string{registry.SecretName(m.ID) + " " + m.KeyVaultPrincipal}; !slices.Equal(kv.revoked, want) {
		t.Fatalf("revoked %v, want %v", kv.revoked, want)
	}
}
