package agent

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// setClock writes the agent's test clock atomically.
func setClock(t *testing.T, path string, at time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(at.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startRun starts `coffer run` with the test clock; stop it with the
// returned function.
func (m *machine) startRun(t *testing.T, clock string) func() {
	t.Helper()
	cmd := exec.Command(coffer, "run", "-v", "--config-dir", m.Dir)
	cmd.Env = append(os.Environ(), m.w.env...)
	cmd.Env = append(cmd.Env, "COFFER_TEST_CLOCK="+clock, "XDG_CACHE_HOME="+filepath.Join(m.Dir, "cache"), "COFFER_LOG_DIR="+filepath.Join(m.Dir, "logs"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("coffer run log:\n%s", logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

func (w *world) backupJobs(m *machine) []wire.Job {
	w.t.Helper()
	var js []wire.Job
	if _, err := w.Admin.Do(w.t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/jobs?type=backup&machine="+m.ID, nil, &js); err != nil {
		w.t.Fatal(err)
	}
	return js
}

// waitJobs waits until the machine has n finished backup jobs, and checks
// it does not get more for a while.
func (w *world) waitJobs(m *machine, n int) []wire.Job {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		js := w.backupJobs(m)
		done := 0
		for _, j := range js {
			if j.Status != wire.StatusInProgress {
				done++
			}
		}
		if done >= n && len(js) == done {
			time.Sleep(1500 * time.Millisecond) // real time for an extra run to show itself
			if again := w.backupJobs(m); len(again) != n {
				w.t.Fatalf("%d backup jobs, want %d: %+v", len(again), n, again)
			}
			return js
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("waited for %d finished backups, have %+v", n, js)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The agent backs up on the policy's schedule in its time zone: 01:30 in
// London does not exist on the spring-forward night, so that night's backup
// runs at 02:00 BST, once. After three days switched off it makes exactly
// one catch-up backup.
func TestScheduledBackupsThroughADSTChangeAndOneCatchUp(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-sched")
	src := filepath.Join(t.TempDir(), "docs")
	if err := treegen.Make(mkdir(t, src), treegen.Options{Files: 8, MaxSize: 4096, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	p := policy.Default("Europe/London")
	p.Include = []string{src}
	p.Schedule.Times = []string{"01:30"}
	ctx := t.Context()
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/nightly", p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "nightly"}, nil); err != nil {
		t.Fatal(err)
	}

	clock := filepath.Join(t.TempDir(), "clock")
	// Saturday 27 March 2027, noon; the clocks go forward at 01:00 GMT on Sunday.
	setClock(t, clock, time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC))
	stop := m.startRun(t, clock)
	time.Sleep(2 * time.Second) // real time for the agent to start and read its policy
	if js := w.backupJobs(m); len(js) != 0 {
		t.Fatalf("backed up before the schedule: %+v", js)
	}
	// 00:50 GMT: before the gap, nothing is due.
	setClock(t, clock, time.Date(2027, 3, 28, 0, 50, 0, 0, time.UTC))
	time.Sleep(time.Second)
	if js := w.backupJobs(m); len(js) != 0 {
		t.Fatalf("backed up at 00:50 GMT: %+v", js)
	}
	// 02:05 BST: the 01:30 that did not exist ran at 02:00 BST.
	setClock(t, clock, time.Date(2027, 3, 28, 1, 5, 0, 0, time.UTC))
	first := w.waitJobs(m, 1)
	if first[0].Status != wire.StatusCompleted {
		t.Fatalf("scheduled backup: %+v", first[0])
	}

	// Off for three nights.
	stop()
	setClock(t, clock, time.Date(2027, 3, 31, 12, 0, 0, 0, time.UTC))
	m.startRun(t, clock)
	w.waitJobs(m, 2)
}
