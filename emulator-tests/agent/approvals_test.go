package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// With multi-user authorization on, the real agent's passphrase change is a
// request: `coffer passphrase change` says it waits and how it is
// approved; once a Backup Security Admin approves it, the same command
// changes the passphrase, and the old one no longer opens the repository.
func TestPassphraseChangeWaitsForASecurityAdmin(t *testing.T) {
	w := newWorld(t, func(env map[string]string) { env[config.TokenSecurityAdmin] = inproc.SecurityAdminToken })
	ctx := t.Context()
	on := true
	if _, err := w.Admin.UpdateVault(ctx, w.Vault.ID, wire.VaultUpdate{MultiUserAuth: &on}, ""); err != nil {
		t.Fatalf("turning multi-user authorization on needs nothing: %v", err)
	}
	m, secret := w.register("branch-mua")
	src := mkdir(t, filepath.Join(t.TempDir(), "data"))
	if err := makeTree(t, src, 3); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	if out, errOut, err := m.coffer("backup"); err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	kv := keyVault(t)
	old, err := kv.GetSecret(ctx, secret, "", nil)
	if err != nil {
		t.Fatal(err)
	}

	_, errOut, err := m.coffer("passphrase", "change")
	if err == nil || !strings.Contains(errOut, "approvals approve") {
		t.Fatalf("a passphrase change under multi-user authorization: %v %q; want it to wait for approval", err, errOut)
	}
	if now, _ := kv.GetSecret(ctx, secret, "", nil); now.ID.Version() != old.ID.Version() {
		t.Fatal("Key Vault got a new passphrase before any approval")
	}
	sec := &cpclient.Client{BaseURL: w.URL, Token: inproc.SecurityAdminToken}
	pending, err := sec.Approvals(ctx, w.Vault.ID, wire.ApprovalPending)
	if err != nil || len(pending) != 1 || !strings.Contains(pending[0].RequestedBy, "branch-mua") {
		t.Fatalf("pending requests %+v (%v), want the machine's", pending, err)
	}
	if r, err := sec.Approve(ctx, w.Vault.ID, pending[0].ID, ""); err != nil || r.Status != wire.ApprovalExecuted {
		t.Fatalf("approve: %+v %v", r, err)
	}
	if out, errOut, err := m.coffer("passphrase", "change"); err != nil {
		t.Fatalf("the approved passphrase change: %v\n%s%s", err, out, errOut)
	}
	now, err := kv.GetSecret(ctx, secret, "", nil)
	if err != nil || *now.Value == *old.Value {
		t.Fatalf("Key Vault after the change: %v", err)
	}
	oldFile := filepath.Join(t.TempDir(), "old")
	os.WriteFile(oldFile, []byte(*old.Value), 0o600)
	if _, errOut, err := m.coffer("points", "--passphrase-file", oldFile); err == nil || !strings.Contains(errOut, "passphrase") {
		t.Fatalf("the old passphrase still opens the repository: %v %q", err, errOut)
	}
	if out, errOut, err := m.coffer("points", "--json"); err != nil || !strings.Contains(out, "\"id\"") {
		t.Fatalf("points with the new passphrase: %v\n%s%s", err, out, errOut)
	}
}
