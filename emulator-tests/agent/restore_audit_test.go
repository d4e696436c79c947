package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// admin runs `coffer admin` as an operator would, against this world's
// control plane.
func (w *world) admin(args ...string) (string, string, error) {
	cmd := exec.Command(coffer, append([]string{"admin"}, args...)...)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Env = append(cmd.Env, "COFFER_CONTROL_PLANE_URL="+w.URL, "COFFER_ADMIN_TOKEN="+contributorToken)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (w *world) restoreJobs(machineID string) []wire.Job {
	w.t.Helper()
	js, err := w.Admin.Jobs(w.t.Context(), w.Vault.ID, cpclient.JobFilter{Machine: machineID, Type: wire.JobRestore})
	if err != nil {
		w.t.Fatal(err)
	}
	return js
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return 0
}

// Restores are audited, as MARS lists its recoveries: each one through
// the vault is a restore job with its outcome, also a failed one and one
// from another machine. A point an admin soft-deleted is marked by
// `coffer points`; `latest` passes over it and restoring it needs
// --deleted.
func TestRestoresAreJobsAndDeletedPointsNeedDeleted(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-audit")
	src := filepath.Join(t.TempDir(), "shares")
	if err := makeTree(t, src, 12); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	backup := func() string {
		t.Helper()
		out, errOut, err := m.coffer("backup", "--json")
		var sum struct{ ID string }
		if err != nil || json.Unmarshal([]byte(out), &sum) != nil || sum.ID == "" {
			t.Fatalf("backup: %v\n%s%s", err, out, errOut)
		}
		return sum.ID
	}
	first := backup()
	if err := os.WriteFile(filepath.Join(src, "added-later.txt"), []byte("only in the second point"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := backup()

	// A restore is a job the admin sees, with its point and outcome.
	target := filepath.Join(t.TempDir(), "one")
	if out, errOut, err := m.coffer("restore", "latest", "--target", target); err != nil {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	js := w.restoreJobs(m.ID)
	if len(js) != 1 || js[0].Status != wire.StatusCompleted || js[0].PointID != second || js[0].EndedAt == nil ||
		js[0].Progress.FilesDone == 0 || !strings.Contains(js[0].Message, target) {
		t.Fatalf("restore jobs after a restore: %+v", js)
	}
	out, errOut, err := w.admin("jobs", w.Vault.Name, "--type", "restore")
	if err != nil || !strings.Contains(out, "branch-audit") || !strings.Contains(out, wire.StatusCompleted) || !strings.Contains(out, js[0].ID) {
		t.Fatalf("coffer admin jobs --type restore: %v\n%s%s", err, out, errOut)
	}

	// A failed restore is recorded as failed: the target is a file.
	notDir := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(notDir, []byte("x"), 0o644)
	if _, _, err := m.coffer("restore", "latest", "--target", notDir); err == nil {
		t.Fatal("a restore onto a file succeeded")
	}
	js = w.restoreJobs(m.ID)
	if len(js) != 2 || js[0].Status != wire.StatusFailed || js[0].ErrorCode == "" {
		t.Fatalf("restore jobs after a failed restore: %+v", js)
	}

	// An admin soft-deletes the newest point.
	pin, err := w.Admin.NewPIN(t.Context(), w.Vault.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admin.DeletePoint(t.Context(), w.Vault.ID, m.ID, second, pin.PIN); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = m.coffer("points")
	if err != nil || !strings.Contains(out, "DELETED") || strings.Count(out, "DELETED: purged after") != 1 {
		t.Fatalf("points after a delete: %v\n%s%s", err, out, errOut)
	}
	for _, line := range splitLines(out) {
		if strings.HasPrefix(line, second[:12]) != strings.Contains(line, "DELETED: purged after") {
			t.Fatalf("the wrong point is marked deleted:\n%s", out)
		}
	}
	out, _, err = m.coffer("points", "--json")
	var listed []struct {
		ID      string
		Deleted bool
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 || listed[0].Deleted || !listed[1].Deleted || listed[1].ID != second {
		t.Fatalf("points --json after a delete: %v\n%s", err, out)
	}

	// Naming it explains and asks for --deleted; no job starts.
	_, errOut, err = m.coffer("restore", second[:12], "--target", filepath.Join(t.TempDir(), "refused"))
	if exitCode(err) != 2 || !strings.Contains(errOut, "--deleted") || !strings.Contains(errOut, "point undelete") {
		t.Fatalf("restore of a deleted point: %v %q", err, errOut)
	}
	if n := len(w.restoreJobs(m.ID)); n != 2 {
		t.Fatalf("a refused restore made a job: %d jobs", n)
	}
	// latest is now the first point.
	if out, errOut, err := m.coffer("restore", "latest", "--target", filepath.Join(t.TempDir(), "latest")); err != nil || !strings.Contains(out, first[:12]) {
		t.Fatalf("restore latest with the newest point deleted: %v\n%s%s", err, out, errOut)
	}
	// --deleted restores it, and says what it is doing.
	again := filepath.Join(t.TempDir(), "deleted")
	out, errOut, err = m.coffer("restore", second[:12], "--deleted", "--target", again)
	if err != nil || !strings.Contains(errOut, "was deleted in the vault") {
		t.Fatalf("restore --deleted: %v\n%s%s", err, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(again, src, "added-later.txt")); err != nil {
		t.Fatalf("the deleted point's file: %v", err)
	}
	js = w.restoreJobs(m.ID)
	if len(js) != 4 || js[0].PointID != second || js[1].PointID != first {
		t.Fatalf("restore jobs: %+v", js)
	}

	// Another machine restores this one's data after `coffer admin
	// restore-grant`; the job is the restoring machine's and names the source.
	b, _ := w.register("branch-new")
	out, errOut, err = w.admin("restore-grant", w.Vault.Name, "branch-new", "--from", "branch-audit")
	if err != nil || !strings.Contains(out, "--from-machine branch-audit") {
		t.Fatalf("coffer admin restore-grant: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := b.coffer("restore", "latest", "--from-machine", "branch-audit", "--target", filepath.Join(t.TempDir(), "from")); err != nil {
		t.Fatalf("restore from another machine: %v\n%s%s", err, out, errOut)
	}
	js = w.restoreJobs(b.ID)
	if len(js) != 1 || js[0].Status != wire.StatusCompleted || !strings.Contains(js[0].Message, "of machine branch-audit") {
		t.Fatalf("the other machine's restore jobs: %+v", js)
	}
}
