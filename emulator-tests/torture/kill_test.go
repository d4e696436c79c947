//go:build unix

package torture

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

// localKills is how many backups of a local repository a run kills: with
// a new seed each run, the suite's life adds up to thousands of moments.
const localKills = 12

// Real `coffer backup` processes on a local repository, killed with SIGKILL
// at random moments from start to finish (the bug of issue 17 was seen
// killing 10-150 ms in). After each, the next backup succeeds, `coffer
// check --read-data` passes, and every listed point is whole; at the end
// the latest point restores byte for byte.
func TestBackupsKilledAtRandomMomentsLeaveASoundRepository(t *testing.T) {
	skipShort(t)
	t.Parallel()
	rng := rng(t)
	dir := t.TempDir()
	repo, src, env, backup := localWorkspace(dir)
	initCheap(t, repo)
	mutate(t, rng, src, 8<<20)

	// How long a backup takes here and now sets the range of kill moments.
	start := time.Now()
	mustCoffer(t, env, backup...)
	took := time.Since(start)
	made := 1 // points certainly stored
	hit := 0  // kills that found the backup running
	for i := range localKills {
		mutate(t, rng, src, 8<<20)
		at := time.Duration(rng.Int64N(int64(took) + 1))
		if killAt(t, env, at, backup...) {
			hit++
		} else {
			made++ // it finished first
		}
		// The killed backup may have stored its point just before dying.
		start := time.Now()
		if r := runCoffer(env, backup...); r.err != nil {
			t.Fatalf("kill %d at %v: the next backup failed: %s", i+1, at, r)
		}
		took = time.Since(start)
		made++
		if r := runCoffer(env, "check", "--repo", repo, "--read-data"); r.err != nil {
			t.Fatalf("kill %d at %v: check --read-data after the next backup: %s", i+1, at, r)
		}
	}
	t.Logf("%d of %d kills landed during a backup (the last backup took %v)", hit, localKills, took)

	// No finished backup's point was lost; a killed one's is there only if
	// it was stored whole just before the kill.
	if n := countPoints(t, env, "--repo", repo); n < made || n > made+hit {
		t.Fatalf("%d points listed, want %d to %d", n, made, made+hit)
	}

	dst := t.TempDir()
	mustCoffer(t, env, "restore", "--repo", repo, "latest", "--target", dst)
	if diffs, err := treegen.Diff(src, filepath.Join(dst, src)); err != nil || len(diffs) > 0 {
		t.Fatalf("the latest point restores differently: %v\n%s", err, strings.Join(diffs, "\n"))
	}
}

// initCheap creates a local repository as `coffer init` does, but with
// the cheapest key derivation a reader accepts: every coffer process opens
// the repository, and the default costs half a second of two busy cores,
// time in which a kill would land before the backup has begun.
// localWorkspace lays out a standalone repository, its cache and the
// folder backed up under dir, with the environment that keeps the coffer
// process away from any real configuration, and the backup command line.
func localWorkspace(dir string) (repo, src string, env, backup []string) {
	repo, src = filepath.Join(dir, "repo"), filepath.Join(dir, "office")
	cache := filepath.Join(dir, "cache")
	env = []string{"COFFER_PASSPHRASE=" + passphrase, "COFFER_REPOSITORY=", "COFFER_CONFIG_DIR=" + filepath.Join(dir, "no-config"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "xdg")}
	backup = []string{"backup", "--repo", repo, "--cache-dir", cache, src}
	return repo, src, env, backup
}

func initCheap(t *testing.T, dir string) {
	t.Helper()
	be, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repository.Init(t.Context(), be, []byte(passphrase), repository.Options{KDF: cheapKDF}); err != nil {
		t.Fatal(err)
	}
}

// killAt starts coffer with args and kills it with SIGKILL after d, and
// reports whether it was still running then.
func killAt(t *testing.T, env []string, d time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(coffer, args...)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(d) // the kill moment itself, not a wait for a condition
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("coffer %s failed before it was killed: %v", strings.Join(args, " "), err)
		}
		return false
	case <-timer.C:
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return true
	}
	if err != nil {
		t.Fatalf("coffer %s failed: %v", strings.Join(args, " "), err)
	}
	return false // it exited in the instant before the signal
}

// countPoints is how many points `coffer points` lists.
func countPoints(t *testing.T, env []string, args ...string) int {
	t.Helper()
	r := mustCoffer(t, env, append([]string{"points", "--json"}, args...)...)
	var list []json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("coffer points --json printed %q: %v", r.stdout, err)
	}
	return len(list)
}
