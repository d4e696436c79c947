package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
)

// state is what a running stack records in its folder, so that later
// commands can find and stop it by PID.
type state struct {
	Supervisor int               `json:"supervisor"` // the devstack serve process
	PIDs       map[string]int    `json:"pids"`       // its child processes
	Addrs      map[string]string `json:"addrs"`
	Env        map[string]string `json:"env"`
	MailDir    string            `json:"mailDir"`
	Started    time.Time         `json:"started"`
	// ControlPlane is the standalone coffer-functions' URL; its PID and
	// address are in PIDs and Addrs under controlPlaneName.
	ControlPlane string `json:"controlPlane"`
}

// controlPlaneName names the control plane in the state's PIDs and Addrs.
const controlPlaneName = "coffer-functions"

// Settings the stack's env file exports beside the endpoints, so that after
// `source .dev/stack.env` the coffer admin commands and curl reach the
// control plane with a role.
const (
	envControlPlaneURL = "COFFER_CONTROL_PLANE_URL"
	envAdminToken      = "COFFER_ADMIN_TOKEN"
)

const (
	stateFile = "stack.json"
	envFile   = "stack.env"
	logFile   = "devstack.log"
)

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stack state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): stop any emulators by hand and delete it", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// writeFileAtomic writes through a temporary file and a rename, so readers
// never see half a file.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// up starts `devstack serve` detached from the terminal and waits until it
// has written its state. bin is the folder holding coffer-functions.
func up(ctx context.Context, out io.Writer, dir, bin string) error {
	if err := checkBinaries(bin, "coffer-functions"); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if st, err := readState(dir); err != nil {
		return err
	} else if st != nil && proc.Alive(st.Supervisor) {
		fmt.Fprintln(out, "The local stack is already running.")
		return describe(out, dir, st)
	}
	_ = os.Remove(filepath.Join(dir, stateFile)) // stale: its supervisor is gone

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find devstack's own executable: %w", err)
	}
	logPath := filepath.Join(dir, logFile)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logPath, err)
	}
	defer log.Close()
	cmd := exec.Command(self, "serve", "--dir", dir, "--bin", bin)
	cmd.Stdout, cmd.Stderr = log, log
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the stack's supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Fprintln(out, "Starting Azurite, the Service Bus and Key Vault emulators, the SMTP sink and the control plane…")
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the stack did not start (%v):\n%s", err, b)
		case <-deadline.C:
			_ = proc.StopPID(cmd.Process.Pid, 20*time.Second)
			return fmt.Errorf("the stack was not up after 2 minutes; see %s", logPath)
		case <-ctx.Done():
			_ = proc.StopPID(cmd.Process.Pid, 20*time.Second)
			return ctx.Err()
		case <-tick.C:
			st, err := readState(dir)
			if err != nil {
				return err
			}
			if st != nil && st.Supervisor == cmd.Process.Pid {
				fmt.Fprintln(out, "The local stack is up.")
				return describe(out, dir, st)
			}
		}
	}
}

// serve runs the stack and a standalone control plane on it in the
// foreground until SIGTERM or SIGINT. bin is the folder holding
// coffer-functions.
func serve(dir, bin string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	startCtx, cancelStart := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelStart()
	s, err := stack.Start(startCtx, stack.Options{StateDir: abs, Persist: true, MailPage: true})
	if err != nil {
		return err
	}
	st := state{Supervisor: os.Getpid(), PIDs: s.PIDs(), Addrs: s.Addrs(), Env: s.Env(), MailDir: s.MailDir, Started: time.Now().UTC()}

	// New tokens each time: a browser session signed under the old ones
	// ends with the stack, and nothing else depends on them (machines sign
	// their requests with their own keys).
	tokens := stack.NewRoleTokens()
	cp, url, addr, err := stack.StartControlPlane(startCtx, stack.ControlPlane{Name: controlPlaneName, Path: exe(bin, "coffer-functions"), StackEnv: s.Environ(),
		Tokens: tokens, Standalone: true, LogPath: controlPlaneLog(abs)})
	if cp != nil {
		st.PIDs[controlPlaneName], st.Addrs["controlplane"] = cp.PID(), addr
	}
	var werr error
	if err != nil {
		werr = err
	} else {
		st.ControlPlane = url
		st.Env[envControlPlaneURL], st.Env[envAdminToken] = url, tokens.Contributor
		for _, kv := range tokens.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			st.Env[k] = v
		}
		b, _ := json.MarshalIndent(st, "", "  ")
		// Owner-only: both files hold the role tokens.
		werr = errors.Join(
			writeFileAtomic(filepath.Join(abs, envFile), []byte(exports(st.Env)), 0o600),
			writeFileAtomic(filepath.Join(abs, stateFile), b, 0o600))
	}
	if werr == nil {
		fmt.Printf("stack up: %v; control plane %s\n", st.Addrs, url)
		select {
		case <-ctx.Done():
		case <-cp.Done():
			// Keep the emulators, as they hold the developer's data, but
			// say why the portal is gone; `devstack status` says so too.
			fmt.Printf("the control plane exited on its own; see %s\n", controlPlaneLog(abs))
			<-ctx.Done()
		}
	}
	fmt.Println("stopping the stack")
	var cpErr error
	if cp != nil {
		// First: it uses the emulators.
		cpErr = cp.Stop(childStopGrace)
	}
	err = errors.Join(werr, cpErr, s.Stop(), stack.CheckGone(st.PIDs, st.Addrs))
	_ = os.Remove(filepath.Join(abs, stateFile))
	_ = os.Remove(filepath.Join(abs, envFile))
	return err
}

