package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// An admin names a vault as the CLI checks it, and deletes it with a PIN
// once nothing is left in it: a registered machine keeps it, and the
// refusal leaves the PIN usable. A policy written from
// `coffer admin policy template` is accepted by the real control plane.
func TestVaultCreateAndDeleteFromTheCLI(t *testing.T) {
	w := newWorld(t)
	if _, errOut, err := w.admin("vault", "create", "branch offices"); exitCode(err) != 2 || !strings.Contains(errOut, "only letters, digits") {
		t.Fatalf("a name with a space: %v %q", err, errOut)
	}
	name := fmt.Sprintf("lifecycle-%d", time.Now().UnixNano())
	out, errOut, err := w.admin("vault", "create", name, "--no-multi-user-auth", "--json")
	var v wire.Vault
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Name != name {
		t.Fatalf("vault create: %v\n%s%s", err, out, errOut)
	}

	// The template, as printed, is a policy the control plane takes.
	tmpl, errOut, err := w.admin("policy", "template", "--time-zone", "Europe/London", "--path", "/srv/data")
	if err != nil {
		t.Fatalf("policy template: %v %s", err, errOut)
	}
	file := t.TempDir() + "/policy.json"
	if err := os.WriteFile(file, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := w.admin("policy", "set", name, "office", "-f", file); err != nil {
		t.Fatalf("policy set from the template: %v\n%s%s", err, out, errOut)
	}

	// A machine keeps the vault; the PIN is not used up by the refusal.
	w.Vault = v
	w.register("branch-keep")
	pin, errOut, err := w.admin("pin", name, "--json")
	var p wire.PIN
	if err != nil || json.Unmarshal([]byte(pin), &p) != nil || p.PIN == "" {
		t.Fatalf("pin: %v\n%s%s", err, pin, errOut)
	}
	if _, errOut, err := w.admin("vault", "delete", name, "--pin", p.PIN); err == nil || !strings.Contains(errOut, "branch-keep (protected)") {
		t.Fatalf("delete a vault with a machine: %v %q", err, errOut)
	}

	if out, errOut, err := w.admin("vault", "set", name, "--security-features=false", "--pin", p.PIN); err != nil {
		t.Fatalf("the PIN after a refused delete: %v\n%s%s", err, out, errOut)
	}

	// An empty vault goes, and its name is free again.
	out, errOut, err = w.admin("vault", "create", name+"-empty", "--no-multi-user-auth", "--json")
	var empty wire.Vault
	if err != nil || json.Unmarshal([]byte(out), &empty) != nil {
		t.Fatalf("vault create: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := w.admin("vault", "delete", empty.Name, "--pin", p.PIN); err == nil || !strings.Contains(errOut, "pin") {
		t.Fatalf("another vault's PIN: %v %q", err, errOut)
	}
	pin2, _, _ := w.admin("pin", empty.ID, "--json")
	json.Unmarshal([]byte(pin2), &p)
	if out, errOut, err := w.admin("vault", "delete", empty.Name, "--pin", p.PIN); err != nil || !strings.Contains(out, "is deleted") {
		t.Fatalf("delete an empty vault: %v\n%s%s", err, out, errOut)
	}
	if _, errOut, err := w.admin("vault", "show", empty.ID); err == nil || !strings.Contains(errOut, "no vault") {
		t.Fatalf("show a deleted vault: %v %q", err, errOut)
	}
	if _, _, err := w.admin("vault", "create", empty.Name); err != nil {
		t.Fatalf("the name of a deleted vault is not free: %v", err)
	}
}
