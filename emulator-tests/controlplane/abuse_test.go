package controlplane

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Stories of issue 10: what a compromised agent can no longer do to its
// own history through the control plane.

// abuseKeyFile writes a well-formed key file (random wrapped bytes) through
// the agent's SAS and returns its ID.
func abuseKeyFile(t *testing.T, cc *container.Client) string {
	salt, data := make([]byte, 16), make([]byte, 124)
	rand.Read(salt)
	rand.Read(data)
	b := fmt.Appendf(nil, `{"version":1,"created":"2026-11-22T10:00:00Z","wrapped":{"kdf":{"algorithm":"argon2id","time":3,"memoryKiB":65536,"threads":4,"salt":%q},"data":%q}}`,
		base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(data))
	s := sha256.Sum256(b)
	id := hex.EncodeToString(s[:])
	_, err := cc.NewBlockBlobClient("keys/"+id).UploadBuffer(ctxT(t), b, nil)
	must(t, err)
	return id
}

func abusePIN(t *testing.T, c *cp, v wire.Vault) string {
	var pin wire.PIN
	_, err := c.Contributor.Do(ctxT(t), "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
	must(t, err)
	return pin.PIN
}

// Row 2: a machine with a PIN for a passphrase change cannot destroy its
// real key with a junk "replacement"; a key it does retire stays in soft
// delete, listed and undeletable, until the period ends.
func TestRetireKeyNeedsAValidReplacementAndIsUndeletable(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("retire-key")
	a := c.mustRegister(c.credentials(v), "branch-keys")
	cc := a.sas(t)
	ctx := ctxT(t)
	real := abuseKeyFile(t, cc)
	junk := randomID()
	_, err := cc.NewBlockBlobClient("keys/"+junk).UploadBuffer(ctx, []byte("junk"), nil)
	must(t, err)

	_, err = a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil, cpclient.PIN(abusePIN(t, c, v)))
	must(t, err)
	for _, body := range []wire.RetireKey{
		{Key: real, Replacement: junk},       // junk: not a key file
		{Key: real, Replacement: randomID()}, // absent
		{Key: real, Replacement: real},       // itself
	} {
		_, err = a.Do(ctx, "POST", "/api/v1/agent/retire-key", body, nil)
		wantCode(t, err, http.StatusConflict, wire.CodeConflict)
	}
	_, err = a.Do(ctx, "POST", "/api/v1/agent/retire-key", wire.RetireKey{Key: real}, nil)
	wantCode(t, err, http.StatusBadRequest, wire.CodeValidation)
	if !blobExists(t, cc, "keys/"+real) {
		t.Fatal("the real key file is gone")
	}

	next := abuseKeyFile(t, cc)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/retire-key", wire.RetireKey{Key: real, Replacement: next}, nil)
	must(t, err)
	if blobExists(t, cc, "keys/"+real) {
		t.Fatal("the retired key file is still under keys/")
	}
	// Once per approval.
	_, err = a.Do(ctx, "POST", "/api/v1/agent/retire-key", wire.RetireKey{Key: next, Replacement: real}, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodePINRequired)

	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	var dks []wire.DeletedKey
	_, err = c.Reader.Do(ctx, "GET", base+"/deleted-keys", nil, &dks)
	must(t, err)
	if len(dks) != 1 || dks[0].KeyID != real || dks[0].ReplacedBy != next || dks[0].PurgeAfter.Sub(dks[0].DeletedAt) != 14*day {
		t.Fatalf("deleted keys %+v", dks)
	}
	_, err = c.Reader.Do(ctx, "POST", base+"/deleted-keys/"+real+"/undelete", nil, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	_, err = c.Contributor.Do(ctx, "POST", base+"/deleted-keys/"+real+"/undelete", nil, nil)
	must(t, err)
	if !blobExists(t, cc, "keys/"+real) {
		t.Fatal("undelete did not bring the key file back")
	}
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	if !slices.ContainsFunc(as, func(a wire.Alert) bool { return strings.Contains(a.Title, "undeleted") }) {
		t.Fatalf("no alert for the undelete: %+v", as)
	}

	// Retired again, it is purged after 14 days and not before.
	_, err = a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil, cpclient.PIN(abusePIN(t, c, v)))
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/retire-key", wire.RetireKey{Key: real, Replacement: next}, nil)
	must(t, err)
	c.Clock.Advance(14*day - time.Minute)
	_, err = c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	_, err = c.Reader.Do(ctx, "GET", base+"/deleted-keys", nil, &dks)
	must(t, err)
	if len(dks) != 1 {
		t.Fatalf("purged early: %+v", dks)
	}
	c.Clock.Advance(2 * time.Minute)
	_, err = c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	_, err = c.Reader.Do(ctx, "GET", base+"/deleted-keys", nil, &dks)
	must(t, err)
	if len(dks) != 0 {
		t.Fatalf("not purged after 14 days: %+v", dks)
	}
	_, err = c.Contributor.Do(ctx, "POST", base+"/deleted-keys/"+real+"/undelete", nil, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)
}

