// Package agent proves the managed agent's user stories: real coffer
// processes against the whole local stack (Azurite, Service Bus, Key Vault
// emulator, SMTP sink) and a control plane running in this process, so the
// test can see every request it receives.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/keyvault"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/functions/config"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

var (
	coffer string
	st     *stack.Stack
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	return stack.RunStories(m, "coffer-agent-stories-", func(c string, s *stack.Stack) { coffer, st = c, s })
}

const contributorToken = inproc.ContributorToken

// recorder keeps every request the control plane receives.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", req.Method, req.URL.String())
		for k, vs := range req.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ","))
		}
		b.Write(body)
		r.mu.Lock()
		r.seen = append(r.seen, b.String())
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, req := range r.seen {
		if strings.Contains(req, s) {
			return true
		}
	}
	return false
}

// world is one control plane, an admin, and a vault.
type world struct {
	// Down makes the control plane unreachable (connections dropped);
	// DownOn flips Down when a request for that path arrives.
	Down   atomic.Bool
	DownOn atomic.Pointer[string]
	// SAS, when set, replaces the SAS the control plane hands out.
	SAS atomic.Pointer[func(wire.SAS) wire.SAS]

	t     *testing.T
	URL   string
	App   *app.App
	Rec   *recorder
	Admin *cpclient.Client
	Vault wire.Vault
	env   []string
}

func newWorld(t *testing.T, edits ...func(env map[string]string)) *world {
	t.Helper()
	env := st.Env()
	env[config.TokenContributor] = contributorToken
	env[config.AlertsQueue] = "queue.1"
	// A story may change the control plane's settings, e.g. its Key Vault.
	for _, edit := range edits {
		edit(env)
	}
	var srv *httptest.Server
	rec := &recorder{}
	var handler http.Handler
	w := &world{t: t, Rec: rec}
	srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if on := w.DownOn.Load(); on != nil && r.URL.Path == *on {
			w.Down.Store(true)
		}
		if w.Down.Load() {
			// An outage: the connection drops without an answer.
			if hj, ok := rw.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if f := w.SAS.Load(); f != nil && r.URL.Path == "/api/v1/agent/sas" {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, r)
			var g wire.SAS
			json.Unmarshal(rec.Body.Bytes(), &g)
			g = (*f)(g)
			rw.Header().Set("Content-Type", "application/json")
			json.NewEncoder(rw).Encode(g)
			return
		}
		handler.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	env[config.PublicURL] = srv.URL
	a := inproc.New(t, env, time.Now, slog.New(slog.DiscardHandler))
	handler = rec.wrap(a.Handler())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w.URL, w.App, w.Admin, w.env = srv.URL, a, &cpclient.Client{BaseURL: srv.URL, Token: contributorToken}, st.Environ()
	off := false // the passphrase stories use a PIN
	_, err := w.Admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: fmt.Sprintf("branch-offices-%d", time.Now().UnixNano()), AlertRecipients: []string{"ops@branch.example"}, MultiUserAuth: &off}, &w.Vault)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// credentials downloads a credentials file into dir.
