//go:build linux

package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/mount/mounttest"
)

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// startMount runs `coffer mount` and returns once it says the mount is in
// place; the process's remaining standard error is drained to the log.
func startMount(t *testing.T, repo, cache, mnt string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "mount", "--repo", repo, "--cache-dir", cache, mnt)
	cmd.Env = append(os.Environ(), runMain+"=1", "COFFER_PASSPHRASE="+pass)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		t.Log("coffer mount:", lines.Text())
		if strings.Contains(lines.Text(), "Press Ctrl-C") {
			go io.Copy(io.Discard, stderr)
			return cmd
		}
	}
	cmd.Wait()
	t.Fatalf("coffer mount exited before mounting: %v", cmd.ProcessState)
	return nil
}

// exited waits for the process, failing the test if it has not exited
// cleanly within a minute.
func exited(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("coffer mount: %v, want exit 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("coffer mount still runs a minute after Ctrl-C")
	}
}

func TestMountUnmountsCleanlyOnCtrlC(t *testing.T) {
	mounttest.RequireFUSE(t)
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := startMount(t, repo, cache, mnt)
	if b, err := os.ReadFile(filepath.Join(mnt, "latest", src, "docs", "report.txt")); string(b) != "quarterly report\n" {
		t.Fatalf("through the mount: %q, %v", b, err)
	}
	cmd.Process.Signal(os.Interrupt)
	exited(t, cmd)
	if mounted(t, mnt) {
		t.Fatal("the mount is still there after coffer mount exited")
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Fatalf("the mount point after unmounting: %v, %v; want an empty folder", entries, err)
	}
}

func TestMountInUseIsDetachedOnCtrlCAndExitsWhenReleased(t *testing.T) {
	mounttest.RequireFUSE(t)
	repo, src, cache := setup(t)
	if r := coffer(t, nil, "backup", "--repo", repo, "--cache-dir", cache, src); r.code != 0 {
		t.Fatalf("backup: %+v", r)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := startMount(t, repo, cache, mnt)
	f, err := os.Open(filepath.Join(mnt, "latest", src, "docs", "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Process.Signal(syscall.SIGINT)
	// The open file keeps the mount busy: coffer detaches it, so it leaves
	// the folder tree while the file stays readable, which needs the
	// process still serving it: nothing was read from it before.
	deadline := time.Now().Add(time.Minute)
	for mounted(t, mnt) {
		if time.Now().After(deadline) {
			t.Fatal("the busy mount is still in place a minute after Ctrl-C")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "quarterly report\n" {
		t.Fatalf("the file opened before Ctrl-C reads %q, %v", b, err)
	}
	f.Close()
	exited(t, cmd)
}
