// Package adversary runs the attacks of issue 10 against Coffer's whole
// local stack: a real coffer-functions process, real coffer agent
// processes, Azurite, the Service Bus emulator, the Key Vault emulator with
// Azure RBAC (one principal per machine) and an SMTP sink. Each test is one
// row of the attack table in docs/security.md and asserts that the attack
// is refused or harmless. TestMain then restores every recovery point that
// existed before the attacks and compares it with what was backed up, byte
// for byte.
package adversary

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// fx is the world every attack runs in, set up once by TestMain.
var fx *fixture

type fixture struct {
	dir      string // everything on disk: binaries, sources, configs, restores
	bin      string // coffer and coffer-functions
	st       *stack.Stack
	kv       *keyvault.Server // RBAC on: each machine is its own principal
	kvCAPath string
	// The control plane's Key Vault identity, for its role assignments.
	cpKVToken string
	cp        *controlPlane // standalone: agents, admins, timers, alert email

	// One client per role, all on cp.
	contributor, operator, reader *cpclient.Client

	vault wire.Vault
	// Machines registered by the fixture, each with its own points.
	victim, other, row4, row9 *machine

	// Every point that existed before the attacks, with a copy of what
	// it backed up.
	before []savedPoint
}

// savedPoint is a recovery point and a copy of the folder it backed up,
// taken right after the backup.
type savedPoint struct {
	m      *machine
	id     string
	src    string // the folder that was backed up
	expect string // its copy
}

// controlPlaneOID is the control plane's identity in Key Vault.
const controlPlaneOID = "cccccccc-0000-4000-8000-00000000000c"

// Role tokens of the control plane.
var (
	contributorToken = randomHex(16)
	operatorToken    = randomHex(16)
	readerToken      = randomHex(16)
	// securityAdminToken approves multi-user authorization requests
	// (approvals_test.go).
	securityAdminToken = randomHex(16)
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("adversary: skipped under -short: every attack needs the whole local stack and the real binaries")
		return 0
	}
	dir, err := os.MkdirTemp("", "coffer-adversary-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	f := &fixture{dir: dir, bin: filepath.Join(dir, "bin")}
	defer f.stop()
	if err := f.setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "adversary tests: set-up failed:", err)
		return 1
	}
	fx = f
	code := m.Run()
	// Whatever the attacks did, every point that existed before them must
	// still restore, byte for byte.
	if err := f.restoreEverything(); err != nil {
		fmt.Fprintln(os.Stderr, "--- FAIL: after the attacks, the points that existed before them do not all restore byte for byte:\n   ", strings.ReplaceAll(err.Error(), "\n", "\n    "))
		code = 1
	} else {
		fmt.Printf("after the attacks: all %d points that existed before them restored byte for byte\n", len(f.before))
	}
	return code
}