// down stops the supervisor, which stops its children; any child that
// outlived it (a supervisor killed with SIGKILL) is stopped by its PID.
func down(out io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintln(out, "The local stack is not running.")
		return nil
	}
	var errs []error
	if err := proc.StopPID(st.Supervisor, 30*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("stop the supervisor: %w", err))
	}
	for name, pid := range st.PIDs {
		if err := proc.StopPID(pid, 10*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
		}
	}
	all := map[string]int{"supervisor": st.Supervisor}
	for k, v := range st.PIDs {
		all[k] = v
	}
	errs = append(errs, stack.CheckGone(all, st.Addrs))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, stateFile))
	_ = os.Remove(filepath.Join(dir, envFile))
	fmt.Fprintln(out, "The local stack and its control plane are stopped: no process or port is left.")
	return nil
}

func status(out io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if st == nil || !proc.Alive(st.Supervisor) {
		fmt.Fprintln(out, "The local stack is not running. Start it with `make dev-up`.")
		return nil
	}
	fmt.Fprintf(out, "The local stack has been running since %s.\n", st.Started.Local().Format(time.DateTime))
	return describe(out, dir, st)
}

func printEnv(out io.Writer, dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if st == nil || !proc.Alive(st.Supervisor) {
		return errors.New("the local stack is not running: start it with `make dev-up`")
	}
	_, err = io.WriteString(out, exports(st.Env))
	return err
}

// describe prints the endpoints, the control plane with a fresh one-time
// sign-in link to its portal, and how to use and stop the stack. It fails
// when the control plane does not answer, after printing the rest.
func describe(out io.Writer, dir string, st *state) error {
	printAddrs(out, st.Addrs)
	fmt.Fprintf(out, "Captured mail: %s (files) and %s (page).\n", st.MailDir, st.Env[stack.EnvMailPage])
	var cpErr error
	if st.ControlPlane != "" {
		fmt.Fprintf(out, "Control plane: %s (standalone, dev clock on; log %s).\n", st.ControlPlane, controlPlaneLog(dir))
		fmt.Fprintf(out, "Vault portal:  %s/portal/\n", st.ControlPlane)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		link, expires, err := portalLink(ctx, st.ControlPlane, st.Env[config.TokenContributor])
		cancel()
		if err != nil {
			cpErr = fmt.Errorf("the control plane does not answer (see %s; `make dev-down` then `make dev-up` restarts it): %w", controlPlaneLog(dir), err)
		} else {
			fmt.Fprintf(out, "Sign in as Backup Contributor, once, until %s: %s\n", expires.Local().Format(time.TimeOnly), link)
			fmt.Fprintln(out, "    (`make dev-status` prints a new link; the role tokens are in the env file below.)")
		}
	}
	fmt.Fprintf(out, "Point Coffer at it with:  source %s\n", filepath.Join(dir, envFile))
	fmt.Fprintln(out, "Stop it with:             make dev-down")
	return cpErr
}

// printAddrs lists the stack's endpoints, one a line, by name.
func printAddrs(out io.Writer, addrs map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(addrs)) {
		fmt.Fprintf(out, "    %-12s %s\n", k, addrs[k])
	}
}

// exports renders the environment as POSIX shell exports.
func exports(env map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return b.String()
}
