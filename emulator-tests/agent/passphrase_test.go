package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// A passphrase change needs a PIN; afterwards Key Vault holds the new
// passphrase as a new version, the old one no longer opens the repository,
// the points are all still there, and the admin got a critical alert.
func TestPassphraseChangeNeedsAPINAndRetiresTheOldPassphrase(t *testing.T) {
	w := newWorld(t)
	m, secret := w.register("branch-pass")
	src := mkdir(t, filepath.Join(t.TempDir(), "data"))
	if err := makeTree(t, src, 5); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	if out, errOut, err := m.coffer("backup"); err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	kv := keyVault(t)
	old, err := kv.GetSecret(t.Context(), secret, "", nil)
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := m.coffer("passphrase", "change"); err == nil {
		t.Fatal("a passphrase change without a PIN was accepted")
	}
	var pin wire.PIN
	if _, err := w.Admin.Do(t.Context(), "POST", "/api/v1/vaults/"+w.Vault.ID+"/pin", nil, &pin); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := m.coffer("passphrase", "change", "--pin", pin.PIN); err != nil {
		t.Fatalf("passphrase change: %v\n%s%s", err, out, errOut)
	}
	now, err := kv.GetSecret(t.Context(), secret, "", nil)
	if err != nil || *now.Value == *old.Value || now.ID.Version() == old.ID.Version() {
		t.Fatalf("Key Vault after the change: %v", err)
	}
	if w.Rec.contains(*now.Value) || w.Rec.contains(*old.Value) {
		t.Fatal("a passphrase reached the control plane")
	}
	// The escrowed (new) passphrase opens the repository with every point.
	out, errOut, err := m.coffer("points", "--json")
	if err != nil || !strings.Contains(out, "\"id\"") {
		t.Fatalf("points with the new passphrase: %v\n%s%s", err, out, errOut)
	}
	// The old one does not.
	oldFile := filepath.Join(t.TempDir(), "old")
	os.WriteFile(oldFile, []byte(*old.Value), 0o600)
	if _, errOut, err := m.coffer("points", "--passphrase-file", oldFile); err == nil || !strings.Contains(errOut, "passphrase") {
		t.Fatalf("the old passphrase still opens the repository: %v %q", err, errOut)
	}
	var as []wire.Alert
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/alerts?kind="+wire.AlertCriticalOperation, nil, &as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || !strings.Contains(as[0].Title, "Passphrase") {
		t.Fatalf("alerts: %+v", as)
	}
}
