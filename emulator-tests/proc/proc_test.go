//go:build unix

package proc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sh(t *testing.T, script string, ready func(string) bool) (*Process, error) {
	t.Helper()
	return Start(t.Context(), Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}, Ready: ready, ReadyTimeout: 5 * time.Second})
}

func TestReadyLineThenStopKillsTheWholeGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	// The shell starts a grandchild, records its PID, then says it is ready.
	p, err := sh(t, "sleep 300 & echo $! > "+pidFile+"; echo listening on 1234; wait", func(l string) bool {
		return strings.HasPrefix(l, "listening on")
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !Alive(p.PID()) || !Alive(grandchild) {
		t.Fatal("child or grandchild not running after ready")
	}
	if err := p.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if Alive(p.PID()) {
		t.Error("child still alive after Stop")
	}
	// The grandchild was re-parented; give init a moment to reap it.
	deadline := time.Now().Add(5 * time.Second)
	for Alive(grandchild) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if Alive(grandchild) {
		t.Error("grandchild outlived Stop: the process group was not signalled")
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopEscalatesToKillWhenTermIsIgnored(t *testing.T) {
	p, err := sh(t, "trap '' TERM; echo ready; while true; do sleep 0.05; done", func(l string) bool { return l == "ready" })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if Alive(p.PID()) {
		t.Fatal("still alive after Stop")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("killed before the grace period")
	}
}

func TestExitBeforeReadyReportsTheOutput(t *testing.T) {
	_, err := sh(t, "echo port 5672 is taken >&2; exit 3", func(string) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "port 5672 is taken") {
		t.Fatalf("err = %v, want the exit and the child's last output", err)
	}
}

func TestNotReadyInTimeIsStopped(t *testing.T) {
	p0 := time.Now()
	_, err := Start(context.Background(), Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "echo starting; sleep 300"},
		Ready: func(string) bool { return false }, ReadyTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "not ready within") || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(p0) > 10*time.Second {
		t.Error("Start took far longer than its timeout")
	}
}

func TestStopPIDStopsAProcessStartedElsewhere(t *testing.T) {
	p, err := sh(t, "echo ready; sleep 300", func(l string) bool { return l == "ready" })
	if err != nil {
		t.Fatal(err)
	}
	if err := StopPID(p.PID(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if Alive(p.PID()) {
		t.Fatal("still alive")
	}
	if err := StopPID(p.PID(), time.Second); err != nil {
		t.Errorf("StopPID of a gone process: %v", err)
	}
}

func TestLogFileGetsTheOutput(t *testing.T) {
	log := filepath.Join(t.TempDir(), "x.log")
	p, err := Start(t.Context(), Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "echo hello; echo ready; sleep 300"},
		LogPath: log, Ready: func(l string) bool { return l == "ready" }})
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(time.Second)
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "hello\nready\n") {
		t.Fatalf("log = %q", b)
	}
}
