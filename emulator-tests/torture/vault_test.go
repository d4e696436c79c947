//go:build unix

package torture

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// vaultKills is how many scheduled backups of `coffer run` a run kills.
const vaultKills = 5

// The managed agent, `coffer run`, killed with SIGKILL at random moments of
// its scheduled backups against the local Azure stack and a control plane
// in this process. After each kill the next backup succeeds, `coffer check
// --read-data` passes, and every point the vault has registered is whole in
// the machine's container.
func TestManagedAgentKilledDuringScheduledBackupsLeavesASoundVault(t *testing.T) {
	skipShort(t)
	t.Parallel()
	rng := rng(t)
	v := newVault(t)
	src := filepath.Join(t.TempDir(), "office")
	mutate(t, rng, src, 8<<20)
	v.assignPolicy(src)

	// The first scheduled backup runs to the end: its length sets the range
	// of kill moments.
	day := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	a := v.startRun(day)
	a.waitFor("backup starting")
	started := time.Now()
	a.waitFor("backup finished")
	took := time.Since(started)
	a.kill()
	hit := 0
	for i := range vaultKills {
		mutate(t, rng, src, 8<<20)
		day = day.AddDate(0, 0, 1)
		a := v.startRun(day)
		a.waitFor("backup starting") // the day's run, or at once the catch-up of the one killed before
		at := time.Duration(rng.Int64N(int64(took) + 1))
		timer := time.NewTimer(at) // the kill moment itself, not a wait for a condition
		<-timer.C
		if a.kill() {
			hit++
		}
		t.Logf("kill %d: %v into a scheduled backup (finished first: %v)", i+1, at, a.seen("backup finished"))

		// The next backup, a one-off through the vault, succeeds.
		started := time.Now()
		if r := v.coffer("backup"); r.err != nil {
			t.Fatalf("kill %d at %v: the next backup failed: %s\ncoffer run:\n%s", i+1, at, r, a.log())
		}
		took = time.Since(started)
		if r := v.coffer("check", "--read-data"); r.err != nil {
			t.Fatalf("kill %d at %v: check --read-data: %s\ncoffer run:\n%s", i+1, at, r, a.log())
		}
		v.registeredPointsAreWhole(fmt.Sprintf("kill %d at %v", i+1, at))
	}
	t.Logf("%d of %d kills found `coffer run` still running", hit, vaultKills)
	v.registeredPointsAreListed()
}

// vault is a control plane in this process on the emulators, one vault and
// one registered machine.
type vault struct {
	t       *testing.T
	admin   *cpclient.Client
	vault   wire.Vault
	machine wire.Machine
	dir     string   // the machine's config folder
	env     []string // the agent's environment
	blobs   *container.Client
	clock   string // the agent's test clock file
}

func newVault(t *testing.T) *vault {
	t.Helper()
	emus.Start(t)
	kv, err := keyvault.Start(keyvault.Options{})
	if err != nil {
		t.Fatalf("start the Key Vault emulator: %v", err)
	}
	t.Cleanup(func() { kv.Close() })
	dir := t.TempDir()
	ca := filepath.Join(dir, "keyvault-ca.pem")
	if err := kv.WriteCACert(ca); err != nil {
		t.Fatal(err)
	}
	v := &vault{t: t, dir: filepath.Join(dir, "config"), clock: filepath.Join(dir, "clock")}
	v.env = []string{
		stack.EnvKeyVault + "=" + kv.URL(), stack.EnvKeyVaultLocal + "=1", stack.EnvSSLCertFile + "=" + ca,
		"COFFER_PASSPHRASE=", "COFFER_REPOSITORY=", "COFFER_CONFIG_DIR=" + v.dir,
		"COFFER_TEST_CLOCK=" + v.clock, "COFFER_LOG_DIR=" + filepath.Join(dir, "logs"),
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
	}

	env := inproc.Env(emus.Azurite.ConnectionString(), emus.ServiceBus.ConnectionString())
	env[config.KeyVaultURL] = kv.URL()
	env[config.AlertsQueue] = "queue.1"
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	env[config.PublicURL] = srv.URL
	handler = inproc.New(t, env, time.Now, slog.New(slog.DiscardHandler)).Handler()
	v.admin = &cpclient.Client{BaseURL: srv.URL, Token: inproc.ContributorToken}

	ctx := t.Context()
	if _, err := v.admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: fmt.Sprintf("torture-%d", time.Now().UnixNano())}, &v.vault); err != nil {
		t.Fatal(err)
	}
	var cr wire.Credentials
	if _, err := v.admin.Do(ctx, "POST", "/api/v1/vaults/"+v.vault.ID+"/credentials", nil, &cr); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cr)
	creds := filepath.Join(dir, "vault.credentials")
	if err := os.WriteFile(creds, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := v.coffer("register", "--credentials", creds, "--name", "branch-torture", "--json")
	var reg map[string]string
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &reg) != nil {
		t.Fatalf("register: %s", r)
	}
	if _, err := v.admin.Do(ctx, "GET", "/api/v1/vaults/"+v.vault.ID+"/machines/"+reg["machineId"], nil, &v.machine); err != nil {
		t.Fatal(err)
	}
	svc, err := azblob.NewClientFromConnectionString(emus.Azurite.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.blobs = svc.ServiceClient().NewContainerClient(v.machine.Container)
	return v
}

