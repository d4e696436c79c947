package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// In a vault, restic's backup options add to the policy's exclusions; a
// dry run starts no job and stores no point; tags show in `coffer points`;
// and TAB completes the vault's points, vaults and machines.
func TestBackupOptionsInAVault(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-options")
	src := mkdir(t, filepath.Join(t.TempDir(), "home"))
	if err := treegenMake(src, 16); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"report.docx":        "keep",
		"scratch.tmp":        "dropped by the policy",
		"app.log":            "dropped by --exclude",
		"cache/CACHEDIR.TAG": archiver.CacheDirTagSignature + "\n",
		"cache/blob":         "dropped by --exclude-caches",
	} {
		p := filepath.Join(src, name)
		mkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := policy.Default("UTC")
	p.Include = []string{src}
	p.Exclude = []string{"*.tmp"}
	ctx := t.Context()
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/opts", p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "opts"}, nil); err != nil {
		t.Fatal(err)
	}
	jobs := func() int {
		t.Helper()
		js, err := w.Admin.Jobs(ctx, w.Vault.ID, cpclient.JobFilter{Machine: m.ID, Type: wire.JobBackup})
		if err != nil {
			t.Fatal(err)
		}
		return len(js)
	}
	flags := []string{"--exclude", "*.log", "--exclude-caches", "--tag", "before-upgrade"}

	out, errOut, err := m.coffer(append([]string{"backup", "--dry-run", "--json"}, flags...)...)
	if err != nil {
		t.Fatalf("backup --dry-run: %v\n%s%s", err, out, errOut)
	}
	var dry struct {
		DryRun bool
		Read   []struct{ Path string }
	}
	if err := json.Unmarshal([]byte(out), &dry); err != nil || !dry.DryRun {
		t.Fatalf("dry run JSON %q: %v", out, err)
	}
	var read []string
	for _, f := range dry.Read {
		read = append(read, strings.TrimPrefix(f.Path, src+"/"))
	}
	if !slices.Contains(read, "report.docx") || slices.Contains(read, "scratch.tmp") || slices.Contains(read, "app.log") || slices.Contains(read, "cache/blob") {
		t.Errorf("the dry run would read %q: want report.docx, and neither the policy's nor the flags' exclusions", read)
	}
	if n := jobs(); n != 0 {
		t.Errorf("a dry run recorded %d backup jobs in the vault; want none", n)
	}
	if out, _, _ := m.coffer("points", "--json"); strings.Contains(out, `"id"`) {
		t.Errorf("a dry run stored a point: %s", out)
	}

	out, errOut, err = m.coffer(append([]string{"backup", "--limit-upload", "100000"}, flags...)...)
	if err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	id := lastLine(out)
	if n := jobs(); n != 1 {
		t.Errorf("%d backup jobs after one backup", n)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if out, errOut, err := m.coffer("restore", "latest", "--target", target); err != nil {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	for name, want := range map[string]bool{"report.docx": true, "scratch.tmp": false, "app.log": false, "cache": false} {
		_, err := os.Stat(filepath.Join(target, src, name))
		if got := err == nil; got != want {
			t.Errorf("%s restored = %v, want %v", name, got, want)
		}
	}
	if out, errOut, err := m.coffer("points", "--tag", "before-upgrade"); err != nil || !strings.Contains(out, id[:12]) || !strings.Contains(out, "before-upgrade") {
		t.Errorf("points --tag: %v\n%s%s", err, out, errOut)
	}

	// Completion: the vault's points for the agent, vaults and machines for
	// the admin.
	// The word being completed comes last, so --config-dir goes first.
	complete := func(admin bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(coffer, append([]string{"__complete"}, args...)...)
		cmd.Env = append(append(os.Environ(), w.env...), "COFFER_PASSPHRASE=", "COFFER_REPOSITORY=")
		if admin {
			cmd.Env = append(cmd.Env, "COFFER_CONTROL_PLANE_URL="+w.URL, "COFFER_ADMIN_TOKEN="+contributorToken)
		}
		b, err := cmd.Output()
		if err != nil {
			t.Errorf("__complete %v: %v", args, err)
		}
		return string(b)
	}
	if out := complete(false, "restore", "--config-dir", m.Dir, ""); !strings.Contains(out, id[:12]) {
		t.Errorf("__complete restore through the vault: %s", out)
	}
	if out := complete(true, "admin", "machines", ""); !strings.Contains(out, w.Vault.Name) {
		t.Errorf("__complete admin machines VAULT: %s", out)
	}
	if out := complete(true, "admin", "machine", w.Vault.Name, ""); !strings.Contains(out, "branch-options") {
		t.Errorf("__complete admin machine VAULT MACHINE: %s", out)
	}
	if out := complete(true, "admin", "point", "delete", w.Vault.Name, "branch-options", ""); !strings.Contains(out, id) {
		t.Errorf("__complete admin point delete VAULT MACHINE POINT: %s", out)
	}
}
