package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// TestLateOutcomeReplacesAgentSilent (issue 11, item 10): a machine cut off
// during a backup keeps its outcome and sends it when it is back. By then the
// monitor has failed the job as agent_silent and raised an alert. The late
// outcome replaces that failure: the job shows what really happened, and the
// silent-agent alert is acknowledged in the outcome's name, while a real
// failure still gets its own alert with the machine's reason.
func TestLateOutcomeReplacesAgentSilent(t *testing.T) {
	c := newCP(t, cpOptions{})
	ctx := ctxT(t)
	v := c.vault("late-outcomes")
	cr := c.credentials(v)
	done := c.mustRegister(cr, "branch-late-1")
	broke := c.mustRegister(cr, "branch-late-2")

	jobOf := func(a *agent) wire.Job {
		var j wire.Job
		_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
		must(t, err)
		return j
	}
	doneJob, brokeJob := jobOf(done), jobOf(broke)
	c.Clock.Advance(3 * time.Hour) // past the 2 h default of COFFER_STALE_JOB_AFTER
	_, err := c.App.Timers.MonitorBackups(ctx)
	must(t, err)

	silentAlert := func(a *agent, jobID string) wire.Alert {
		var as []wire.Alert
		_, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertJobFailed, nil, &as)
		must(t, err)
		for _, al := range as {
			if al.JobID == jobID && strings.Contains(al.Title, "stopped reporting") {
				return al
			}
		}
		t.Fatalf("no silent-agent alert for job %s in %+v", jobID, as)
		return wire.Alert{}
	}
	for _, p := range []struct {
		a *agent
		j wire.Job
	}{{done, doneJob}, {broke, brokeJob}} {
		if al := silentAlert(p.a, p.j.ID); al.Acknowledged {
			t.Fatalf("silent-agent alert acknowledged before any outcome: %+v", al)
		}
	}

	// The outcomes arrive an hour later.
	c.Clock.Advance(time.Hour)
	var got wire.Job
	_, err = done.Do(ctx, "POST", "/api/v1/agent/jobs/"+doneJob.ID, wire.JobReport{Status: wire.StatusCompleted,
		Progress: wire.Progress{FilesDone: 5, FilesTotal: 5}}, &got)
	must(t, err)
	if got.Status != wire.StatusCompleted || got.ErrorCode != "" {
		t.Fatalf("job after its late outcome: %+v", got)
	}
	_, err = broke.Do(ctx, "POST", "/api/v1/agent/jobs/"+brokeJob.ID, wire.JobReport{Status: wire.StatusFailed,
		ErrorCode: "source_missing", Message: "D: was unplugged"}, &got)
	must(t, err)
	if got.Status != wire.StatusFailed || got.ErrorCode != "source_missing" {
		t.Fatalf("job after its late failure: %+v", got)
	}

	// The alert is set right after the answer; wait for it.
	for _, p := range []struct {
		a       *agent
		jobID   string
		outcome string
	}{{done, doneJob.ID, wire.StatusCompleted}, {broke, brokeJob.ID, wire.StatusFailed}} {
		al := waitFor(t, ctx, func() (wire.Alert, bool) {
			al := silentAlert(p.a, p.jobID)
			return al, al.Acknowledged
		})
		if !strings.Contains(al.AcknowledgedBy, p.outcome) {
			t.Errorf("silent-agent alert of job %s acknowledged by %q, want the outcome %s named", p.jobID, al.AcknowledgedBy, p.outcome)
		}
	}
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertJobFailed, nil, &as)
	must(t, err)
	real := 0
	for _, al := range as {
		if al.JobID == brokeJob.ID && !al.Acknowledged && strings.Contains(al.Detail, "source_missing") {
			real++
		}
		if al.JobID == doneJob.ID && !al.Acknowledged {
			t.Errorf("the completed job still has an open failure alert: %+v", al)
		}
	}
	if real != 1 {
		t.Fatalf("want one open alert with the machine's own reason for job %s, got %+v", brokeJob.ID, as)
	}
}

// waitFor polls f until it says done or ctx ends.
func waitFor[T any](t *testing.T, ctx context.Context, f func() (T, bool)) T {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, ok := f(); ok {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met: %v", ctx.Err())
		case <-tick.C:
		}
	}
}
