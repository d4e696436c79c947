//go:build unix

package measure

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// Go starts a child with vfork: parent and child share one address space
// until exec, and the kernel seeds the child's ru_maxrss with that space's
// peak. So every command a harness runs reported at least the harness's
// own peak RSS (a harness that once held 128 MiB saw restic and coffer
// alike "use" 128 MiB for a tiny step). A launcher, a fresh copy of this
// program doing nothing else, starts the command instead and reports the
// command's own usage to the harness; the floor becomes the launcher's few
// MiB.

// launcherEnv marks a process started as a launcher.
const launcherEnv = "COFFER_MEASURE_LAUNCHER"

// LaunchDelayEnv makes a launcher wait this long (a Go duration) before
// it starts the command: tests stand for a launcher slow to start, as one
// whose binary was just dropped from the page cache is.
const LaunchDelayEnv = "COFFER_MEASURE_LAUNCH_DELAY"

// Usage is what one command used, as its launcher saw it.
type Usage struct {
	// Start is when the launcher started the command, for times the
	// harness takes of the command's output (its first byte).
	Start time.Time
	// Wall runs from just before the command starts to its exit: the
	// launcher's own start (its binary is read from a cold disk after each
	// drop of the page cache, 15-25 ms here) and exit are the harness's
	// cost, not the command's.
	Wall      time.Duration
	User, Sys time.Duration
	MaxRSS    int64 // bytes
	ExitCode  int   // -1 if it was killed by a signal
}

// MaybeLaunch makes this process a launcher if it was started as one: it
// runs os.Args[1:], writes the command's Usage to file descriptor 3 and
// exits with the command's exit code. Call it first in main (and in
// TestMain of tests that measure commands); otherwise it returns at once.
func MaybeLaunch() {
	if os.Getenv(launcherEnv) == "" {
		return
	}
	os.Unsetenv(launcherEnv)
	if d, err := time.ParseDuration(os.Getenv(LaunchDelayEnv)); err == nil {
		time.Sleep(d)
	}
	os.Unsetenv(LaunchDelayEnv)
	report := os.NewFile(3, "usage report")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "launcher: no command")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = dieWithParent()
	// The harness interrupts the launcher; the command is what must stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "launcher: %v\n", err)
		os.Exit(127)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	u := Usage{Start: start, Wall: time.Since(start), ExitCode: cmd.ProcessState.ExitCode(), User: cmd.ProcessState.UserTime(), Sys: cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.MaxRSS = MaxRSSBytes(ru)
	}
	json.NewEncoder(report).Encode(u)
	report.Close()
	if u.ExitCode < 0 {
		os.Exit(128 + 9)
	}
	os.Exit(u.ExitCode)
}

// Launch is a command made to go through a launcher.
type Launch struct {
	r, w *os.File
}

// ThroughLauncher rewrites cmd, before it starts, to run through a
// launcher. Call Started after cmd.Start, and Usage after cmd.Wait.
func ThroughLauncher(cmd *exec.Cmd) (*Launch, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to launch through: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe for the usage report: %w", err)
	}
	cmd.Args = append([]string{self, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = self
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, launcherEnv+"=1")
	cmd.ExtraFiles = append([]*os.File{w}, cmd.ExtraFiles...)
	return &Launch{r: r, w: w}, nil
}

// Started closes the harness's copy of the report's write end, so the
// report ends when the launcher exits.
func (l *Launch) Started() { l.w.Close() }

// Usage reads the launcher's report; false if it wrote none (it failed to
// start the command, or was killed).
func (l *Launch) Usage() (Usage, bool) {
	defer l.r.Close()
	var u Usage
	if err := json.NewDecoder(l.r).Decode(&u); err != nil {
		return Usage{}, false
	}
	return u, true
}
