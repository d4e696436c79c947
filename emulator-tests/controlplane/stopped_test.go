package controlplane

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// An Operator stopping protection is not silent (issue 10, row 9): the stop
// raises a warning, the monitor reminds the vault daily while the machine
// stays stopped (it raises no missed-backup alerts for it), and the machine
// gets no SAS that can create and cannot add points.
func TestStoppedProtectionIsAlertedRemindedAndReadOnly(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("stopped")
	a := c.mustRegister(c.credentials(v), "branch-10")
	ctx := ctxT(t)
	pol := goodPolicy()
	pol.Schedule = policy.Schedule{Frequency: policy.FrequencyDaily, Times: []string{"21:00"}, TimeZone: "UTC"}
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/nightly", pol, nil)
	must(t, err)
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.Reg.MachineID
	_, err = c.Contributor.Do(ctx, "PUT", base+"/policy", wire.AssignPolicy{Policy: "nightly"}, nil)
	must(t, err)
	cc := a.sas(t)
	p := a.backup(t, cc, randomID())

	_, err = c.Operator.Do(ctx, "POST", base+"/stop", wire.StopProtection{}, nil)
	must(t, err)
	alertsOf := func(kind string) []wire.Alert {
		var as []wire.Alert
		_, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+kind, nil, &as)
		must(t, err)
		return as
	}
	stopped := alertsOf(wire.AlertProtectionStopped)
	if len(stopped) != 1 || stopped[0].Severity != wire.SeverityWarning || stopped[0].MachineID != a.Reg.MachineID {
		t.Fatalf("alerts after the stop: %+v", stopped)
	}

	// The SAS reads and lists only; the point cannot be added.
	var g wire.SAS
	_, err = a.Do(ctx, "POST", "/api/v1/agent/sas", nil, &g)
	must(t, err)
	if !strings.Contains(g.SAS, "sp=rl&") && !strings.HasSuffix(g.SAS, "sp=rl") {
		t.Fatalf("a stopped machine's SAS %q allows more than read and list", g.SAS)
	}
	_, err = a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: randomID()}, nil)
	wantCode(t, err, http.StatusConflict, wire.CodeConflict)
	// Its existing point is kept and listed.
	var ps []wire.Point
	_, err = c.Reader.Do(ctx, "GET", base+"/points", nil, &ps)
	must(t, err)
	if len(ps) != 1 || ps[0].ID != p.ID {
		t.Fatalf("points of the stopped machine: %+v", ps)
	}

	// The same day: no reminder yet, the stop said it.
	_, err = c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	if n := len(alertsOf(wire.AlertProtectionStopped)); n != 1 {
		t.Fatalf("%d protection_stopped alerts on the day of the stop, want 1", n)
	}
	// A day later the vault is reminded, once, naming the machine.
	c.Clock.Advance(24*time.Hour + time.Minute)
	for range 2 {
		rep, err := c.App.Timers.MonitorBackups(ctx)
		must(t, err)
		_ = rep
	}
	stopped = alertsOf(wire.AlertProtectionStopped)
	if len(stopped) != 2 || !strings.Contains(stopped[0].Detail, "branch-10") || stopped[0].MachineID != "" {
		t.Fatalf("after a day: %+v", stopped)
	}
	if missed := alertsOf(wire.AlertMissedBackup); len(missed) != 0 {
		t.Fatalf("a stopped machine was alerted for missed backups: %+v", missed)
	}
	// Resumed, the reminders stop and the machine writes again.
	_, err = c.Operator.Do(ctx, "POST", base+"/resume", nil, nil)
	must(t, err)
	c.Clock.Advance(24*time.Hour + time.Minute)
	rep, err := c.App.Timers.MonitorBackups(ctx)
	must(t, err)
	if rep.StoppedDigests != 0 {
		t.Fatalf("a resumed machine was reminded of: %+v", rep)
	}
	_, err = a.Do(ctx, "POST", "/api/v1/agent/sas", nil, &g)
	must(t, err)
	if !strings.Contains(g.SAS, "sp=rcl") {
		t.Fatalf("a resumed machine's SAS %q cannot create", g.SAS)
	}
}
