package api

import (
	"context"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// DeleteVault in memory, with the registry's rule: no machine left.
func (f *fakeRegistry) DeleteVault(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.vaults[id]; !ok {
		return notFound("no vault %s", id)
	}
	delete(f.vaults, id)
	return nil
}

func TestDeleteVaultNeedsAPINAndNoMachineLeft(t *testing.T) {
	h := newHarness(t)
	contributor, operator := h.admins[RoleContributor], h.admins[RoleOperator]

	// A machine, even with its data deleted, keeps the vault: 409 before
	// the PIN is looked at, so the PIN still works afterwards.
	v, m, _ := h.vault(wire.MachineDeleted)
	p := h.pin(v)
	err := contributor.DeleteVault(h.ctx(), v.ID, p)
	if status(err) != "409 conflict" || !strings.Contains(err.Error(), m.Name) {
		t.Fatalf("delete a vault with a machine: %v, want 409 naming %s", err, m.Name)
	}
	if len(h.pins.used) != 0 {
		t.Fatalf("a refused delete used the PIN: %v", h.pins.used)
	}

	delete(h.reg.machines, m.ID) // the purge took it
	for _, tc := range []struct {
		name   string
		call   func() error
		status string
	}{
		{"an Operator", func() error { return operator.DeleteVault(h.ctx(), v.ID, p) }, "403 forbidden"},
		{"no PIN", func() error { return contributor.DeleteVault(h.ctx(), v.ID, "") }, "403 " + wire.CodePINRequired},
		{"a wrong PIN", func() error { return contributor.DeleteVault(h.ctx(), v.ID, "12345678") }, "403 " + wire.CodePINInvalid},
		{"the PIN", func() error { return contributor.DeleteVault(h.ctx(), v.ID, p) }, "ok"},
		{"again", func() error { return contributor.DeleteVault(h.ctx(), v.ID, h.pin(v)) }, "404 not_found"},
	} {
		if got := status(tc.call()); got != tc.status {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.status)
		}
	}
	if _, err := contributor.Vault(h.ctx(), v.ID); status(err) != "404 not_found" {
		t.Errorf("the vault after its delete: %v", err)
	}
	var alerted bool
	for _, a := range h.alerts.raised {
		alerted = alerted || a.VaultID == v.ID && a.Kind == wire.AlertCriticalOperation && strings.Contains(a.Title, "deleted")
	}
	if !alerted {
		t.Errorf("no critical alert for the PIN's use: %+v", h.alerts.raised)
	}
}

// With multi-user authorization on, deleting a vault is a request a
// Security Admin approves; the approval runs it once.
func TestDeleteVaultWaitsForApproval(t *testing.T) {
	h := newHarness(t)
	ctx := h.ctx()
	v, err := h.reg.CreateVault(ctx, wire.NewVault{Name: "empty"}) // multi-user authorization on by default
	if err != nil {
		t.Fatal(err)
	}
	c, sec := h.admins[RoleContributor], h.admins[RoleSecurityAdmin]
	a := pending(t, c.DeleteVault(ctx, v.ID, ""))
	if a.Method != "DELETE" || !strings.Contains(a.Operation, "delete vault empty") {
		t.Fatalf("request %+v", a)
	}
	if _, err := c.Vault(ctx, v.ID); err != nil {
		t.Fatalf("the request deleted the vault: %v", err)
	}
	if r, err := sec.Approve(ctx, v.ID, a.ID, ""); err != nil || r.Status != wire.ApprovalExecuted {
		t.Fatalf("approve: %+v %v", r, err)
	}
	if _, err := c.Vault(ctx, v.ID); status(err) != "404 not_found" {
		t.Fatalf("the vault after the approval: %v", err)
	}
}
