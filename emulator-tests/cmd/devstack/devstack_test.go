package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/emulator-tests/stack"
)

func TestDemoShowsEachEmulatorAnswersAndLeavesNothingBehind(t *testing.T) {
	var out bytes.Buffer
	rep, err := runDemo(t.Context(), &out, filepath.Join(t.TempDir(), "demo"), defaultSteps())
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"wrote demo/hello.txt", "table demojobs", "queue alerts", "secret machine-branch-srv01", "the sink captured it",
		"Demo finished: all 5 checks passed.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	if len(rep.PIDs) != 2 || len(rep.Addrs) < 7 {
		t.Fatalf("demo ran pids %v on %v, want azurite and servicebus on 7 addresses", rep.PIDs, rep.Addrs)
	}
	if err := stack.CheckGone(rep.PIDs, rep.Addrs); err != nil {
		t.Fatal(err)
	}
}

func TestDemoStopsEverythingWhenAStepFails(t *testing.T) {
	ranAfter := false
	steps := []demoStep{
		defaultSteps()[0],
		{"a step that breaks", func(context.Context, *stack.Stack) (string, error) { return "", errors.New("boom") }},
		{"a step after it", func(context.Context, *stack.Stack) (string, error) { ranAfter = true; return "", nil }},
	}
	var out bytes.Buffer
	rep, err := runDemo(t.Context(), &out, filepath.Join(t.TempDir(), "demo"), steps)
	if err == nil || !strings.Contains(err.Error(), `"a step that breaks"`) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("demo error = %v, want the failing step named with its cause", err)
	}
	if ranAfter {
		t.Error("the demo went on after a failed step")
	}
	if !strings.Contains(out.String(), "FAILED: boom") || !strings.Contains(out.String(), "no port is left open") {
		t.Errorf("output:\n%s", out.String())
	}
	if len(rep.PIDs) == 0 {
		t.Fatal("no processes recorded")
	}
	if err := stack.CheckGone(rep.PIDs, rep.Addrs); err != nil {
		t.Fatal(err)
	}
}

// make dev-up and make dev-down: the stack outlives the command that
// started it, and down stops every process it recorded.
func TestUpStatusDownLeaveNothingBehind(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "devstack")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "dev")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--dir", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("devstack %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("up"); !strings.Contains(out, "The local stack is up.") {
		t.Fatalf("up: %s", out)
	}
	st, err := readState(dir)
	if err != nil || st == nil {
		t.Fatalf("state after up: %v %v", st, err)
	}
	t.Cleanup(func() { run("down") }) // if an assertion below fails
	if out := run("up"); !strings.Contains(out, "already running") {
		t.Errorf("second up: %s", out)
	}
	if out := run("status"); !strings.Contains(out, "running since") || !strings.Contains(out, st.Addrs["blob"]) {
		t.Errorf("status: %s", out)
	}
	env := run("env")
	for _, k := range []string{stack.EnvStorage, stack.EnvServiceBus, stack.EnvKeyVault, stack.EnvSSLCertFile, stack.EnvSMTPHost} {
		if !strings.Contains(env, "export "+k+"=") {
			t.Errorf("env lacks %s:\n%s", k, env)
		}
	}
	if out := run("down"); !strings.Contains(out, "stopped") {
		t.Fatalf("down: %s", out)
	}
	all := map[string]int{"supervisor": st.Supervisor}
	for k, v := range st.PIDs {
		all[k] = v
	}
	if err := stack.CheckGone(all, st.Addrs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left after down: %v", err)
	}
	if out := run("status"); !strings.Contains(out, "not running") {
		t.Errorf("status after down: %s", out)
	}
}