// Row 4: a refs/ object naming another point does not stop GC; it is
// quarantined with an alert, and the packs no point needs are deleted.
func TestForeignPackListIsQuarantinedAndGCGoesOn(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("quarantine")
	a := c.mustRegister(c.credentials(v), "branch-q")
	cc := a.sas(t)
	ctx := ctxT(t)
	keep, only := randomID(), randomID()
	p1 := a.backup(t, cc, keep)
	p2 := a.backup(t, cc, keep, only)
	// The agent plants a list under a free name that names p1.
	planted := randomID()
	enc, _ := packrefs.New(p1.ID, []string{only}).Encode()
	_, err := cc.NewBlockBlobClient(packrefs.Name(planted)).UploadBuffer(ctx, enc, nil)
	must(t, err)

	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	_, err = c.Contributor.Do(ctx, "DELETE", base+"/points/"+p2.ID, nil, nil, cpclient.PIN(abusePIN(t, c, v)))
	must(t, err)
	c.Clock.Advance(14*day + time.Minute)
	rep, err := c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	if rep.Points != 1 || rep.Packs != 1 || blobExists(t, cc, packrefs.PackName(only)) || !blobExists(t, cc, packrefs.PackName(keep)) {
		t.Fatalf("purge %+v; the pack only p2 named should be gone, the shared one kept", rep)
	}
	if !blobExists(t, cc, packrefs.Name(planted)) {
		t.Fatal("the quarantined list was removed; it is kept for inspection")
	}
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	n := 0
	for _, al := range as {
		if strings.Contains(al.Title, "quarantined") && strings.Contains(al.Detail, planted) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d quarantine alerts, want 1: %+v", n, as)
	}
}

// Row 4: an agent that keeps a job in progress (reporting progress, so the
// monitor never fails it) defers a purge by at most the stale-job bound.
func TestRunningJobDefersPurgeOnlyForTheStaleJobBound(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("defer")
	a := c.mustRegister(c.credentials(v), "branch-d")
	cc := a.sas(t)
	ctx := ctxT(t)
	p1 := a.backup(t, cc, randomID())
	a.backup(t, cc, randomID())
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	_, err := c.Contributor.Do(ctx, "DELETE", base+"/points/"+p1.ID, nil, nil, cpclient.PIN(abusePIN(t, c, v)))
	must(t, err)

	var j wire.Job
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &j)
	must(t, err)
	files := 0
	report := func() {
		files++
		_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusInProgress,
			Progress: wire.Progress{FilesDone: int64(files), FilesTotal: 1 << 30}}, nil)
		must(t, err)
	}
	c.Clock.Advance(14*day + time.Minute)
	report()
	rep, err := c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	if rep.Points != 0 || len(rep.Skipped) != 1 {
		t.Fatalf("purge with a fresh running job: %+v, want it deferred", rep)
	}
	for range 3 { // the agent keeps reporting, past the bound
		c.Clock.Advance(time.Hour)
		report()
	}
	rep, err = c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	if rep.Points != 1 || blobExists(t, cc, "points/"+p1.ID) {
		t.Fatalf("purge 3 hours past due with a job still running: %+v, want the point purged", rep)
	}
}