func (w *world) credentials(dir string) string {
	var cr wire.Credentials
	_, err := w.Admin.Do(w.t.Context(), "POST", "/api/v1/vaults/"+w.Vault.ID+"/credentials", nil, &cr)
	if err != nil {
		w.t.Fatal(err)
	}
	b, _ := json.Marshal(cr)
	name := filepath.Join(dir, "vault.credentials")
	if err := os.WriteFile(name, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return name
}

// machine is one registered agent: its config folder.
type machine struct {
	w   *world
	Dir string
	ID  string
}

// coffer runs the agent with the stack's environment.
func (m *machine) coffer(args ...string) (string, string, error) {
	cmd := exec.Command(coffer, append(args, "--config-dir", m.Dir)...)
	cmd.Env = stack.AgentEnv(m.w.env, m.Dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (w *world) register(name string) (*machine, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	m := &machine{w: w, Dir: filepath.Join(dir, "config")}
	out, errOut, err := m.coffer("register", "--credentials", w.credentials(dir), "--name", name, "--json")
	if err != nil {
		w.t.Fatalf("register: %v\n%s%s", err, out, errOut)
	}
	var reg map[string]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		w.t.Fatalf("register --json: %q", out)
	}
	m.ID = reg["machineId"]
	return m, reg["secretName"]
}

func (w *world) assignPolicy(m *machine, include ...string) {
	w.t.Helper()
	p := policy.Default("Europe/London")
	p.Include = include
	ctx := w.t.Context()
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/office", p, nil); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "office"}, nil); err != nil {
		w.t.Fatal(err)
	}
}

// Register: the machine's passphrase goes to Key Vault and never to the
// control plane; a backup runs as a job the admin sees, with its point; a
// restore brings back every byte.
func TestRegisterBackUpAndRestoreThroughTheVault(t *testing.T) {
	w := newWorld(t)
	m, secret := w.register("branch-01")

	// The passphrase is in Key Vault, and in no request the control plane saw.
	kv := keyVault(t)
	got, err := kv.GetSecret(t.Context(), secret, "", nil)
	if err != nil || got.Value == nil || len(*got.Value) < 16 {
		t.Fatalf("escrowed passphrase: %v", err)
	}
	if w.Rec.contains(*got.Value) {
		t.Fatal("the passphrase reached the control plane")
	}

	src := filepath.Join(t.TempDir(), "shares")
	if err := treegen.Make(mkdir(t, src), treegen.Options{Files: 40, MaxSize: 64 << 10, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	out, errOut, err := m.coffer("backup", "--json")
	if err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	var sum struct {
		ID, JobID, Status string
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.JobID == "" {
		t.Fatalf("backup --json: %q", out)
	}
	if w.Rec.contains(*got.Value) {
		t.Fatal("the passphrase reached the control plane during the backup")
	}
	// The point's folder listings are kept in the machine's cache, so the
	// next backup compares against them without fetching each from Azure.
	if n := cachedTrees(t, filepath.Join(m.Dir, "cache")); n == 0 {
		t.Fatal("the vault backup kept no folder listing in the local cache: the next one would fetch every listing from storage")
	}

	// The admin sees the job completed and the point registered.
	var job wire.Job
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/jobs/"+sum.JobID, nil, &job); err != nil {
		t.Fatal(err)
	}
	if job.Status != wire.StatusCompleted || job.PointID != sum.ID || job.Progress.FilesDone == 0 {
		t.Fatalf("job: %+v", job)
	}
	var ps []wire.Point
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/points", nil, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ID != sum.ID {
		t.Fatalf("points: %+v", ps)
	}

	// The machine's own view: status and jobs.
	out, errOut, err = m.coffer("status", "--json")
	var status struct {
		Machine    wire.Machine
		LastBackup *wire.Job
		NextRun    *time.Time
		Policy     *wire.PolicyDoc
	}
	if err != nil || json.Unmarshal([]byte(out), &status) != nil || status.LastBackup == nil || status.LastBackup.ID != sum.JobID ||
		status.Policy == nil || status.NextRun == nil || status.Machine.Name != "branch-01" {
		t.Fatalf("status: %v %s %s", err, out, errOut)
	}
	out, _, err = m.coffer("jobs", "--json")
	if err != nil || !strings.Contains(out, sum.JobID) || !strings.Contains(out, wire.JobRegister) {
		t.Fatalf("jobs: %v %s", err, out)
	}

	target := filepath.Join(t.TempDir(), "restored")
	if out, errOut, err := m.coffer("restore", "latest", "--target", target); err != nil {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	if diffs, err := treegen.Diff(src, filepath.Join(target, src)); err != nil || len(diffs) > 0 {
		t.Fatalf("restore differs: %v %v", err, diffs)
	}
}

// A wrong passphrase in Key Vault fails the backup clearly, and the admin
// sees a failed job with the reason.
func TestWrongPassphraseFailsClearly(t *testing.T) {
	w := newWorld(t)
	m, secret := w.register("branch-02")
	src := filepath.Join(t.TempDir(), "data")
	if err := treegen.Make(mkdir(t, src), treegen.Options{Files: 5, MaxSize: 4096, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	kv := keyVault(t)
	wrong := "not the passphrase of this machine"
	if _, err := kv.SetSecret(t.Context(), secret, azsecrets.SetSecretParameters{Value: &wrong}, nil); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := m.coffer("backup")
	if err == nil || !strings.Contains(errOut, "passphrase") {
		t.Fatalf("backup with a wrong passphrase: %v %q", err, errOut)
	}
	var js []wire.Job
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/jobs?machine="+m.ID+"&type=backup", nil, &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 || js[0].Status != wire.StatusFailed || js[0].ErrorCode != "wrong_passphrase" {
		t.Fatalf("jobs: %+v", js)
	}
}

func mkdir(t *testing.T, dir string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// keyVault is an admin's client for the Key Vault emulator.
func keyVault(t *testing.T) *azsecrets.Client {
	c, err := azsecrets.NewClient(st.KeyVault.URL(), keyvault.Credential(), st.KeyVault.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A newly registered machine restores another machine's data, once an
// Operator allows it, with that machine's passphrase from Key Vault.
func TestRestoreOneMachinesDataOntoASecondMachine(t *testing.T) {
	w := newWorld(t)
	a, _ := w.register("branch-a")
	src := filepath.Join(t.TempDir(), "finance")
	if err := treegen.Make(mkdir(t, src), treegen.Options{Files: 30, MaxSize: 32 << 10, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(a, src)
	if out, errOut, err := a.coffer("backup"); err != nil {
		t.Fatalf("backup on A: %v\n%s%s", err, out, errOut)
	}

	b, _ := w.register("branch-b")
	target := filepath.Join(t.TempDir(), "from-a")
	_, errOut, err := b.coffer("restore", "latest", "--from-machine", "branch-a", "--target", target)
	if err == nil || !strings.Contains(errOut, "restore-grant") {
		t.Fatalf("restore without a grant: %v %q", err, errOut)
	}
	if _, err := w.Admin.Do(t.Context(), "POST", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+b.ID+"/restore-grant", wire.RestoreGrant{Source: "branch-a"}, nil); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := b.coffer("restore", "latest", "--from-machine", "branch-a", "--target", target); err != nil {
		t.Fatalf("restore on B: %v\n%s%s", err, out, errOut)
	}
	if diffs, err := treegen.Diff(src, filepath.Join(target, src)); err != nil || len(diffs) > 0 {
		t.Fatalf("B's restore of A differs: %v %v", err, diffs)
	}
}

func treegenMake(dir string, files int) error {
	return treegen.Make(dir, treegen.Options{Files: files, MaxSize: 8192, Seed: uint64(files)})
}

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// The policy's exclusions leave files and folders out of the backup.
func TestPolicyExclusionsAreLeftOut(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-excl")
	src := mkdir(t, filepath.Join(t.TempDir(), "home"))
	for name, body := range map[string]string{"report.docx": "keep", "scratch.tmp": "drop", "cache/blob": "drop", "docs/notes.txt": "keep"} {
		p := filepath.Join(src, name)
		mkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := policy.Default("UTC")
	p.Include = []string{src}
	p.Exclude = []string{"*.tmp", filepath.ToSlash(filepath.Join(src, "cache"))}
	ctx := t.Context()
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/excl", p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "excl"}, nil); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := m.coffer("backup"); err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if out, errOut, err := m.coffer("restore", "latest", "--target", target); err != nil {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	for name, want := range map[string]bool{"report.docx": true, "docs/notes.txt": true, "scratch.tmp": false, "cache": false} {
		_, err := os.Stat(filepath.Join(target, src, name))
		if got := err == nil; got != want {
			t.Errorf("%s restored = %v, want %v", name, got, want)
		}
	}
}

// cachedTrees counts the listing files and bundles in a tree cache below dir.
func cachedTrees(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// A listing of its own (trees/ab/abcd…), or a point's bundle of them.
		if !d.IsDir() && (filepath.Base(filepath.Dir(filepath.Dir(p))) == "trees" || filepath.Base(filepath.Dir(p)) == "bundles") {
			n++
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}
