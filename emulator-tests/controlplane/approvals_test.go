package controlplane

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// pendingOf asserts err is an operation turned into an approval request.
func pendingOf(t *testing.T, what string, err error) wire.Approval {
	t.Helper()
	a, ok := cpclient.Pending(err)
	if !ok || a.Status != wire.ApprovalPending {
		t.Fatalf("%s: %v, want a pending approval request", what, err)
	}
	return a
}

// Issue 16's stories of multi-user authorization, on Azurite and the
// Service Bus emulator: a stolen Contributor token alone cannot delete
// data, cut retention or turn security features off; it can only request.
// A Security Admin approves and the operation runs once, however many
// approve at the same moment; a request past its time limit cannot be
// approved; each request and decision raises a critical alert.
func TestStolenContributorTokenCanOnlyRequest(t *testing.T) {
	c := newCP(t, cpOptions{})
	ctx := ctxT(t)
	sec := &cpclient.Client{BaseURL: c.URL, Token: inproc.SecurityAdminToken}
	thief := &cpclient.Client{BaseURL: c.URL, Token: contributorToken, Header: http.Header{wire.ReasonHeader: {"cleaning up"}}}

	// New vaults have it on.
	v, err := thief.CreateVault(ctx, wire.NewVault{Name: "mua-" + randomID()[:8], AlertRecipients: []string{"ops@branch.example"}})
	must(t, err)
	if !v.MultiUserAuth || !v.SecurityFeatures {
		t.Fatalf("new vault %+v: multi-user authorization and security features must be on", v)
	}
	a := c.mustRegister(c.credentials(v), "branch-16")
	long, short := goodPolicy(), goodPolicy()
	long.Retention, short.Retention = policy.Retention{DailyDays: 180}, policy.Retention{DailyDays: 7}
	_, err = thief.PutPolicy(ctx, v.ID, "long", long, "")
	must(t, err)
	_, err = thief.AssignPolicy(ctx, v.ID, a.Reg.MachineID, wire.AssignPolicy{Policy: "long"}) // a first policy shortens nothing
	must(t, err)
	cc := a.sas(t)
	var ps []wire.Point
	for range 20 {
		ps = append(ps, a.backup(t, cc, randomID()))
		c.Clock.Advance(24 * time.Hour)
	}
	_, err = thief.PutPolicy(ctx, v.ID, "short", short, "") // a new policy changes no machine
	must(t, err)

	// With PINs it made itself, the thief only makes requests.
	pin := func() string {
		p, err := thief.NewPIN(ctx, v.ID)
		must(t, err)
		return p.PIN
	}
	off := false
	_, err = thief.DeletePoint(ctx, v.ID, a.Reg.MachineID, ps[0].ID, pin())
	delPoint := pendingOf(t, "delete a point", err)
	_, err = thief.StopProtection(ctx, v.ID, a.Reg.MachineID, wire.StopProtection{DeleteData: true}, pin())
	delData := pendingOf(t, "delete the machine's data", err)
	_, err = thief.AssignPolicy(ctx, v.ID, a.Reg.MachineID, wire.AssignPolicy{Policy: "short", PIN: pin()})
	cut := pendingOf(t, "assign a 7-day policy", err)
	_, err = thief.PutPolicy(ctx, v.ID, "long", short, pin())
	edit := pendingOf(t, "edit the machine's policy to 7 days", err)
	_, err = thief.UpdateVault(ctx, v.ID, wire.VaultUpdate{SecurityFeatures: &off}, pin())
	secOff := pendingOf(t, "turn security features off", err)
	_, err = thief.UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &off}, pin())
	muaOff := pendingOf(t, "turn multi-user authorization off", err)
	if delPoint.RequestedBy != "token:backup-contributor" || delPoint.Reason != "cleaning up" || strings.Contains(string(cut.Body), "pin") {
		t.Fatalf("request %+v; assignment body %s", delPoint, cut.Body)
	}
	// It cannot approve, with or without a PIN.
	_, err = thief.Approve(ctx, v.ID, delPoint.ID, "")
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	_, err = thief.Do(ctx, "POST", "/api/v1/vaults/"+v.ID+"/approvals/"+delPoint.ID+"/approve", nil, nil, cpclient.PIN(pin()))
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)

	// A month of retention later nothing was lost.
	c.Clock.Advance(30 * 24 * time.Hour)
	_, err = c.App.Timers.EnforceRetention(ctx)
	must(t, err)
	m, err := c.Reader.Machine(ctx, v.ID, a.Reg.MachineID)
	must(t, err)
	got, err := c.Reader.Points(ctx, v.ID, a.Reg.MachineID, false)
	must(t, err)
	vv, err := c.Reader.Vault(ctx, v.ID)
	must(t, err)
	if m.State != wire.MachineProtected || m.Policy != "long" || len(got) != len(ps) || !vv.MultiUserAuth || !vv.SecurityFeatures {
		t.Fatalf("after the requests: machine %s on %q, %d of %d points, vault %+v", m.State, m.Policy, len(got), len(ps), vv)
	}
	pending, err := c.Reader.Approvals(ctx, v.ID, wire.ApprovalPending)
	must(t, err)
	if len(pending) != 0 {
		t.Fatalf("%d requests still pending after the 24-hour limit", len(pending))
	}

	// Past the limit nothing can be approved.
	for _, r := range []wire.Approval{delPoint, delData, cut, edit, secOff, muaOff} {
		_, err := sec.Approve(ctx, v.ID, r.ID, "")
		wantCode(t, err, http.StatusConflict, wire.CodeApprovalExpired)
	}

	// Asked again, a Security Admin approves the point's deletion: it runs,
	// once.
	_, err = thief.DeletePoint(ctx, v.ID, a.Reg.MachineID, ps[0].ID, "")
	delPoint = pendingOf(t, "delete a point again", err)
	r, err := sec.Approve(ctx, v.ID, delPoint.ID, "ticket 16")
	must(t, err)
	if r.Status != wire.ApprovalExecuted || r.DecidedBy != "token:backup-security-admin" || r.Result == nil || r.Result.Status != http.StatusOK {
		t.Fatalf("approved: %+v", r)
	}
	all, err := c.Reader.Points(ctx, v.ID, a.Reg.MachineID, true)
	must(t, err)
	deleted := 0
	for _, p := range all {
		if p.State == wire.PointDeleted {
			deleted++
			if p.ID != ps[0].ID {
				t.Fatalf("point %s deleted, the request named %s", p.ID, ps[0].ID)
			}
		}
	}
	if deleted != 1 {
		t.Fatalf("%d points deleted", deleted)
	}
	_, err = sec.Approve(ctx, v.ID, delPoint.ID, "")
	wantCode(t, err, http.StatusConflict, wire.CodeApprovalDecided)

	// Eight Security Admin sessions approve the data's deletion at once:
	// one wins, the data is deleted once.
	_, err = thief.StopProtection(ctx, v.ID, a.Reg.MachineID, wire.StopProtection{DeleteData: true}, "")
	delData = pendingOf(t, "delete the machine's data again", err)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = sec.Approve(ctx, v.ID, delData.ID, "")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if cpclient.Code(err) != wire.CodeApprovalDecided {
			t.Fatalf("concurrent approval: %v", err)
		}
	}
	jobs, err := c.Reader.Jobs(ctx, v.ID, cpclient.JobFilter{Machine: a.Reg.MachineID})
	must(t, err)
	dataJobs := 0
	for _, j := range jobs {
		if j.Type == wire.JobDeleteData {
			dataJobs++
		}
	}
	if m, err = c.Reader.Machine(ctx, v.ID, a.Reg.MachineID); err != nil || won != 1 || dataJobs != 1 || m.State != wire.MachineDeleted {
		t.Fatalf("%d approvals won, %d delete-data jobs, machine %s (%v)", won, dataJobs, m.State, err)
	}

	// A rejected request never runs.
	_, err = thief.UpdateVault(ctx, v.ID, wire.VaultUpdate{SecurityFeatures: &off}, "")
	secOff = pendingOf(t, "turn security features off again", err)
	r, err = sec.Reject(ctx, v.ID, secOff.ID, "not ours")
	must(t, err)
	if vv, _ := c.Reader.Vault(ctx, v.ID); r.Status != wire.ApprovalRejected || !vv.SecurityFeatures {
		t.Fatalf("rejected %+v; vault %+v", r, vv)
	}

	// Every request and every decision raised a critical alert.
	alerts, err := c.Reader.Alerts(ctx, v.ID, cpclient.AlertFilter{})
	must(t, err)
	count := map[string]int{}
	for _, al := range alerts {
		if al.Severity != wire.SeverityCritical {
			continue
		}
		for _, p := range []string{"Approval requested", "Approval approved", "Approval rejected"} {
			if strings.HasPrefix(al.Title, p) {
				count[p]++
			}
		}
	}
	if count["Approval requested"] != 9 || count["Approval approved"] != 2 || count["Approval rejected"] != 1 {
		t.Fatalf("critical alerts %v, want 9 requested, 2 approved, 1 rejected", count)
	}
}

