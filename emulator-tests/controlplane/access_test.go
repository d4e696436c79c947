package controlplane

import (
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// An admin downloads vault credentials; they work for 48 hours, and only
// the newest file works.
func TestVaultCredentialsExpireAndOnlyTheNewestWorks(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("branch-offices")

	first := c.credentials(v)
	if first.ExpiresAt.Sub(c.Clock.Now()) != 48*time.Hour || first.VaultID != v.ID || first.Secret == "" || first.ControlPlaneURL == "" {
		t.Fatalf("credentials file: %+v", first)
	}
	c.mustRegister(first, "branch-01")

	second := c.credentials(v)
	_, err := c.register(first, "branch-02")
	wantCode(t, err, http.StatusUnauthorized, wire.CodeCredentialsSuperseded)

	forged := second
	forged.Secret = "not-the-secret"
	_, err = c.register(forged, "branch-02")
	wantCode(t, err, http.StatusUnauthorized, wire.CodeUnauthenticated)

	c.Clock.Advance(48*time.Hour + time.Second)
	_, err = c.register(second, "branch-02")
	wantCode(t, err, http.StatusUnauthorized, wire.CodeCredentialsExpired)

	third := c.credentials(v)
	c.mustRegister(third, "branch-02")
	// Names are unique in a vault, ignoring case.
	_, err = c.register(third, "BRANCH-02")
	wantCode(t, err, http.StatusConflict, wire.CodeConflict)
}

// Every agent request is signed; a captured request cannot be replayed,
// kept for later, or altered.
func TestSignedRequestsCannotBeReplayedOrForged(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("replay")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)

	// Capture one signed request and send it twice.
	req, _ := http.NewRequestWithContext(ctx, "GET", c.URL+"/api/v1/agent/points", nil)
	must(t, reqsign.Sign(req, nil, a.MachineID, a.Key, c.Clock.Now()))
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		resp, err := http.DefaultClient.Do(req.Clone(ctx))
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("send %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// The same request from the log an hour later: stale.
	late := *a.Client
	late.Now = func() time.Time { return c.Clock.Now().Add(-time.Hour) }
	_, err := late.Do(ctx, "GET", "/api/v1/agent/points", nil, nil)
	wantCode(t, err, http.StatusUnauthorized, wire.CodeStaleRequest)

	// Another key claiming to be this machine.
	_, other, _ := reqsign.NewKey()
	impostor := *a.Client
	impostor.Key = other
	_, err = impostor.Do(ctx, "GET", "/api/v1/agent/points", nil, nil)
	wantCode(t, err, http.StatusUnauthorized, wire.CodeUnauthenticated)

	// No signature at all.
	_, err = (&cpclient.Client{BaseURL: c.URL}).Do(ctx, "GET", "/api/v1/agent/policy", nil, nil)
	wantCode(t, err, http.StatusUnauthorized, wire.CodeUnauthenticated)
}

// One machine can neither read, report for, nor get a SAS for another.
func TestOneMachineCannotTouchAnother(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("isolation")
	cr := c.credentials(v)
	a, b := c.mustRegister(cr, "branch-a"), c.mustRegister(cr, "branch-b")
	ctx := ctxT(t)

	ccA := a.sas(t)
	pa := a.backup(t, ccA, randomID())

	c.Clock.Advance(time.Minute)
	var jobA wire.Job
	_, err := a.Do(ctx, "POST", "/api/v1/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &jobA)
	must(t, err)

	// B reports on A's job: not found, and A's job is untouched.
	_, err = b.Do(ctx, "POST", "/api/v1/agent/jobs/"+jobA.ID, wire.JobReport{Status: wire.StatusFailed, ErrorCode: "x", Message: "sabotage"}, nil)
	wantCode(t, err, http.StatusNotFound, wire.CodeNotFound)
	var still wire.Job
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/jobs/"+jobA.ID, nil, &still)
	must(t, err)
	if still.Status != wire.StatusInProgress {
		t.Fatalf("A's job was changed by B: %+v", still)
	}

	// B registers A's point as its own: A's pack list is not in B's container.
	_, err = b.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: pa.ID}, nil)
	wantCode(t, err, http.StatusConflict, wire.CodePointIncomplete)

	// B lists points: only its own (none).
	var bs []wire.Point
	_, err = b.Do(ctx, "GET", "/api/v1/agent/points", nil, &bs)
	must(t, err)
	if len(bs) != 0 {
		t.Fatalf("B sees points %+v", bs)
	}

	// B's SAS names B's container; used on A's container it is refused.
	ccB := b.sas(t)
	if ccB.URL() == ccA.URL() || a.Reg.Container == b.Reg.Container {
		t.Fatal("both machines got the same container")
	}
	var g wire.SAS
	_, err = b.Do(ctx, "POST", "/api/v1/agent/sas", nil, &g)
	must(t, err)
	foreign := sasFor(t, c, a.Reg.Container, g.SAS)
	_, err = foreign.NewBlobClient("points/"+pa.ID).DownloadBuffer(ctx, make([]byte, 1024), nil)
	if !bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure) && (err == nil || !isStatus(err, 403)) {
		t.Fatalf("B's SAS read A's point: %v", err)
	}
	// And the agent's own SAS cannot delete or overwrite: create, read, list only.
	if _, err := ccA.NewBlobClient("points/"+pa.ID).Delete(ctx, nil); err == nil {
		t.Fatal("an agent SAS deleted a point")
	}
	if g.ExpiresOn.Sub(c.Clock.Now()) > time.Hour {
		t.Fatalf("SAS valid until %s, more than an hour", g.ExpiresOn)
	}

	// The admin sees A's backup item: last backup, its point, bytes stored.
	var m wire.Machine
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID, nil, &m)
	must(t, err)
	it := m.Item
	if it == nil || it.Points != 1 || it.LatestPoint == nil || !it.LatestPoint.Equal(pa.Time) || !it.OldestPoint.Equal(pa.Time) ||
		it.LastBackupStatus != wire.StatusInProgress || it.StorageBytes <= 0 {
		t.Fatalf("backup item of A: %+v", it)
	}
}

