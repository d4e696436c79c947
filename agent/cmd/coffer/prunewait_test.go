//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
)

// A backup that finishes while a prune holds the repository's lock waits
// for the prune, says so once, and saves its point when the prune is over.
func TestBackupWaitsForARunningPrune(t *testing.T) {
	t.Parallel()
	repo, src, cache := setup(t)
	host, _ := os.Hostname()
	lock, _ := json.Marshal(repository.PruneLockInfo{Hostname: host, PID: os.Getpid(), Time: time.Now().UTC()}) // a live process: this test
	lockPath := filepath.Join(repo, filepath.FromSlash(repository.PruneLock))
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, lock, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "backup", "--repo", repo, "--cache-dir", cache, src)
	cmd.Env = append(os.Environ(), runMain+"=1", "COFFER_PASSPHRASE="+pass)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var said []string
	for lines.Scan() {
		said = append(said, lines.Text())
		if strings.Contains(lines.Text(), "holds the repository's lock: waiting") {
			break
		}
	}
	if len(said) == 0 || !strings.Contains(said[len(said)-1], "waiting") {
		cmd.Wait()
		t.Fatalf("the backup did not say it waits for the prune:\n%s", strings.Join(said, "\n"))
	}
	if !strings.Contains(said[len(said)-1], "process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("the notice does not name the prune's process: %s", said[len(said)-1])
	}
	if err := os.Remove(lockPath); err != nil { // the prune is over
		t.Fatal(err)
	}
	for lines.Scan() {
		said = append(said, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the backup after the prune: %v\n%s", err, strings.Join(said, "\n"))
	}
	id := strings.TrimSpace(out.String())
	if r := coffer(t, nil, "points", "--repo", repo, "--cache-dir", cache); r.code != 0 || !strings.Contains(r.out, id[:12]) {
		t.Fatalf("the point %s is not listed: %+v", id, r)
	}
}
