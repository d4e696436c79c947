// Package proc starts the emulators' child processes and stops them by PID.
//
// Every child runs in its own process group, so stopping it also stops
// anything it spawned, and a stop escalates from a polite signal to a kill
// after a grace period. Readiness is read from the child's output: emulators
// print the addresses they listen on, which lets them bind port 0 and avoid
// races over "free" ports.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Spec describes a child process to start.
type Spec struct {
	Name    string   // for messages: "azurite", "servicebus"
	Path    string   // executable
	Args    []string // arguments, without the executable
	Dir     string   // working directory; empty means the caller's
	Env     []string // extra environment, appended to the caller's
	LogPath string   // where the child's stdout and stderr go; empty discards them

	// Ready is called with each line the child prints until it returns true.
	// It usually parses listening addresses out of the line.
	Ready func(line string) bool
	// ReadyTimeout bounds the wait for Ready; zero means 60 s.
	ReadyTimeout time.Duration
}

// Process is a running child.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start launches the child and waits until it reports ready, exits, or the
// timeout passes. On any failure the child is stopped before Start returns.
func Start(ctx context.Context, s Spec) (*Process, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.Env...)
	setProcessGroup(cmd)

	var log io.Writer = io.Discard
	var logFile *os.File
	if s.LogPath != "" {
		f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log for %s: %w", s.Name, err)
		}
		logFile, log = f, f
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw

	if err := cmd.Start(); err != nil {
		pw.Close()
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", s.Name, s.Path, err)
	}
	p := &Process{name: s.Name, cmd: cmd, done: make(chan struct{})}

	ready := make(chan struct{})
	drained := make(chan struct{})
	var tail lastLines
	go func() {
		defer close(drained)
		// Keep draining after readiness so the child never blocks on a full pipe.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		isReady := s.Ready == nil
		if isReady {
			close(ready)
		}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if !isReady {
				tail.add(line)
				if s.Ready(line) {
					isReady = true
					close(ready)
				}
			}
		}
		io.Copy(log, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		// Done means the output is read too, so an early exit's message is
		// in tail when Start reports it.
		<-drained
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()

	timeout := s.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v); its last output:\n%s", s.Name, p.err, tail.String())
	case <-timer.C:
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("%s was not ready within %s; its last output:\n%s", s.Name, timeout, tail.String())
	case <-ctx.Done():
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("start %s: %w", s.Name, ctx.Err())
	}
}

// PID is the child's process ID, which is also its process group ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop signals the child's process group to terminate, waits up to grace,
// then kills it. It returns once the child has exited; calling it again is safe.
func (p *Process) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = terminateGroup(p.PID())
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		if err := killGroup(p.PID()); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("kill %s (pid %d): %w", p.name, p.PID(), err)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.stopErr = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.PID())
		}
	})
	return p.stopErr
}

// StopPID stops a process this program did not start (one recorded in a PID
// file by an earlier run): it signals the group, waits up to grace for the
// process to go, then kills it.
func StopPID(pid int, grace time.Duration) error {
	if !Alive(pid) {
		return nil
	}
	_ = terminateGroup(pid)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = killGroup(pid)
	for range 100 {
		if !Alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not exit after SIGKILL", pid)
}

// lastLines keeps the last few lines a child printed, for error messages.
type lastLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 20 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "  " + strings.Join(l.lines, "\n  ")
}