func (v *vault) coffer(args ...string) result {
	return runCoffer(v.env, append(args, "--config-dir", v.dir)...)
}

// assignPolicy backs src up daily at 21:00 UTC.
func (v *vault) assignPolicy(src string) {
	v.t.Helper()
	p := policy.Default("UTC")
	p.Include = []string{src}
	ctx := v.t.Context()
	if _, err := v.admin.Do(ctx, "PUT", "/api/v1/vaults/"+v.vault.ID+"/policies/office", p, nil); err != nil {
		v.t.Fatal(err)
	}
	if _, err := v.admin.Do(ctx, "PUT", "/api/v1/vaults/"+v.vault.ID+"/machines/"+v.machine.ID+"/policy", wire.AssignPolicy{Policy: "office"}, nil); err != nil {
		v.t.Fatal(err)
	}
}

// setClock moves the agent's test clock, atomically.
func (v *vault) setClock(at time.Time) {
	v.t.Helper()
	tmp := v.clock + ".tmp"
	if err := os.WriteFile(tmp, []byte(at.UTC().Format(time.RFC3339Nano)), 0o600); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, v.clock); err != nil {
		v.t.Fatal(err)
	}
}

// startRun starts `coffer run` at noon of day, waits until it has the
// policy, and moves its clock just past the 21:00 run, which is then due.
// A run killed earlier may instead be caught up at once.
func (v *vault) startRun(day time.Time) *agentRun {
	v.t.Helper()
	v.setClock(day.Add(12 * time.Hour))
	cmd := exec.Command(coffer, "run", "-v", "--config-dir", v.dir)
	cmd.Env = append(os.Environ(), v.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	a := &agentRun{t: v.t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		a.exitErr = cmd.Wait()
		pw.Close()
	}()
	go func() {
		defer close(a.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			a.mu.Lock()
			a.lines = append(a.lines, sc.Text())
			close(a.changed)
			a.changed = make(chan struct{})
			a.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	v.t.Cleanup(func() { a.kill() })
	a.waitFor("policy applied")
	v.setClock(day.Add(21*time.Hour + 30*time.Second))
	return a
}

// points is what the vault has registered for the machine.
func (v *vault) points() []wire.Point {
	v.t.Helper()
	var ps []wire.Point
	if _, err := v.admin.Do(v.t.Context(), "GET", "/api/v1/vaults/"+v.vault.ID+"/machines/"+v.machine.ID+"/points", nil, &ps); err != nil {
		v.t.Fatal(err)
	}
	return ps
}

// registeredPointsAreWhole fails the test unless every point the vault has
// registered for the machine has both its point and its pack list in the
// container.
func (v *vault) registeredPointsAreWhole(when string) {
	v.t.Helper()
	ps := v.points()
	if len(ps) == 0 {
		v.t.Fatalf("%s: the vault has registered no point", when)
	}
	for _, p := range ps {
		for _, name := range []string{layout.Point(p.ID), layout.Refs(p.ID)} {
			if _, err := v.blobs.NewBlobClient(name).GetProperties(v.t.Context(), nil); bloberror.HasCode(err, bloberror.BlobNotFound) {
				v.t.Errorf("%s: registered point %s has no %s in its container", when, p.ID, name)
			} else if err != nil {
				v.t.Fatal(err)
			}
		}
	}
}

// registeredPointsAreListed fails the test unless the agent lists every
// point the vault has registered.
func (v *vault) registeredPointsAreListed() {
	v.t.Helper()
	r := v.coffer("points", "--json")
	var listed []struct{ ID string }
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &listed) != nil {
		v.t.Fatalf("coffer points: %s", r)
	}
	onMachine := map[string]bool{}
	for _, p := range listed {
		onMachine[p.ID] = true
	}
	for _, p := range v.points() {
		if !onMachine[p.ID] {
			v.t.Errorf("registered point %s is not listed by `coffer points`", p.ID)
		}
	}
}

// agentRun is one `coffer run` process and the lines it printed.
type agentRun struct {
	t       *testing.T
	cmd     *exec.Cmd
	done    chan struct{} // output read to the end: the process has exited
	exitErr error

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced at each new line
	killed  bool
	running bool // whether kill found it running
}

// waitFor waits until the agent prints a line containing s.
func (a *agentRun) waitFor(s string) {
	a.t.Helper()
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for {
		a.mu.Lock()
		changed := a.changed
		a.mu.Unlock()
		if a.seen(s) {
			return
		}
		select {
		case <-changed:
		case <-a.done:
			if a.seen(s) {
				return
			}
			a.t.Fatalf("coffer run exited (%v) before printing %q:\n%s", a.exitErr, s, a.log())
		case <-timeout.C:
			a.t.Fatalf("coffer run did not print %q within 2 minutes:\n%s", s, a.log())
		}
	}
}

func (a *agentRun) seen(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (a *agentRun) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.lines, "\n")
}

// kill sends SIGKILL, waits for the process to go, and reports whether it
// was still running.
func (a *agentRun) kill() bool {
	a.mu.Lock()
	if a.killed {
		a.mu.Unlock()
		return a.running
	}
	a.killed = true
	a.mu.Unlock()
	select {
	case <-a.done:
		return false
	default:
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	ws, ok := a.cmd.ProcessState.Sys().(syscall.WaitStatus)
	a.running = ok && ws.Signaled()
	return a.running
}
