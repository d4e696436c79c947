package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/shared/wire"
)

// demo is what the steps share: the running stack, the processes the story
// starts (stopped and checked gone at the end), and what earlier steps
// found out for the later ones.
type demo struct {
	Stack *stack.Stack
	Bin   string // folder with coffer and coffer-functions
	Dir   string // the story's files: sample data, config, restores
	Logs  string // folder for the child processes' logs
	Out   string // the demo's folder, where the portal's screenshots go
	log   io.Writer

	mu    sync.Mutex
	procs []*child
	other map[string]int // processes the steps started and stopped themselves, checked gone at the end

	// Found out by the steps.
	cpURL     string // the standalone control plane
	token     string // its Backup Contributor token
	recipient string
	vault     wire.Vault
	credFile  string
	configDir string
	machineID string
	container string
	src       string // the sample folder the policy includes
	files     int    // how many files it holds
	points    []string
}

// child is a process the story started.
type child struct {
	name string
	p    *proc.Process
	pid  int
	addr string // where it listens
}

// childStopGrace is how long a child has to exit after SIGTERM before it is
// killed.
var childStopGrace = 10 * time.Second

func (d *demo) logf(format string, args ...any) {
	if d.log != nil {
		fmt.Fprintf(d.log, format+"\n", args...)
	}
}

func (d *demo) addChild(c *child) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.procs = append(d.procs, c)
}

// ran records a process a step started and stopped itself (the browser),
// so the end of the demo checks it is gone with the rest.
func (d *demo) ran(name string, pid int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.other == nil {
		d.other = map[string]int{}
	}
	d.other[name] = pid
}

// children are the processes the steps started, by name.
func (d *demo) children() map[string]*child {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]*child{}
	for _, c := range d.procs {
		m[c.name] = c
	}
	return m
}

// stopChildren stops every process the steps started, newest first: SIGTERM,
// then a kill after childStopGrace.
func (d *demo) stopChildren() error {
	d.mu.Lock()
	procs := d.procs
	d.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].p.Stop(childStopGrace); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", procs[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// exe is the path of a Coffer executable in dir.
func exe(dir, name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(dir, name)
}

// checkBinaries fails early, before any emulator starts, if any of the
// named executables is missing from dir.
func checkBinaries(dir string, names ...string) error {
	var missing []string
	for _, name := range names {
		if st, err := os.Stat(exe(dir, name)); err != nil || st.IsDir() {
			missing = append(missing, exe(dir, name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not found: run `make build`, or pass --bin with the folder that holds Coffer's executables", strings.Join(missing, " and "))
	}
	return nil
}

// binDir is bin, or when empty the folder devstack's own executable is in,
// where `make build` puts coffer and coffer-functions beside it.
func binDir(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find devstack's own folder (pass --bin): %w", err)
	}
	return filepath.Dir(self), nil
}

// startControlPlane starts a coffer-functions for the story (see
// stack.StartControlPlane) with the contributor token alone, and records it so it
// is stopped with the other children.
func (d *demo) startControlPlane(ctx context.Context, name string, standalone bool) (string, error) {
	logPath := "" // discarded
	if d.Logs != "" {
		logPath = filepath.Join(d.Logs, name+".log")
	}
	p, url, addr, err := stack.StartControlPlane(ctx, stack.ControlPlane{Name: name, Path: exe(d.Bin, "coffer-functions"),
		StackEnv: d.Stack.Environ(), Tokens: stack.RoleTokens{Contributor: d.token}, Standalone: standalone, LogPath: logPath})
	if p != nil {
		d.addChild(&child{name: name, p: p, pid: p.PID(), addr: addr})
		d.logf("started %s (pid %d) on %s, standalone %t", name, p.PID(), addr, standalone)
	}
	return url, err
}

// coffer runs the coffer CLI against the stack and the control plane and
// returns its standard output. The command and everything it printed go to
// the transcript.
func (d *demo) coffer(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, exe(d.Bin, "coffer"), args...)
	cmd.Env = append(os.Environ(), d.Stack.Environ()...)
	cmd.Env = append(cmd.Env,
		"COFFER_CONTROL_PLANE_URL="+d.cpURL,
		"COFFER_ADMIN_TOKEN="+d.token,
		"COFFER_PASSPHRASE=", "COFFER_REPOSITORY=", "COFFER_TEST_CLOCK=", "COFFER_CONFIG_DIR=", "COFFER_LOG_DIR=",
		"XDG_CACHE_HOME="+filepath.Join(d.Dir, "cache"),
	)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	d.logf("$ coffer %s", strings.Join(args, " "))
	if stdout.Len() > 0 {
		d.logf("%s", strings.TrimRight(stdout.String(), "\n"))
	}
	if stderr.Len() > 0 {
		d.logf("%s", strings.TrimRight(stderr.String(), "\n"))
	}
	if err != nil {
		d.logf("(%v)", err)
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("coffer %s: %v: %s", strings.Join(args, " "), err, lastLines(msg, 5))
	}
	return stdout.String(), nil
}

// cofferJSON runs coffer with --json and decodes what it printed into v.
func (d *demo) cofferJSON(ctx context.Context, v any, args ...string) error {
	out, err := d.coffer(ctx, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("coffer %s --json printed what is not the expected JSON (%v): %s", strings.Join(args, " "), err, lastLines(out, 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// post sends a JSON request with the contributor token to a control plane
// and decodes a 2xx answer into out.
func (d *demo) post(ctx context.Context, url string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	d.logf("POST %s %s -> %d %s", url, b, resp.StatusCode, bytes.TrimSpace(body))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s answered %d: %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("POST %s: decode the answer: %w", url, err)
		}
	}
	return nil
}

// writeJSONFile writes v, indented, to path.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