func (f *fixture) setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range []struct{ name, pkg string }{
		{"coffer", "github.com/coffer-backup/coffer/agent/cmd/coffer"},
		{"coffer-functions", "github.com/coffer-backup/coffer/functions/cmd/coffer-functions"},
	} {
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(f.bin, b.name), b.pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", b.name, err, out)
		}
	}
	var err error
	if f.st, err = stack.Start(ctx, stack.Options{StateDir: filepath.Join(f.dir, "stack")}); err != nil {
		return fmt.Errorf("the adversary tests need the local stack (Azurite, Service Bus and Key Vault emulators, SMTP sink; run make deps): %w", err)
	}
	// A Key Vault with Azure RBAC and purge protection, as deployed: the
	// control plane is the registration delegate, which may give a
	// machine's identity the machine role on that machine's secret and
	// nothing else, so a machine's token reaches its own secret only.
	f.kv, err = keyvault.Start(keyvault.Options{PurgeProtection: true, Access: &keyvault.Access{Delegates: []keyvault.Delegate{{
		PrincipalID: controlPlaneOID, Roles: []string{keyvault.RoleMachinePassphrase},
		PrincipalTypes: []string{"ServicePrincipal"}, NotPrincipals: []string{controlPlaneOID},
	}}}})
	if err != nil {
		return fmt.Errorf("start the Key Vault emulator with RBAC: %w", err)
	}
	if f.cpKVToken, err = f.kv.NewToken(controlPlaneOID); err != nil {
		return err
	}
	f.kvCAPath = filepath.Join(f.dir, "keyvault-rbac-ca.pem")
	if err := f.kv.WriteCACert(f.kvCAPath); err != nil {
		return err
	}
	if f.cp, err = f.startControlPlane(ctx, "coffer-functions", true); err != nil {
		return err
	}
	f.contributor = &cpclient.Client{BaseURL: f.cp.url, Token: contributorToken}
	f.operator = &cpclient.Client{BaseURL: f.cp.url, Token: operatorToken}
	f.reader = &cpclient.Client{BaseURL: f.cp.url, Token: readerToken}

	if f.vault, err = f.newVault(ctx, "branch-offices"); err != nil {
		return err
	}
	// The machines and their points: the history the attacks go after.
	type plan struct {
		m      **machine
		name   string
		points int
	}
	for i, p := range []plan{{&f.victim, "victim", 3}, {&f.other, "other", 2}, {&f.row4, "gc-target", 2}, {&f.row9, "stopped", 1}} {
		m, err := f.register(ctx, f.vault, p.name)
		if err != nil {
			return err
		}
		*p.m = m
		m.src = filepath.Join(f.dir, "src", p.name)
		if err := os.MkdirAll(m.src, 0o755); err != nil {
			return err
		}
		if err := treegen.Make(m.src, treegen.Options{Seed: uint64(100 + i), Files: 24, MaxSize: 96 << 10, BigFiles: 1}); err != nil {
			return err
		}
		if err := f.assignLongPolicy(ctx, m); err != nil {
			return err
		}
		for n := range p.points {
			if n > 0 {
				if err := changeFiles(m.src, n); err != nil {
					return err
				}
			}
			id, err := m.backup(ctx)
			if err != nil {
				return err
			}
			expect := filepath.Join(f.dir, "expect", p.name, id)
			if err := copyTree(m.src, expect); err != nil {
				return err
			}
			f.before = append(f.before, savedPoint{m: m, id: id, src: m.src, expect: expect})
		}
	}
	return nil
}

func (f *fixture) stop() {
	if f.cp != nil {
		f.cp.stop()
	}
	if f.kv != nil {
		f.kv.Close()
	}
	if f.st != nil {
		if err := f.st.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the stack:", err)
		}
	}
}

// newVault creates a vault with security features on and an alert
// recipient. Multi-user authorization is off: these attacks are about what
// a PIN allows; approvals_test.go makes its vaults with it on.
func (f *fixture) newVault(ctx context.Context, name string) (wire.Vault, error) {
	var v wire.Vault
	off := false
	_, err := f.contributor.Do(ctx, "POST", wire.Version+"/vaults", wire.NewVault{Name: name, AlertRecipients: []string{"ops@branch.example"}, MultiUserAuth: &off}, &v)
	if err != nil {
		return v, fmt.Errorf("create vault %s: %w", name, err)
	}
	return v, nil
}

// restoreEverything restores each point saved before the attacks with the
// real agent of its machine and compares it with the copy taken at backup.
func (f *fixture) restoreEverything() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var errs []string
	for _, p := range f.before {
		target := filepath.Join(f.dir, "final-restore", p.m.name, p.id)
		out, err := p.m.coffer(ctx, "restore", p.id, "--target", target, "--json")
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s point %s: restore failed: %v\n%s", p.m.name, p.id[:12], err, out))
			continue
		}
		diffs, err := treegen.Diff(p.expect, filepath.Join(target, p.src))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s point %s: compare: %v", p.m.name, p.id[:12], err))
			continue
		}
		if len(diffs) > 0 {
			if len(diffs) > 5 {
				diffs = append(diffs[:5], fmt.Sprintf("… and %d more", len(diffs)-5))
			}
			errs = append(errs, fmt.Sprintf("%s point %s differs from what was backed up:\n  %s", p.m.name, p.id[:12], strings.Join(diffs, "\n  ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// randomGUID is an object ID for a new Key Vault principal.
func randomGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
