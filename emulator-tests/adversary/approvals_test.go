package adversary

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 12 (issue 16): a stolen Contributor token in a vault with
// multi-user authorization on. With PINs it makes itself it tries every
// operation that needs one, and turning the setting off; each only becomes
// a request. Then every other credential an attacker may hold (the
// Contributor, Operator and Reader tokens, a wrong token, none, the
// machine's own signing key) tries the approval routes; all are refused
// and nothing runs. A request past its time limit cannot be approved. A
// Security Admin's approval runs the request once, exactly as asked, and
// its replay is refused.
func TestStolenContributorCanOnlyRequestWithMultiUserAuthorization(t *testing.T) {
	ctx := t.Context()
	sec := &cpclient.Client{BaseURL: fx.cp.url, Token: securityAdminToken}
	var v wire.Vault
	if _, err := fx.contributor.Do(ctx, "POST", wire.Version+"/vaults", wire.NewVault{Name: "mua-branch", AlertRecipients: []string{"ops@branch.example"}}, &v); err != nil {
		t.Fatal(err)
	}
	if !v.MultiUserAuth {
		t.Fatalf("a new vault has multi-user authorization off: %+v", v)
	}
	m, err := fx.register(ctx, v, "mua-victim")
	if err != nil {
		t.Fatal(err)
	}
	m.src = filepath.Join(fx.dir, "src", m.name)
	if err := os.MkdirAll(m.src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(m.src, treegen.Options{Seed: 1600, Files: 12, MaxSize: 32 << 10}); err != nil {
		t.Fatal(err)
	}
	long, short := policy.Default("UTC"), policy.Default("UTC")
	long.Retention.DailyDays, short.Retention = 180, policy.Retention{DailyDays: 7}
	long.Include, short.Include = []string{m.src}, []string{m.src}
	base := wire.Version + "/vaults/" + v.ID
	for name, p := range map[string]policy.Policy{"long": long, "short": short} {
		if _, err := fx.contributor.Do(ctx, "PUT", base+"/policies/"+name, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fx.contributor.Do(ctx, "PUT", base+"/machines/"+m.id+"/policy", wire.AssignPolicy{Policy: "long"}, nil); err != nil {
		t.Fatal(err)
	}
	point, err := m.backup(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A hold keeps the point a year: extending needs no approval.
	hold := time.Now().Add(365 * 24 * time.Hour)
	if _, err := fx.contributor.Do(ctx, "PATCH", base+"/machines/"+m.id+"/points/"+point, wire.PointUpdate{RetainUntil: &hold}, nil); err != nil {
		t.Fatalf("extending a point's hold: %v", err)
	}

	off := false
	type attack struct {
		name, method, path string
		body               any
	}
	attacks := []attack{
		{"delete the point", "DELETE", base + "/machines/" + m.id + "/points/" + point, nil},
		{"delete the machine's data", "POST", base + "/machines/" + m.id + "/stop", wire.StopProtection{DeleteData: true}},
		{"assign the 7-day policy", "PUT", base + "/machines/" + m.id + "/policy", wire.AssignPolicy{Policy: "short"}},
		{"edit its policy to 7 days", "PUT", base + "/policies/long", short},
		{"clear the point's hold", "PATCH", base + "/machines/" + m.id + "/points/" + point, wire.PointUpdate{RetainUntil: nil}},
		{"turn security features off", "PATCH", base, wire.VaultUpdate{SecurityFeatures: &off}},
		{"turn multi-user authorization off", "PATCH", base, wire.VaultUpdate{MultiUserAuth: &off}},
	}
	var requests []wire.Approval
	for _, a := range attacks {
		pin := newPIN(t, fx.contributor, v.ID)
		_, err := fx.contributor.Do(ctx, a.method, a.path, a.body, nil, pinHeader(pin))
		r, ok := cpclient.Pending(err)
		if !ok {
			t.Errorf("%s with a PIN: %v; want 202 and a pending approval request", a.name, err)
			continue
		}
		requests = append(requests, r)
	}
	// The machine's own key asks for a passphrase change: a request too.
	_, err = m.agent(fx.cp).Do(ctx, "POST", wire.Version+"/agent/passphrase-change", nil, nil, pinHeader(newPIN(t, fx.contributor, v.ID)))
	agentReq, ok := cpclient.Pending(err)
	if !ok {
		t.Errorf("a passphrase change with a PIN: %v; want a pending approval request", err)
	}

	// Every credential but the Security Admin's is refused on the approval
	// routes.
	for _, r := range requests {
		for _, verb := range []string{"approve", "reject"} {
			path := base + "/approvals/" + r.ID + "/" + verb
			for who, c := range map[string]*cpclient.Client{
				"Contributor": fx.contributor, "Operator": fx.operator, "Reader": fx.reader,
				"a wrong token": {BaseURL: fx.cp.url, Token: randomHex(16)}, "no token": {BaseURL: fx.cp.url},
				"the machine's key": m.agent(fx.cp),
			} {
				_, err := c.Do(ctx, "POST", path, wire.ApprovalDecision{Note: "ok"}, nil, pinHeader(newPIN(t, fx.contributor, v.ID)))
				if s := status(err); s != http.StatusForbidden && s != http.StatusUnauthorized {
					t.Errorf("%s: %s %s: %v; want 401 or 403", r.Operation, who, verb, err)
				}
			}
		}
	}
	got, err := fx.reader.Approvals(ctx, v.ID, wire.ApprovalPending)
	if err != nil || len(got) != len(requests)+1 {
		t.Fatalf("pending requests %d (%v), want %d", len(got), err, len(requests)+1)
	}
	check := func(when string, wantPoints int, wantState string) {
		t.Helper()
		var mm wire.Machine
		if _, err := fx.reader.Do(ctx, "GET", base+"/machines/"+m.id, nil, &mm); err != nil {
			t.Fatal(err)
		}
		var vv wire.Vault
		if _, err := fx.reader.Do(ctx, "GET", base, nil, &vv); err != nil {
			t.Fatal(err)
		}
		if n := len(points(t, fx.reader, v.ID, m.id, false)); n != wantPoints || mm.State != wantState || mm.Policy != "long" || !vv.SecurityFeatures || !vv.MultiUserAuth {
			t.Fatalf("%s: %d points, machine %s on %q, vault %+v; want %d points, %s on long, both settings on", when, n, mm.State, mm.Policy, vv, wantPoints, wantState)
		}
	}
	check("after the attacks", 1, wire.MachineProtected)

	// A day later (on a control plane whose clock moved) none can be
	// approved, even by the Security Admin.
	tm := timeMachine(t)
	tm.advance(t, 24*time.Hour+time.Minute)
	late := &cpclient.Client{BaseURL: tm.url, Token: securityAdminToken}
	for _, r := range append(requests, agentReq) {
		if _, err := late.Approve(ctx, v.ID, r.ID, ""); cpclient.Code(err) != wire.CodeApprovalExpired {
			t.Errorf("approving %q after its time limit: %v; want %s", r.Operation, err, wire.CodeApprovalExpired)
		}
	}
	check("after the time limit", 1, wire.MachineProtected)

	// Asked again, the Security Admin approves the point's deletion: it
	// runs once, and approving it again is refused.
	_, err = fx.contributor.Do(ctx, "DELETE", base+"/machines/"+m.id+"/points/"+point, nil, nil)
	r, ok := cpclient.Pending(err)
	if !ok {
		t.Fatalf("asking again: %v", err)
	}
	done, err := sec.Approve(ctx, v.ID, r.ID, "ticket 16")
	if err != nil || done.Status != wire.ApprovalExecuted {
		t.Fatalf("the Security Admin's approval: %+v %v", done, err)
	}
	if _, err := sec.Approve(ctx, v.ID, r.ID, ""); cpclient.Code(err) != wire.CodeApprovalDecided {
		t.Errorf("approving it again: %v; want %s", err, wire.CodeApprovalDecided)
	}
	check("after the approval", 0, wire.MachineProtected)
	// Soft-deleted, so it comes back without any approval.
	if _, err := fx.contributor.Do(ctx, "POST", base+"/machines/"+m.id+"/points/"+point+"/undelete", nil, nil); err != nil {
		t.Fatal(err)
	}
	check("after the undelete", 1, wire.MachineProtected)
}
