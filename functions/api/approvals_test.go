package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// muaVault is h.vault with multi-user authorization on, and a point.
func (h *harness) muaVault() (wire.Vault, string, string) {
	h.t.Helper()
	v, m, _ := h.vault(wire.MachineProtected)
	on := true
	v, _ = h.reg.UpdateVault(h.ctx(), v.ID, wire.VaultUpdate{MultiUserAuth: &on})
	p, err := h.points.Add(h.ctx(), v.ID, m.ID, strings.Repeat("a", 64), "", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return v, m.ID, p.ID
}

func pending(t *testing.T, err error) wire.Approval {
	t.Helper()
	a, ok := cpclient.Pending(err)
	if !ok || a.Status != wire.ApprovalPending {
		t.Fatalf("answer %v, want a pending approval request", err)
	}
	return a
}

// With multi-user authorization on, a Contributor's PIN operations become
// requests, whatever PIN it sends; a Security Admin's approval runs each
// once; the Contributor cannot approve.
func TestOperationsThatNeedAPINWaitForApproval(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	v, m, p := h.muaVault()
	c, sec := h.admins[RoleContributor], h.admins[RoleSecurityAdmin]
	pin := h.pin(v)
	before := len(h.alerts.raised)

	_, err := c.DeletePoint(ctx, v.ID, m, p, pin)
	a := pending(t, err)
	if a.Method != "DELETE" || a.RequestedBy != "token:backup-contributor" || !strings.Contains(a.Operation, "delete a recovery point") {
		t.Fatalf("request %+v", a)
	}
	if pt, _ := h.points.Get(ctx, m, p); pt.State != wire.PointActive || len(h.pins.used) != 0 {
		t.Fatalf("the request changed something: point %s, PINs used %v", pt.State, h.pins.used)
	}
	if len(h.alerts.raised) != before+1 || h.alerts.raised[before].Severity != wire.SeverityCritical {
		t.Fatalf("alerts %+v, want one critical for the request", h.alerts.raised[before:])
	}
	if _, err := c.Approve(ctx, v.ID, a.ID, ""); status(err) != "403 "+wire.CodeForbidden {
		t.Fatalf("a Contributor approved: %v", err)
	}
	got, err := sec.Approve(ctx, v.ID, a.ID, "ticket 7")
	if err != nil || got.Status != wire.ApprovalExecuted || got.Result == nil || got.Result.Status != http.StatusOK {
		t.Fatalf("approve: %+v %v", got, err)
	}
	// The fake point store does not keep deletions; the operation's own
	// alert says it ran, once, beside the approval's.
	var titles []string
	for _, al := range h.alerts.raised[before:] {
		titles = append(titles, al.Title)
	}
	if len(titles) != 3 || !strings.HasPrefix(titles[1], "Recovery point of") || !strings.HasPrefix(titles[2], "Approval approved") {
		t.Fatalf("alerts %q, want the request's, the operation's and the approval's", titles)
	}
	if _, err := sec.Approve(ctx, v.ID, a.ID, ""); status(err) != "409 "+wire.CodeApprovalDecided {
		t.Fatalf("second approval: %v", err)
	}

	// Every other PIN operation asks too.
	_, err = c.StopProtection(ctx, v.ID, m, wire.StopProtection{DeleteData: true}, h.pin(v))
	stop := pending(t, err)
	if mm, _ := h.reg.Machine(ctx, m); mm.State != wire.MachineProtected {
		t.Fatalf("machine %s before approval", mm.State)
	}
	off := false
	_, err = c.UpdateVault(ctx, v.ID, wire.VaultUpdate{SecurityFeatures: &off}, h.pin(v))
	pending(t, err)
	_, err = c.UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &off}, "")
	muaOff := pending(t, err)
	if vv, _ := h.reg.Vault(ctx, v.ID); !vv.MultiUserAuth || !vv.SecurityFeatures {
		t.Fatalf("vault %+v before approval", vv)
	}
	if got, err := sec.Approve(ctx, v.ID, stop.ID, ""); err != nil || got.Status != wire.ApprovalExecuted {
		t.Fatalf("approve stop: %+v %v", got, err)
	}
	if mm, _ := h.reg.Machine(ctx, m); mm.State != wire.MachineDeleted {
		t.Fatalf("machine %s after approval", mm.State)
	}
	if got, err := sec.Reject(ctx, v.ID, muaOff.ID, "no"); err != nil || got.Status != wire.ApprovalRejected {
		t.Fatalf("reject: %+v %v", got, err)
	}
	if vv, _ := h.reg.Vault(ctx, v.ID); !vv.MultiUserAuth {
		t.Fatal("a rejected request ran")
	}
	list, err := c.Approvals(ctx, v.ID, wire.ApprovalPending)
	if err != nil || len(list) != 1 {
		t.Fatalf("pending %+v %v", list, err)
	}
}

