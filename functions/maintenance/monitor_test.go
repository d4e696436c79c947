package maintenance

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// A job in progress whose agent sent nothing for longer than the stale-job
// bound is failed as agent_silent, with a critical alert naming it; a job
// that reported within the bound, or that has ended, is left alone.
func TestMonitorFailsStaleJobs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		staleAfter time.Duration // 0: the default, 2 hours
		status     string
		silent     time.Duration // since the last report
		failed     bool
	}{
		{"silent for less than the bound", 0, wire.StatusInProgress, 2*time.Hour - time.Minute, false},
		{"silent for the bound exactly", 0, wire.StatusInProgress, 2 * time.Hour, false},
		{"silent for longer than the bound", 0, wire.StatusInProgress, 2*time.Hour + time.Minute, true},
		{"silent for a week", 0, wire.StatusInProgress, 7 * day, true},
		{"ended long ago", 0, wire.StatusCompleted, 7 * day, false},
		{"a shorter bound set", 30 * time.Minute, wire.StatusInProgress, 31 * time.Minute, true},
		{"within a longer bound set", 6 * time.Hour, wire.StatusInProgress, 5 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.timers.StaleAfter = tc.staleAfter
			m := e.machine(e.vault(true, 7), "pc-1", wire.MachineProtected, time.Time{})
			j := e.jobs.add(wire.Job{VaultID: m.VaultID, MachineID: m.ID, MachineName: m.Name, Type: wire.JobBackup,
				Status: tc.status, StartedAt: start.Add(-tc.silent - time.Hour), UpdatedAt: start.Add(-tc.silent)})

			rep, err := e.timers.MonitorBackups(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			got := e.jobs.get(j.ID)
			if failed := got.Status == wire.StatusFailed; failed != tc.failed {
				t.Fatalf("job %s, want failed %v", got.Status, tc.failed)
			}
			alerts := e.alerts.ofKind(wire.AlertJobFailed)
			if !tc.failed {
				if len(alerts) != 0 || rep.FailedJobs != 0 {
					t.Fatalf("alerts %+v, report %+v", alerts, rep)
				}
				return
			}
			if got.ErrorCode != "agent_silent" || rep.FailedJobs != 1 {
				t.Fatalf("job %+v, report %+v", got, rep)
			}
			if len(alerts) != 1 || alerts[0].Severity != wire.SeverityCritical || alerts[0].JobID != j.ID || alerts[0].MachineID != m.ID {
				t.Fatalf("alerts %+v, want one critical naming the job", alerts)
			}
		})
	}
}

