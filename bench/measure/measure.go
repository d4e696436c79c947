//go:build unix

// Package measure runs one command and reports its wall time, CPU time and
// peak memory, and drops the page cache between timed steps.
package measure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cmd is a command to measure.
type Cmd struct {
	Path string
	Args []string
	Dir  string   // working directory; empty means the caller's
	Env  []string // added to the caller's environment
	// Log receives the command line and everything the command prints;
	// nil discards it.
	Log io.Writer
}

// Result is what one run cost.
type Result struct {
	// Wall is the command's time from its start to its exit, as the
	// launcher saw it (the harness's own, launcher included, if the
	// launcher reported nothing).
	Wall      time.Duration
	User, Sys time.Duration
	// MaxRSS is the peak resident set size in bytes of the process and of
	// every descendant it waited for (getrusage semantics: the kernel
	// reports the largest single process, not a sum), measured through a
	// launcher (launch.go) so the harness's own peak does not count.
	MaxRSS   int64
	ExitCode int
	Stdout   string // the last 64 KiB
	Stderr   string // the last 64 KiB
}

// LastLine is the last non-empty line the command printed on stdout.
func (r Result) LastLine() string {
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Run starts c, waits for it and measures it. A non-zero exit is an error
// that still carries the Result, so callers can decide (borg exits 1 for
// warnings) and can show the output.
func Run(ctx context.Context, c Cmd) (Result, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.WaitDelay = 5 * time.Second
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "$ %s %s  (in %s)\n", c.Path, strings.Join(c.Args, " "), cmd.Dir)
	// Logging goes through one lock so stdout and stderr lines do not
	// interleave mid-line in the log.
	shared := &lockedWriter{w: log}
	stdout, stderr := &tail{max: 64 << 10}, &tail{max: 64 << 10}
	cmd.Stdout = io.MultiWriter(stdout, shared)
	cmd.Stderr = io.MultiWriter(stderr, shared)

	l, err := ThroughLauncher(cmd)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	start := time.Now()
	err = cmd.Start()
	l.Started()
	if err == nil {
		err = cmd.Wait()
	}
	wall := time.Since(start)

	res := Result{Wall: wall, Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1}
	if ps := cmd.ProcessState; ps != nil {
		res.ExitCode = ps.ExitCode()
		res.User, res.Sys = ps.UserTime(), ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = MaxRSSBytes(ru)
		}
	}
	if u, ok := l.Usage(); ok {
		res.User, res.Sys, res.MaxRSS = u.User, u.Sys, u.MaxRSS
		if u.Wall > 0 {
			res.Wall = u.Wall
		}
	}
	fmt.Fprintf(log, "# exit %d, wall %s, user %s, sys %s, max RSS %d MiB\n",
		res.ExitCode, res.Wall.Round(time.Millisecond), res.User.Round(time.Millisecond), res.Sys.Round(time.Millisecond), res.MaxRSS>>20)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w%s", filepath.Base(c.Path), firstArg(c.Args), err, errTail(res.Stderr))
	}
	return res, nil
}

func firstArg(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// errTail quotes the last line of stderr in an error: the line that says why.
func errTail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return ""
	}
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return ": " + last
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tail keeps the last max bytes written to it: enough for a point ID or an
// error message without holding a verbose tool's whole output in memory.
type tail struct {
	max int
	b   bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.b.Write(p)
	// Trim only when twice over, so the copy is amortised.
	if t.b.Len() > 2*t.max {
		rest := append([]byte(nil), t.b.Bytes()[t.b.Len()-t.max:]...)
		t.b.Reset()
		t.b.Write(rest)
	}
	return len(p), nil
}

func (t *tail) String() string {
	b := t.b.Bytes()
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	return string(b)
}

// DropCaches writes back dirty pages and drops the page cache, dentries and
// inodes, so the next step reads from disk as a first backup on a real
// machine would. It needs root (or a writable /proc/sys/vm/drop_caches);
// without it, it reports why and the caller marks its figures as warm.
func DropCaches() error {
	syscall.Sync()
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("drop page cache: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString("3\n"); err != nil {
		return fmt.Errorf("drop page cache: %w", err)
	}
	return nil
}

// DiskUsage is what du reports for root: allocated blocks, so sparse or
// preallocated files count as the disk space they take.
func DiskUsage(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %s: %w", root, err)
	}
	return total, nil
}
