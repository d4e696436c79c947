package vault

import (
	"errors"
	"os/exec"
	"testing"
)

// A second job lock in the same folder is refused while the first is held,
// and granted once it is released.
func TestOnlyOneJobAtATime(t *testing.T) {
	dir := t.TempDir()
	first, err := lockJob(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockJob(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want ErrBusy", err)
	}
	first.release()
	again, err := lockJob(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.release()
}

// The lock belongs to the process: another process cannot take it either.
func TestJobLockHoldsAcrossProcesses(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1) to hold the lock from another process")
	}
	dir := t.TempDir()
	held, err := lockJob(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	out, err := exec.Command("flock", "-n", dir+"/job.lock", "true").CombinedOutput()
	if err == nil {
		t.Fatalf("another process took the held lock: %s", out)
	}
}