// Row 4: a machine whose data is deleted is purged on time, whatever its
// jobs say.
func TestDeletedMachineIsPurgedWhateverItsJobsSay(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("purge-busy")
	a := c.mustRegister(c.credentials(v), "branch-busy")
	cc := a.sas(t)
	ctx := ctxT(t)
	a.backup(t, cc, randomID())
	var j wire.Job
	_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobRestore}, &j)
	must(t, err)
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID
	_, err = c.Contributor.Do(ctx, "POST", base+"/stop", wire.StopProtection{DeleteData: true}, nil, cpclient.PIN(abusePIN(t, c, v)))
	must(t, err)
	c.Clock.Advance(14*day + time.Minute)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/jobs/"+j.ID, wire.JobReport{Status: wire.StatusInProgress, Progress: wire.Progress{FilesDone: 1, FilesTotal: 9}}, nil)
	_ = err // the agent may or may not still be heard; the purge must not care
	rep, err := c.App.Timers.PurgeSoftDeleted(ctx)
	must(t, err)
	if rep.Machines != 1 || containerExists(t, a.Reg.Container) {
		t.Fatalf("purge %+v; the machine's container should be gone", rep)
	}
}

// Row 7: a machine stops at its point limit with a clear error (9,999 in
// production; lowered here), and listings are paged with a continuation
// token while the default answer stays the whole array.
func TestPointLimitAndPagedListings(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("paging")
	cr := c.credentials(v)
	a := c.mustRegister(cr, "branch-p1")
	c.mustRegister(cr, "branch-p2")
	c.mustRegister(cr, "branch-p3")
	cc := a.sas(t)
	ctx := ctxT(t)
	c.App.Points.MaxPoints = 3
	var ps []wire.Point
	for range 3 {
		ps = append(ps, a.backup(t, cc, randomID()))
		c.Clock.Advance(time.Minute)
	}
	point := randomID()
	upload(t, cc, point, randomID())
	_, err := a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: point}, nil)
	wantCode(t, err, http.StatusConflict, wire.CodeConflict)
	if !strings.Contains(err.Error(), "the most a machine may have") {
		t.Fatalf("limit error does not say why: %v", err)
	}

	// Machines: the default is every machine, with its item.
	var ms []wire.Machine
	h, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines", nil, &ms)
	must(t, err)
	if len(ms) != 3 || h.Get("X-Coffer-Continuation") != "" {
		t.Fatalf("default listing: %d machines, continuation %q", len(ms), h.Get("X-Coffer-Continuation"))
	}
	for _, m := range ms {
		if m.ID == a.MachineID && (m.Item == nil || m.Item.Points != 3 || m.Item.OldestPoint == nil || !m.Item.OldestPoint.Equal(ps[0].Time) || !m.Item.LatestPoint.Equal(ps[2].Time)) {
			t.Fatalf("item of %s: %+v", m.Name, m.Item)
		}
	}
	var seen []string
	next := ""
	for range 3 {
		var page []wire.Machine
		q := "?limit=2"
		if next != "" {
			q += "&continuation=" + next
		}
		h, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines"+q, nil, &page)
		must(t, err)
		for _, m := range page {
			seen = append(seen, m.ID)
		}
		if next = h.Get("X-Coffer-Continuation"); next == "" {
			break
		}
	}
	if len(seen) != 3 || !slices.IsSorted(seen) {
		t.Fatalf("paged machines: %v", seen)
	}

	// Points, oldest first, two at a time.
	base := "/api/v1/vaults/" + v.ID + "/machines/" + a.MachineID + "/points"
	var page []wire.Point
	h, err = c.Reader.Do(ctx, "GET", base+"?limit=2", nil, &page)
	must(t, err)
	if len(page) != 2 || page[0].ID != ps[0].ID || h.Get("X-Coffer-Continuation") == "" {
		t.Fatalf("first page of points: %+v, %q", page, h.Get("X-Coffer-Continuation"))
	}
	h, err = c.Reader.Do(ctx, "GET", base+"?limit=2&continuation="+h.Get("X-Coffer-Continuation"), nil, &page)
	must(t, err)
	if len(page) != 1 || page[0].ID != ps[2].ID || h.Get("X-Coffer-Continuation") != "" {
		t.Fatalf("second page of points: %+v", page)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?continuation=../x"} {
		_, err = c.Reader.Do(ctx, "GET", base+q, nil, nil)
		wantCode(t, err, http.StatusBadRequest, wire.CodeBadRequest)
	}
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines?continuation=Bad!", nil, nil)
	wantCode(t, err, http.StatusBadRequest, wire.CodeBadRequest)
}
