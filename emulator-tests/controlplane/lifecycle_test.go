package controlplane

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/wire"
)

const day = 24 * time.Hour

// A deleted point is soft-deleted for 14 days: listed as deleted, undeleted
// on day 13, and after day 14 purged with the packs only it needed, while
// packs shared with other points stay.
func TestSoftDeletedPointIsUndeletableThenPurgedKeepingSharedPacks(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("soft-delete")
	a := c.mustRegister(c.credentials(v), "branch-01")
	cc := a.sas(t)
	ctx := ctxT(t)
	shared1, shared2, only := randomID(), randomID(), randomID()
	p1 := a.backup(t, cc, shared1)
	p2 := a.backup(t, cc, shared1, only, shared2)
	p3 := a.backup(t, cc, shared2)
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	pin := func() string {
		var p wire.PIN
		_, err := c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &p)
		must(t, err)
		return p.PIN
	}
	list := func(query string) []wire.Point {
		var ps []wire.Point
		_, err := c.Reader.Do(ctx, "GET", base+"/points"+query, nil, &ps)
		must(t, err)
		return ps
	}

	_, err := c.Contributor.Do(ctx, "DELETE", base+"/points/"+p2.ID, nil, nil, cpclient.PIN(pin()))
	must(t, err)
	if ps := list(""); len(ps) != 2 {
		t.Fatalf("active points after delete: %d, want 2", len(ps))
	}
	all := list("?deleted=include")
	i := slices.IndexFunc(all, func(p wire.Point) bool { return p.ID == p2.ID })
	if len(all) != 3 || i < 0 || all[i].State != wire.PointDeleted || all[i].PurgeAfter == nil {
		t.Fatalf("deleted point not listed as such: %+v", all)
	}

	c.Clock.Advance(13 * day)
	_, err = c.Contributor.Do(ctx, "POST", base+"/points/"+p2.ID+"/undelete", nil, nil)
	must(t, err)
	if ps := list(""); len(ps) != 3 {
		t.Fatalf("active points after undelete on day 13: %d, want 3", len(ps))
	}

	_, err = c.Contributor.Do(ctx, "DELETE", base+"/points/"+p2.ID, nil, nil, cpclient.PIN(pin()))
	must(t, err)
	c.Clock.Advance(14*day - time.Minute)
	rep, err := c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	if !blobExists(t, cc, packrefs.Name(p2.ID)) {
		t.Fatalf("purged before 14 days were over: %+v", rep)
	}
	c.Clock.Advance(2 * time.Minute)
	_, err = c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)

	for name, want := range map[string]bool{
		"points/" + p2.ID:          false,
		packrefs.Name(p2.ID):       false,
		packrefs.PackName(only):    false,
		packrefs.PackName(shared1): true,
		packrefs.PackName(shared2): true,
		"points/" + p1.ID:          true,
		"points/" + p3.ID:          true,
	} {
		if got := blobExists(t, cc, name); got != want {
			t.Errorf("%s exists = %v, want %v", name, got, want)
		}
	}
	if ps := list("?deleted=include"); len(ps) != 2 {
		t.Fatalf("points after purge: %+v", ps)
	}
	_, err = c.Contributor.Do(ctx, "POST", base+"/points/"+p2.ID+"/undelete", nil, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)
}

// Stop protection with delete data soft-deletes the machine's data; undelete
// returns it to "stopped, data retained"; after 14 days it is purged.
func TestStopProtectionWithDeleteDataThenUndeleteThenPurge(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("stop-protection")
	cr := c.credentials(v)
	a := c.mustRegister(cr, "branch-01")
	cc := a.sas(t)
	p := a.backup(t, cc, randomID())
	ctx := ctxT(t)
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	stop := func() wire.Machine {
		var pin wire.PIN
		_, err := c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
		must(t, err)
		var m wire.Machine
		_, err = c.Contributor.Do(ctx, "POST", base+"/stop", wire.StopProtection{DeleteData: true}, &m, cpclient.PIN(pin.PIN))
		must(t, err)
		return m
	}
	m := stop()
	if m.State != wire.MachineDeleted || m.PurgeAfter == nil || m.PurgeAfter.Sub(*m.DeletedAt) != 14*day {
		t.Fatalf("after delete data: %+v", m)
	}
	// The agent can no longer back up or get a SAS.
	_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, nil)
	wantCode(t, err, http.StatusConflict, wire.CodeConflict)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/sas", nil, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)

	_, err = c.Contributor.Do(ctx, "POST", base+"/undelete", nil, &m)
	must(t, err)
	if m.State != wire.MachineStopped {
		t.Fatalf("after undelete: %s, want stopped", m.State)
	}
	stop()
	c.Clock.Advance(14*day + time.Minute)
	_, err = c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	_, err = c.Reader.Do(ctx, "GET", base, nil, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)
	if containerExists(t, a.Reg.Container) {
		t.Fatalf("container %s (with point %s) still exists after the purge", a.Reg.Container, p.ID)
	}
	// The name is free again.
	c.mustRegister(c.credentials(v), "branch-01")
}

// The policy ETag lets agents poll cheaply.
func TestAgentFetchesItsPolicyWithAnETag(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("etag")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)
	_, err := a.Do(ctx, "GET", "/api/v1/agent/policy", nil, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)

	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/office", goodPolicy(), nil)
	must(t, err)
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/policy", wire.AssignPolicy{Policy: "office"}, nil)
	must(t, err)
	var doc wire.PolicyDoc
	h, err := a.Do(ctx, "GET", "/api/v1/agent/policy", nil, &doc)
	must(t, err)
	if h.Get("ETag") == "" || doc.ETag != h.Get("ETag") || doc.Name != "office" {
		t.Fatalf("policy answer: %+v etag %q", doc, h.Get("ETag"))
	}
	var again wire.PolicyDoc
	_, err = a.Do(ctx, "GET", "/api/v1/agent/policy", nil, &again, http.Header{"If-None-Match": {doc.ETag}})
	must(t, err)
	if again.Name != "" {
		t.Fatal("unchanged policy was sent again instead of 304")
	}
	// A change gives a new ETag.
	p := goodPolicy()
	p.Schedule.Times = []string{"22:00"}
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/office", p, nil)
	must(t, err)
	_, err = a.Do(ctx, "GET", "/api/v1/agent/policy", nil, &again, http.Header{"If-None-Match": {doc.ETag}})
	must(t, err)
	if again.ETag == doc.ETag || again.Name != "office" {
		t.Fatalf("changed policy: %+v", again)
	}
	// Reducing retention needs a PIN.
	p.Retention.DailyDays = 10
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/office", p, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodePINRequired)
}