// A backup scheduled at 02:00 that has not started by the end of the
// hour's grace raises a missed-backup warning; a backup started up to half
// an hour early counts. Machines whose protection is stopped or whose data
// is deleted run no backups and raise none, nor does a run before the
// machine registered.
func TestMonitorRaisesMissedBackups(t *testing.T) {
	today := func(h, m int) time.Time { return time.Date(2026, 12, 4, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name       string
		state      string
		at         time.Time
		job        string    // type of a job started at jobAt; "" for none
		jobAt      time.Time //
		registered time.Time // zero: a month ago
		missed     bool
	}{
		{"within the grace", wire.MachineProtected, today(2, 59), "", time.Time{}, time.Time{}, false},
		{"grace over", wire.MachineProtected, today(3, 0), "", time.Time{}, time.Time{}, true},
		{"grace over, the backup started on time", wire.MachineProtected, today(3, 1), wire.JobBackup, today(2, 0), time.Time{}, false},
		{"grace over, the backup started late within it", wire.MachineProtected, today(3, 1), wire.JobBackup, today(2, 50), time.Time{}, false},
		{"grace over, a backup started half an hour early", wire.MachineProtected, today(3, 1), wire.JobBackup, today(1, 30), time.Time{}, false},
		{"grace over, the last backup long before", wire.MachineProtected, today(3, 1), wire.JobBackup, today(1, 29), time.Time{}, true},
		{"grace over, only a restore ran", wire.MachineProtected, today(3, 1), wire.JobRestore, today(2, 0), time.Time{}, true},
		{"registered after the scheduled time", wire.MachineProtected, today(3, 1), "", time.Time{}, today(2, 30), false},
		{"protection stopped", wire.MachineStopped, today(3, 1), "", time.Time{}, time.Time{}, false},
		{"data deleted", wire.MachineDeleted, today(3, 1), "", time.Time{}, time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.at(tc.at)
			var purgeAfter time.Time
			if tc.state == wire.MachineDeleted {
				purgeAfter = start.Add(10 * day)
			}
			m := e.machine(e.vault(true, 7), "pc-1", tc.state, purgeAfter)
			if !tc.registered.IsZero() {
				m.RegisteredAt = tc.registered
				e.put(m)
			}
			// Yesterday's backup ran: only today's run is in question.
			e.jobs.add(wire.Job{VaultID: m.VaultID, MachineID: m.ID, MachineName: m.Name, Type: wire.JobBackup,
				Status: wire.StatusCompleted, StartedAt: today(2, 0).Add(-day)})
			if tc.job != "" {
				e.jobs.add(wire.Job{VaultID: m.VaultID, MachineID: m.ID, MachineName: m.Name, Type: tc.job,
					Status: wire.StatusCompleted, StartedAt: tc.jobAt})
			}

			rep, err := e.timers.MonitorBackups(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			alerts := e.alerts.ofKind(wire.AlertMissedBackup)
			if missed := len(alerts) > 0; missed != tc.missed || rep.MissedBackups != len(alerts) {
				t.Fatalf("alerts %+v, report %+v; want missed %v", alerts, rep, tc.missed)
			}
			if tc.missed && (len(alerts) != 1 || alerts[0].Severity != wire.SeverityWarning || alerts[0].MachineID != m.ID) {
				t.Fatalf("alerts %+v, want one warning naming the machine", alerts)
			}
		})
	}
}

// Each scheduled run that was missed raises one alert, however often the
// monitor runs (every 15 minutes).
func TestMonitorRaisesOneAlertPerMissedRun(t *testing.T) {
	e := newEnv(t)
	e.machine(e.vault(true, 7), "pc-1", wire.MachineProtected, time.Time{})
	for _, step := range []struct {
		at   time.Time
		want int
	}{
		{time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC), 1},
		{time.Date(2026, 12, 4, 3, 15, 0, 0, time.UTC), 1},
		{time.Date(2026, 12, 4, 23, 45, 0, 0, time.UTC), 1},
		{time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC), 2},
		{time.Date(2026, 12, 5, 3, 15, 0, 0, time.UTC), 2},
	} {
		e.at(step.at)
		if _, err := e.timers.MonitorBackups(e.ctx()); err != nil {
			t.Fatal(err)
		}
		if got := len(e.alerts.ofKind(wire.AlertMissedBackup)); got != step.want {
			t.Fatalf("at %s: %d missed-backup alerts, want %d", step.at.Format(time.RFC3339), got, step.want)
		}
	}
}

// A vault is reminded of its machines whose protection is stopped with one
// warning listing them all, at most once a day: a protection_stopped alert
// within the last 24 hours (the stop's own, or the last reminder) holds
// the next one back. A vault with no stopped machine gets none.
func TestMonitorRemindsOfStoppedMachinesDaily(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stopped time.Duration // the stop's own alert, before start; 0: none
		steps   []time.Duration
		want    []int // reminders after each step
	}{
		{"no recent stop alert", 0,
			[]time.Duration{0, 15 * time.Minute, day, day + 15*time.Minute, 2*day + 15*time.Minute, 2*day + 30*time.Minute},
			[]int{1, 1, 1, 2, 2, 3}},
		{"stopped an hour ago", time.Hour,
			[]time.Duration{0, 15 * time.Minute, 23 * time.Hour, 23*time.Hour + 15*time.Minute},
			[]int{0, 0, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.vault(true, 7)
			a := e.machine(v, "pc-a", wire.MachineStopped, time.Time{})
			b := e.machine(v, "pc-b", wire.MachineStopped, time.Time{})
			e.machine(v, "pc-c", wire.MachineProtected, time.Time{})
			quiet := e.vault(true, 7) // its only machine is protected
			e.machine(quiet, "pc-d", wire.MachineProtected, time.Time{})
			if tc.stopped > 0 {
				e.at(start.Add(-tc.stopped))
				e.raise(wire.Alert{VaultID: v.ID, MachineID: a.ID, Severity: wire.SeverityWarning, Kind: wire.AlertProtectionStopped,
					Title: "Protection of pc-a stopped"})
			}
			for i, step := range tc.steps {
				e.at(start.Add(step))
				rep, err := e.timers.MonitorBackups(e.ctx())
				if err != nil {
					t.Fatal(err)
				}
				var reminders []wire.Alert
				for _, al := range e.alerts.ofKind(wire.AlertProtectionStopped) {
					if al.VaultID == quiet.ID {
						t.Fatalf("vault without stopped machines reminded: %+v", al)
					}
					if al.MachineID == "" { // the stop's own alert names its machine
						reminders = append(reminders, al)
					}
				}
				if len(reminders) != tc.want[i] {
					t.Fatalf("%s after start: %d reminders, want %d", step, len(reminders), tc.want[i])
				}
				sent := i == 0 && tc.want[0] == 1 || i > 0 && tc.want[i] > tc.want[i-1]
				if (rep.StoppedDigests == 1) != sent {
					t.Fatalf("%s after start: report %+v, want a digest %v", step, rep, sent)
				}
				if sent {
					last := reminders[len(reminders)-1]
					if last.Severity != wire.SeverityWarning || !strings.Contains(last.Detail, a.Name+" ("+a.ID+")") ||
						!strings.Contains(last.Detail, b.Name+" ("+b.ID+")") || strings.Contains(last.Detail, "pc-c") {
						t.Fatalf("reminder %+v, want a warning naming pc-a and pc-b only", last)
					}
				}
			}
		})
	}
}

