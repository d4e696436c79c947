//go:build unix

package measure

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunMeasuresTimeAndMemoryOfChildren(t *testing.T) {
	// The shell starts a child that holds 64 MiB; the peak must include it
	// because getrusage counts waited-for descendants.
	r, err := Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", "head -c 67108864 /dev/zero | tail -c 67108864 >/dev/null; echo done; echo point-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.MaxRSS < 60<<20 {
		t.Errorf("max RSS %d bytes, want at least 60 MiB from tail's buffer", r.MaxRSS)
	}
	if r.Wall <= 0 || r.ExitCode != 0 || r.LastLine() != "point-1" {
		t.Errorf("got %+v", r)
	}
}

func TestRunReportsFailureWithStderr(t *testing.T) {
	r, err := Run(context.Background(), Cmd{Path: "sh", Args: []string{"-c", "echo first >&2; echo 'repository not found' >&2; exit 3"}})
	if err == nil || r.ExitCode != 3 || !strings.Contains(err.Error(), "repository not found") {
		t.Fatalf("err %v, exit %d: want exit 3 quoting stderr's last line", err, r.ExitCode)
	}
}

func TestDiskUsageCountsBlocks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n < 100<<10 {
		t.Errorf("disk usage %d, want at least 100 KiB", n)
	}
	if _, err := DiskUsage(filepath.Join(dir, "missing")); err == nil {
		t.Error("disk usage of a missing folder succeeded")
	}
}

func TestMain(m *testing.M) {
	MaybeLaunch()
	os.Exit(m.Run())
}

// Go starts children with vfork, which seeds a child's peak RSS with the
// parent's; measured through the launcher, a tiny command stays tiny
// however much the harness once held.
func TestTheHarnessPeakDoesNotCountForTheCommand(t *testing.T) {
	held := make([]byte, 256<<20)
	for i := range held {
		held[i] = 1
	}
	r, err := Run(context.Background(), Cmd{Path: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if r.MaxRSS <= 0 || r.MaxRSS > 64<<20 {
		t.Errorf("true used %d MiB while the harness held 256 MiB; want its own few MiB", r.MaxRSS>>20)
	}
	held[len(held)-1] = 2 // keep it live until after the run
}

// A command's time is its own: a launcher slow to start (its binary read
// from a cold disk after the page cache was dropped) is not charged to it.
func TestTheLaunchersStartIsNotTheCommandsTime(t *testing.T) {
	const delay = 2 * time.Second
	t.Setenv(LaunchDelayEnv, delay.String())
	start := time.Now()
	r, err := Run(context.Background(), Cmd{Path: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < delay {
		t.Fatalf("the launcher did not wait %v before starting the command; the test proves nothing", delay)
	}
	if r.Wall >= delay {
		t.Errorf("true took %v, which counts the launcher's %v start", r.Wall, delay)
	}
}
