package winlane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/proc"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/shared/policy"
)

// laneVault is a vault for the service step: the local Azure stack
// (Azurite, Service Bus, the Key Vault emulator) and a standalone
// coffer-functions on a free loopback port, all on this machine, where
// wine's programs reach them through 127.0.0.1. Admin commands run with the
// Linux coffer; the machine is the Windows coffer.
type laneVault struct {
	name   string
	dir    string // credentials, policy, logs
	coffer string // coffer for this machine, for admin commands
	stack  *stack.Stack
	cp     *proc.Process
	url    string
	token  string
}

// startVault starts the stack and a control plane and creates a vault.
// On failure, what was started is stopped.
func startVault(ctx context.Context, dir, cofferLin, functions string) (_ *laneVault, err error) {
	v := &laneVault{name: "lane", dir: dir, coffer: cofferLin, token: stack.RandomToken()}
	defer func() {
		if err != nil {
			err = errors.Join(err, v.stop())
		}
	}()
	// A fresh folder each run: credentials and the stack's CA are per run.
	if err := os.RemoveAll(dir); err != nil {
		return v, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return v, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if v.stack, err = stack.Start(startCtx, stack.Options{StateDir: filepath.Join(dir, "stack")}); err != nil {
		return v, fmt.Errorf("start the local Azure stack (run make deps): %w", err)
	}
	v.cp, v.url, _, err = stack.StartControlPlane(startCtx, stack.ControlPlane{Name: "coffer-functions", Path: functions,
		StackEnv: v.stack.Environ(), Tokens: stack.RoleTokens{Contributor: v.token}, Standalone: true,
		LogPath: filepath.Join(dir, "coffer-functions.log")})
	if err != nil {
		return v, err
	}
	var created struct{ ID string }
	if err := v.admin(ctx, &created, "vault", "create", v.name, "--recipient", "ops@lane.example", "--no-multi-user-auth"); err != nil {
		return v, err
	}
	return v, nil
}

// stop stops the control plane and the stack; safe on a half-started vault.
func (v *laneVault) stop() error {
	var errs []error
	if v.cp != nil {
		errs = append(errs, v.cp.Stop(10*time.Second)) // it drains its queue work first
	}
	if v.stack != nil {
		errs = append(errs, v.stack.Stop())
	}
	return errors.Join(errs...)
}

// admin runs `coffer admin ARGS --json` against the vault's control plane
// and decodes what it printed into out.
func (v *laneVault) admin(ctx context.Context, out any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, v.coffer, append(append([]string{"admin"}, args...), "--json")...)
	cmd.Env = append(append(os.Environ(), v.stack.Environ()...),
		"COFFER_CONTROL_PLANE_URL="+v.url, "COFFER_ADMIN_TOKEN="+v.token,
		"COFFER_PASSPHRASE=", "COFFER_CONFIG_DIR=", "XDG_CACHE_HOME="+filepath.Join(v.dir, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("coffer admin %s: %w: %s", strings.Join(args, " "), err, tail(stderr.Bytes(), 5))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("coffer admin %s --json printed what is not the expected JSON (%v): %s", strings.Join(args, " "), err, tail(stdout.Bytes(), 5))
	}
	return nil
}

// credentials downloads the vault's credentials file into v.dir.
func (v *laneVault) credentials(ctx context.Context) (string, error) {
	file := filepath.Join(v.dir, v.name+".credentials.json")
	os.Remove(file)
	return file, v.admin(ctx, nil, "credentials", v.name, "-o", file)
}

// assignPolicy stores p as the vault's policy name and assigns it to the
// machine.
func (v *laneVault) assignPolicy(ctx context.Context, machine, name string, p policy.Policy) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	file := filepath.Join(v.dir, name+"-policy.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return err
	}
	if err := v.admin(ctx, nil, "policy", "set", v.name, name, "-f", file); err != nil {
		return err
	}
	return v.admin(ctx, nil, "policy", "assign", v.name, machine, name)
}