// The monitor sweeps PINs and their lock-outs an hour after they lapse,
// and nonces once a signed timestamp that old could no longer be accepted.
func TestMonitorSweepsPINsAndNonces(t *testing.T) {
	e := newEnv(t)
	if _, err := e.timers.MonitorBackups(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.pins.cutoffs, []time.Time{start.Add(-time.Hour)}) {
		t.Fatalf("PIN sweep cutoffs %v", e.pins.cutoffs)
	}
	if !slices.Equal(e.nonces.cutoffs, []time.Time{start.Add(-2 * reqsign.Window)}) {
		t.Fatalf("nonce sweep cutoffs %v", e.nonces.cutoffs)
	}
}

// raise stores an alert as raised now, as an API handler would.
func (e *env) raise(a wire.Alert) {
	if _, err := e.alerts.Raise(e.ctx(), a); err != nil {
		e.t.Fatal(err)
	}
}

// fakeApprovals hands out interrupted runs once and records the cutoffs.
type fakeApprovals struct {
	cut           []approvals.Stored
	interruptedAt []time.Time
	sweptBefore   []time.Time
}

func (f *fakeApprovals) MarkInterrupted(_ context.Context, cutoff time.Time) ([]approvals.Stored, error) {
	f.interruptedAt = append(f.interruptedAt, cutoff)
	out := f.cut
	f.cut = nil
	return out, nil
}

func (f *fakeApprovals) Sweep(_ context.Context, cutoff time.Time) (int, error) {
	f.sweptBefore = append(f.sweptBefore, cutoff)
	return 0, nil
}

// An approved operation whose run never finished raises one critical
// alert saying it will not run again; requests over for a year are swept.
func TestMonitorReportsInterruptedApprovals(t *testing.T) {
	e := newEnv(t)
	v := e.vault(true, 7)
	fa := &fakeApprovals{cut: []approvals.Stored{{Approval: wire.Approval{ID: "a1", VaultID: v.ID, Operation: "delete backup data of pc-1",
		Method: "POST", Path: "/vaults/" + v.ID + "/machines/m/stop", RequestedBy: "ann", DecidedBy: "bob", Status: wire.ApprovalFailed}}}}
	e.timers.Approvals = fa
	for range 2 {
		if _, err := e.timers.MonitorBackups(e.ctx()); err != nil {
			t.Fatal(err)
		}
	}
	var raised []wire.Alert
	for _, a := range e.alerts.raised {
		if strings.Contains(a.Title, "interrupted") {
			raised = append(raised, a)
		}
	}
	if len(raised) != 1 || raised[0].Severity != wire.SeverityCritical || raised[0].VaultID != v.ID ||
		!strings.Contains(raised[0].Detail, "will not run again") || !strings.Contains(raised[0].Detail, "a1") {
		t.Fatalf("alerts for the interrupted run: %+v", raised)
	}
	if want := start.Add(-approvals.InterruptedAfter); len(fa.interruptedAt) != 2 || !fa.interruptedAt[0].Equal(want) {
		t.Errorf("asked for runs cut off before %v, want %v", fa.interruptedAt, want)
	}
	if want := start.Add(-approvals.KeepDecided); len(fa.sweptBefore) != 2 || !fa.sweptBefore[0].Equal(want) {
		t.Errorf("swept requests before %v, want %v", fa.sweptBefore, want)
	}
}