// In Azure one user can hold Backup.Contributor and Backup.SecurityAdmin;
// that user's session cannot approve its own request. A control plane in
// App Service Authentication mode on the same tables, as deployed.
func TestRequesterCannotApproveItsOwnRequestEvenWithBothRoles(t *testing.T) {
	c := newCP(t, cpOptions{})
	ctx := ctxT(t)
	env := inproc.Env(emu.ConnectionString(), sb.ConnectionString())
	env[config.AuthMode] = "appservice"
	a := inproc.New(t, env, c.Clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	as := func(name string, roles ...string) *cpclient.Client {
		type claim struct {
			Typ string `json:"typ"`
			Val string `json:"val"`
		}
		cp := struct {
			AuthTyp string  `json:"auth_typ"`
			NameTyp string  `json:"name_typ"`
			RoleTyp string  `json:"role_typ"`
			Claims  []claim `json:"claims"`
		}{"aad", "preferred_username", "roles", []claim{{"preferred_username", name}}}
		for _, r := range roles {
			cp.Claims = append(cp.Claims, claim{"roles", r})
		}
		b, _ := json.Marshal(cp)
		// App Service validated the bearer token and set the header.
		return &cpclient.Client{BaseURL: srv.URL, Token: "entra-access-token", Header: http.Header{"X-Ms-Client-Principal": {base64.StdEncoding.EncodeToString(b)}}}
	}
	ann := as("ann@contoso.com", "Backup.Contributor", "Backup.SecurityAdmin")
	bob := as("bob@contoso.com", "Backup.SecurityAdmin")

	v, err := ann.CreateVault(ctx, wire.NewVault{Name: "both-" + randomID()[:8]})
	must(t, err)
	off := false
	_, err = ann.UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &off}, "")
	r := pendingOf(t, "turn multi-user authorization off", err)
	_, err = ann.Approve(ctx, v.ID, r.ID, "")
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	_, err = ann.Reject(ctx, v.ID, r.ID, "")
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	// Bob alone reads, and cannot act.
	_, err = bob.NewPIN(ctx, v.ID)
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	_, err = bob.UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &off}, "")
	wantCode(t, err, http.StatusForbidden, wire.CodeForbidden)
	done, err := bob.Approve(ctx, v.ID, r.ID, "ok")
	must(t, err)
	if vv, _ := bob.Vault(ctx, v.ID); done.Status != wire.ApprovalExecuted || vv.MultiUserAuth {
		t.Fatalf("approved %+v; vault %+v", done, vv)
	}
}