// A Reader can change nothing; an Operator can run things but not delete.
func TestRolesLimitWhatAdminsCanDo(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("rbac")
	a := c.mustRegister(c.credentials(v), "branch-01")
	p := a.backup(t, a.sas(t), randomID())
	ctx := ctxT(t)
	base := "/api/v1/vaults/" + v.ID
	var pin wire.PIN
	_, err := c.Contributor.Do(ctx, "POST", base+"/pin", nil, &pin)
	must(t, err)

	writes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/vaults", wire.NewVault{Name: "x"}},
		{"PATCH", base, wire.VaultUpdate{AlertDigest: ptr(true)}},
		{"POST", base + "/credentials", nil},
		{"POST", base + "/pin", nil},
		{"PUT", base + "/policies/default", goodPolicy()},
		{"PUT", base + "/machines/" + a.MachineID + "/policy", wire.AssignPolicy{Policy: "default"}},
		{"POST", base + "/machines/" + a.MachineID + "/stop", wire.StopProtection{}},
		{"POST", base + "/machines/" + a.MachineID + "/stop", wire.StopProtection{DeleteData: true}},
		{"DELETE", base + "/machines/" + a.MachineID + "/points/" + p.ID, nil},
	}
	for _, w := range writes {
		_, err := c.Reader.Do(ctx, w.method, w.path, w.body, nil, cpclient.PIN(pin.PIN))
		wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	}
	// Reading works for a Reader.
	for _, path := range []string{base, base + "/machines", base + "/jobs", base + "/alerts", base + "/machines/" + a.MachineID + "/points"} {
		_, err := c.Reader.Do(ctx, "GET", path, nil, nil)
		must(t, err)
	}

	// An Operator cannot delete or change policies...
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"PUT", base + "/policies/default", goodPolicy()},
		{"POST", base + "/machines/" + a.MachineID + "/stop", wire.StopProtection{DeleteData: true}},
		{"DELETE", base + "/machines/" + a.MachineID + "/points/" + p.ID, nil},
		{"POST", base + "/pin", nil},
	} {
		_, err := c.Operator.Do(ctx, w.method, w.path, w.body, nil, cpclient.PIN(pin.PIN))
		wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	}
	// ...but may create credentials and stop protection keeping the data.
	c.credentials(v)
	var m wire.Machine
	_, err = c.Operator.Do(ctx, "POST", base+"/machines/"+a.MachineID+"/stop", wire.StopProtection{}, &m)
	must(t, err)
	if m.State != wire.MachineStopped {
		t.Fatalf("machine after stop: %s", m.State)
	}
	// The PIN was never consumed by the refused calls.
	_, err = c.Contributor.Do(ctx, "DELETE", base+"/machines/"+a.MachineID+"/points/"+p.ID, nil, nil, cpclient.PIN(pin.PIN))
	must(t, err)
	// No token at all.
	_, err = (&cpclient.Client{BaseURL: c.URL}).Do(ctx, "GET", "/api/v1/vaults", nil, nil)
	wantCode(t, err, http.StatusUnauthorized, wire.CodeUnauthenticated)
}

// A PIN works once and only for 5 minutes.
func TestPINExpiresAfterFiveMinutesAndWorksOnce(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("pin")
	a := c.mustRegister(c.credentials(v), "branch-01")
	cc := a.sas(t)
	p1, p2 := a.backup(t, cc, randomID()), a.backup(t, cc, randomID())
	ctx := ctxT(t)
	del := func(p wire.Point, pin string) error {
		_, err := c.Contributor.Do(ctx, "DELETE", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/points/"+p.ID, nil, nil, cpclient.PIN(pin))
		return err
	}
	wantCode(t, del(p1, ""), http.StatusForbidden, wire.CodePINRequired)

	var pin wire.PIN
	_, err := c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
	must(t, err)
	if len(pin.PIN) != 8 || pin.ExpiresAt.Sub(c.Clock.Now()) != 5*time.Minute {
		t.Fatalf("PIN %+v", pin)
	}
	must(t, del(p1, pin.PIN))
	wantCode(t, del(p2, pin.PIN), http.StatusForbidden, wire.CodePINInvalid) // used

	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
	must(t, err)
	c.Clock.Advance(5*time.Minute + time.Second)
	wantCode(t, del(p2, pin.PIN), http.StatusForbidden, wire.CodePINInvalid) // expired
	wantCode(t, del(p2, "12345678"), http.StatusForbidden, wire.CodePINInvalid)

	// The agent needs a PIN to change its passphrase, and that raises a
	// critical alert.
	_, err = a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil)
	wantCode(t, err, http.StatusForbidden, wire.CodePINRequired)
	_, err = c.Contributor.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/pin", nil, &pin)
	must(t, err)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/passphrase-change", nil, nil, cpclient.PIN(pin.PIN))
	must(t, err)
	var as []wire.Alert
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as)
	must(t, err)
	if len(as) != 2 {
		t.Fatalf("critical-operation alerts: %d, want 2 (point deleted, passphrase changed)", len(as))
	}
}

func ptr[T any](v T) *T { return &v }