// An approval past the time limit is refused, and nothing runs.
func TestExpiredRequestCannotBeApproved(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	v, m, p := h.muaVault()
	_, err := h.admins[RoleContributor].DeletePoint(ctx, v.ID, m, p, "")
	a := pending(t, err)
	h.clock.Advance(approvals.DefaultTTL)
	if _, err := h.admins[RoleSecurityAdmin].Approve(ctx, v.ID, a.ID, ""); status(err) != "409 "+wire.CodeApprovalExpired {
		t.Fatalf("approve after %s: %v", approvals.DefaultTTL, err)
	}
	if got, _ := h.admins[RoleReader].Approval(ctx, v.ID, a.ID); got.Status != wire.ApprovalExpired {
		t.Fatalf("status %q", got.Status)
	}
	if pt, _ := h.points.Get(ctx, m, p); pt.State != wire.PointActive {
		t.Fatal("an expired request ran")
	}
}

// A session holding both Contributor and Security Admin (one Entra user
// with both app roles) cannot approve what it asked for.
func TestRequesterCannotApproveItsOwnRequest(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	v, m, p := h.muaVault()
	e := New(Deps{Registry: h.reg, Points: h.points, PINs: h.pins, Jobs: h.jobs, Alerts: h.alerts, Blobs: fakeBlobs{},
		Auth: AppService{}, Now: h.clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Approvals: h.apprs})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	as := func(name string, roles ...string) *cpclient.Client {
		claims := map[string]string{"preferred_username": name, "roles": roles[0]}
		if len(roles) > 1 {
			claims["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"] = roles[1]
		}
		return &cpclient.Client{BaseURL: srv.URL, Header: http.Header{"X-Ms-Client-Principal": {principalHeader(t,
			claims, "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")}, wire.ReasonHeader: {"disk full"}}}
	}
	ann := as("ann@contoso.com", "Backup.Contributor", "Backup.SecurityAdmin")
	_, err := ann.DeletePoint(ctx, v.ID, m, p, "")
	a := pending(t, err)
	if a.RequestedBy != "ann@contoso.com" || a.Reason != "disk full" {
		t.Fatalf("request %+v", a)
	}
	_, err = ann.Approve(ctx, v.ID, a.ID, "")
	if status(err) != "403 "+wire.CodeForbidden {
		t.Fatalf("self-approval: %v", err)
	}
	if _, err := as("bob@contoso.com", "Backup.SecurityAdmin").Approve(ctx, v.ID, a.ID, ""); err != nil {
		t.Fatalf("another Security Admin: %v", err)
	}
	// A Security Admin alone reads, and changes nothing.
	bob := as("bob@contoso.com", "Backup.SecurityAdmin")
	if _, err := bob.Vault(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.NewPIN(ctx, v.ID); status(err) != "403 "+wire.CodeForbidden {
		t.Fatalf("Security Admin made a PIN: %v", err)
	}
}

// Turning multi-user authorization off needs an approval; turning it on
// needs nothing.
func TestTurningMultiUserAuthorizationOffNeedsApproval(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	v, _, _ := h.muaVault()
	off := false
	_, err := h.admins[RoleContributor].UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &off}, h.pin(v))
	a := pending(t, err)
	if _, err := h.admins[RoleSecurityAdmin].Approve(ctx, v.ID, a.ID, ""); err != nil {
		t.Fatal(err)
	}
	if vv, _ := h.reg.Vault(ctx, v.ID); vv.MultiUserAuth {
		t.Fatal("still on after approval")
	}
	on := true
	if vv, err := h.admins[RoleContributor].UpdateVault(ctx, v.ID, wire.VaultUpdate{MultiUserAuth: &on}, ""); err != nil || !vv.MultiUserAuth {
		t.Fatalf("turn on: %+v %v", vv, err)
	}
}

// The Security Admin is a capability beside the rank: its token reads as a
// Reader and names its own session; the app role adds to any rank and
// alone reads as a Reader.
func TestSecurityAdminIsACapabilityNotARank(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+testTokens[RoleSecurityAdmin])
	p, err := testTokens.Authenticate(r)
	if err != nil || p.Role != RoleReader || !p.SecurityAdmin || p.Name != "token:backup-security-admin" {
		t.Fatalf("Security Admin token: %+v %v", p, err)
	}
	r.Header.Set("Authorization", "Bearer "+testTokens[RoleContributor])
	if p, err := testTokens.Authenticate(r); err != nil || p.SecurityAdmin || p.Role != RoleContributor {
		t.Fatalf("Contributor token: %+v %v", p, err)
	}
	const roleURI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	for _, tc := range []struct {
		claims map[string]string
		role   Role
	}{
		{map[string]string{roleURI: "Backup.SecurityAdmin"}, RoleReader},
		{map[string]string{roleURI: "Backup.SecurityAdmin", "roles": "Backup.Contributor"}, RoleContributor},
		{map[string]string{"roles": "Backup.SecurityAdmin", roleURI: "Backup.Operator"}, RoleOperator},
	} {
		p, err := ParsePrincipal(principalHeader(t, tc.claims, roleURI))
		if err != nil || p.Role != tc.role || !p.SecurityAdmin {
			t.Errorf("%v: %+v %v; want %s and Security Admin", tc.claims, p, err, tc.role)
		}
	}
}
