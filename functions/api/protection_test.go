package api

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The protection rules through the API: from each state, each change, with
// and without a PIN, as each role.
func TestProtectionStateRules(t *testing.T) {
	const (
		stop       = "stop"
		stopDelete = "stop+delete"
		resume     = "resume"
		undelete   = "undelete"
	)
	for _, tc := range []struct {
		from, action string
		role         Role
		pin          bool
		want         string // "ok" or "status code"
		state        string // the machine's state afterwards
		pinUsed      bool
	}{
		{wire.MachineProtected, stop, RoleOperator, false, "ok", wire.MachineStopped, false},
		{wire.MachineStopped, stop, RoleOperator, false, "ok", wire.MachineStopped, false},
		{wire.MachineDeleted, stop, RoleContributor, false, "409 conflict", wire.MachineDeleted, false},
		{wire.MachineProtected, stopDelete, RoleOperator, true, "403 forbidden", wire.MachineProtected, false},
		{wire.MachineProtected, stopDelete, RoleContributor, false, "403 pin_required", wire.MachineProtected, false},
		{wire.MachineProtected, stopDelete, RoleContributor, true, "ok", wire.MachineDeleted, true},
		{wire.MachineStopped, stopDelete, RoleContributor, true, "ok", wire.MachineDeleted, true},
		// Refused on the state before the PIN is looked at, so it is not used up.
		{wire.MachineDeleted, stopDelete, RoleContributor, true, "409 conflict", wire.MachineDeleted, false},
		{wire.MachineStopped, resume, RoleReader, false, "403 forbidden", wire.MachineStopped, false},
		{wire.MachineStopped, resume, RoleOperator, false, "ok", wire.MachineProtected, false},
		{wire.MachineProtected, resume, RoleOperator, false, "409 conflict", wire.MachineProtected, false},
		{wire.MachineDeleted, resume, RoleContributor, false, "409 conflict", wire.MachineDeleted, false},
		{wire.MachineDeleted, undelete, RoleOperator, false, "403 forbidden", wire.MachineDeleted, false},
		{wire.MachineDeleted, undelete, RoleContributor, false, "ok", wire.MachineStopped, false},
		{wire.MachineStopped, undelete, RoleContributor, false, "409 conflict", wire.MachineStopped, false},
		{wire.MachineProtected, undelete, RoleContributor, false, "409 conflict", wire.MachineProtected, false},
	} {
		name := tc.from + " " + tc.action + " as " + tc.role.String()
		h := newHarness(t)
		v, m, _ := h.vault(tc.from)
		base := wire.Version + "/vaults/" + v.ID + "/machines/" + m.ID
		var hdr http.Header
		if tc.pin {
			hdr = http.Header{wire.PINHeader: {h.pin(v)}}
		}
		var body any
		path := base + "/" + tc.action
		switch tc.action {
		case stop:
			body = wire.StopProtection{}
		case stopDelete:
			path, body = base+"/stop", wire.StopProtection{DeleteData: true}
		}
		var got wire.Machine
		_, err := h.admins[tc.role].Do(h.ctx(), "POST", path, body, &got, hdr)
		if s := status(err); s != tc.want {
			t.Errorf("%s: %s, want %s", name, s, tc.want)
			continue
		}
		after := h.reg.machines[m.ID]
		if after.State != tc.state || (err == nil && got.State != tc.state) {
			t.Errorf("%s: state %s (answered %s), want %s", name, after.State, got.State, tc.state)
		}
		if (after.State == wire.MachineDeleted) != (after.DeletedAt != nil) || (after.State == wire.MachineProtected) != (after.StoppedAt == nil) {
			t.Errorf("%s: inconsistent record %+v", name, after.Machine)
		}
		if used := len(h.pins.used) > 0; used != tc.pinUsed {
			t.Errorf("%s: PIN used %v, want %v", name, used, tc.pinUsed)
		}
	}
}

