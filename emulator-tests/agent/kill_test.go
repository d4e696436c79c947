package agent

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// A scheduled backup killed with kill -9 is run again when the agent
// restarts, and the point made before it is still there and restorable.
func TestKilledBackupIsRetriedAndNoEarlierPointIsLost(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-kill")
	ctx := t.Context()
	src := mkdir(t, filepath.Join(t.TempDir(), "office"))
	if err := treegen.Make(src, treegen.Options{Files: 20, MaxSize: 8192, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	setPolicy := func(throttled bool) {
		p := policy.Default("Europe/London")
		p.Include = []string{src}
		if throttled { // slow enough to kill in the middle
			all := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
			p.Throttle = policy.Throttle{Enabled: true, WorkDays: all, WorkStart: "00:00", WorkEnd: "24:00", WorkKbps: 512, NonWorkKbps: 512}
		}
		if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/p", p, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "p"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	setPolicy(false)
	out, errOut, err := m.coffer("backup")
	if err != nil {
		t.Fatalf("first backup: %v\n%s%s", err, out, errOut)
	}
	firstPoint := lastLine(out)
	before := filepath.Join(t.TempDir(), "before")
	if out, errOut, err := m.coffer("restore", firstPoint[:12], "--target", before); err != nil {
		t.Fatalf("restore the first point: %v\n%s%s", err, out, errOut)
	}

	big := make([]byte, 3<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(src, "scan.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	setPolicy(true)
	clock := filepath.Join(t.TempDir(), "clock")
	setClock(t, clock, time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC))
	cmd := exec.Command(coffer, "run", "--config-dir", m.Dir)
	cmd.Env = append(os.Environ(), w.env...)
	cmd.Env = append(cmd.Env, "COFFER_TEST_CLOCK="+clock, "XDG_CACHE_HOME="+filepath.Join(m.Dir, "cache"), "COFFER_LOG_DIR="+filepath.Join(m.Dir, "logs"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)                              // real time to read the policy
	setClock(t, clock, time.Date(2027, 6, 1, 20, 5, 0, 0, time.UTC)) // 21:05 BST: the 21:00 run is due
	deadline := time.Now().Add(30 * time.Second)
	for {
		js := w.backupJobs(m)
		// Running, and its progress visible to the admin.
		if len(js) == 2 && js[0].Status == wire.StatusInProgress && js[0].Progress.FilesTotal > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the scheduled backup did not start: %+v", js)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// Restarted, with the bandwidth limit lifted, it backs up again.
	setPolicy(false)
	m.startRun(t, clock)
	deadline = time.Now().Add(60 * time.Second)
	for {
		js := w.backupJobs(m)
		if len(js) == 3 && js[0].Status == wire.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed backup was not run again: %+v", js)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ps []wire.Point
	if _, err := w.Admin.Do(ctx, "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/points", nil, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].ID != firstPoint {
		t.Fatalf("points after the retry: %+v (first was %s)", ps, firstPoint)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if out, errOut, err := m.coffer("restore", firstPoint[:12], "--target", target); err != nil {
		t.Fatalf("restore the first point: %v\n%s%s", err, out, errOut)
	}
	if diffs, err := treegen.Diff(filepath.Join(before, src), filepath.Join(target, src)); err != nil || len(diffs) > 0 {
		t.Fatalf("the first point changed: %v %v", err, diffs)
	}
	if out, errOut, err := m.coffer("check", "--read-data"); err != nil {
		t.Fatalf("check after the kill: %v\n%s%s", err, out, errOut)
	}
}

func lastLine(s string) string {
	lines := []string{}
	for _, l := range splitLines(s) {
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