// Stopping protection is announced, recorded once, and leaves the machine
// able to restore but not to write (issue 10, row 9).
func TestStoppedMachineIsAlertedAndCannotWrite(t *testing.T) {
	h := newHarness(t)
	v, m, agent := h.vault(wire.MachineProtected)
	ctx := h.ctx()
	base := wire.Version + "/vaults/" + v.ID + "/machines/" + m.ID
	for range 2 {
		if _, err := h.admins[RoleOperator].Do(ctx, "POST", base+"/stop", wire.StopProtection{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := h.alerts.kinds(), []string{wire.SeverityWarning + ":" + wire.AlertProtectionStopped}; !slices.Equal(got, want) {
		t.Fatalf("alerts after stopping twice: %v, want %v", got, want)
	}
	if a := h.alerts.raised[0]; a.MachineID != m.ID || !strings.Contains(a.Detail, "token:backup-operator") || !strings.Contains(a.Detail, "/resume") {
		t.Fatalf("alert %+v", a)
	}
	if got, want := h.jobs.types(m.ID), []string{wire.JobDisable + ":" + wire.StatusCompleted}; !slices.Equal(got, want) {
		t.Fatalf("jobs after stopping twice: %v, want %v", got, want)
	}

	var g wire.SAS
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/sas", nil, &g); err != nil {
		t.Fatal(err)
	}
	if g.SAS != "sp="+sas.ReadPermissions {
		t.Fatalf("a stopped machine got SAS %q, want read and list only", g.SAS)
	}
	_, err := agent.Do(ctx, "POST", wire.Version+"/agent/points", wire.NewPoint{ID: strings.Repeat("b", 64)}, nil)
	if s := status(err); s != "409 "+wire.CodeConflict {
		t.Fatalf("a stopped machine adding a point: %s, want 409 conflict", s)
	}
	_, err = agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, nil)
	if s := status(err); s != "409 "+wire.CodeConflict {
		t.Fatalf("a stopped machine starting a backup: %s", s)
	}
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobRestore}, nil); err != nil {
		t.Fatalf("a stopped machine restoring its retained data: %v", err)
	}
	// Refused before storage is asked anything (fakeBlobs has no CheckPoint).

	// Resumed, it writes again.
	if _, err := h.admins[RoleOperator].Do(ctx, "POST", base+"/resume", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/sas", nil, &g); err != nil || g.SAS != "sp="+sas.Permissions {
		t.Fatalf("a resumed machine's SAS: %q %v", g.SAS, err)
	}
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, nil); err != nil {
		t.Fatalf("a resumed machine starting a backup: %v", err)
	}
}

// Deleting data is a critical alert and a delete_backup_data job; the
// message names the deployment's soft-delete period.
func TestDeleteDataIsCriticalAndNamesThePurgeDate(t *testing.T) {
	h := newHarness(t)
	v, m, agent := h.vault(wire.MachineProtected)
	ctx := h.ctx()
	var got wire.Machine
	_, err := h.admins[RoleContributor].Do(ctx, "POST", wire.Version+"/vaults/"+v.ID+"/machines/"+m.ID+"/stop",
		wire.StopProtection{DeleteData: true}, &got, http.Header{wire.PINHeader: {h.pin(v)}})
	if err != nil {
		t.Fatal(err)
	}
	if got.PurgeAfter == nil || got.PurgeAfter.Sub(*got.DeletedAt) != h.reg.softDelete {
		t.Fatalf("purge date %v after deletion at %v", got.PurgeAfter, got.DeletedAt)
	}
	if k := h.alerts.kinds(); !slices.Equal(k, []string{wire.SeverityCritical + ":" + wire.AlertCriticalOperation}) {
		t.Fatalf("alerts: %v", k)
	}
	if j := h.jobs.types(m.ID); !slices.Equal(j, []string{wire.JobDeleteData + ":" + wire.StatusCompleted}) {
		t.Fatalf("jobs: %v", j)
	}
	_, err = agent.Do(ctx, "POST", wire.Version+"/agent/sas", nil, nil)
	if s := status(err); s != "403 "+wire.CodeForbidden {
		t.Fatalf("a deleted machine's SAS: %s", s)
	}
	// The point-undelete message takes the period from the settings.
	_, err = h.admins[RoleContributor].Do(ctx, "POST", wire.Version+"/vaults/"+v.ID+"/machines/"+m.ID+"/points/"+strings.Repeat("c", 64)+"/undelete", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "30 days") {
		t.Fatalf("undelete of a purged point: %v, want the 30-day period named", err)
	}
}

// Agents create only backup and restore jobs; the others record what an
// admin did (issue 10, row 8).
func TestAgentCreatesOnlyBackupAndRestoreJobs(t *testing.T) {
	h := newHarness(t)
	_, m, agent := h.vault(wire.MachineProtected)
	for typ := range jobTypes {
		_, err := agent.Do(h.ctx(), "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: typ}, nil)
		want := "400 " + wire.CodeValidation
		if typ == wire.JobBackup || typ == wire.JobRestore {
			want = "ok"
		}
		if s := status(err); s != want {
			t.Errorf("agent creating a %s job: %s, want %s", typ, s, want)
		}
	}
	_, err := agent.Do(h.ctx(), "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: "format_disk"}, nil)
	if s := status(err); s != "400 "+wire.CodeValidation {
		t.Errorf("unknown job type: %s", s)
	}
	if j := h.jobs.types(m.ID); len(j) != 2 {
		t.Fatalf("jobs created: %v, want a backup and a restore", j)
	}
}
