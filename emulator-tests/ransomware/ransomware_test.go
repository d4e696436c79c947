// Package ransomware proves issue 16's ransomware alarm end to end: real
// coffer agents back up to the local stack through a control plane running
// in this process. Files overwritten with random bytes, the way ransomware
// encrypts them, raise the alarm on the next backup, which flags that point
// and keeps the points before it; the point before restores byte for byte.
// A normal day's edits raise nothing.
package ransomware

import (
	"bytes"
	"encoding/json"
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
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/emulator-tests/inproc"
	"github.com/coffer-backup/coffer/emulator-tests/stack"
	"github.com/coffer-backup/coffer/functions/api"
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
	return stack.RunStories(m, "coffer-ransomware-", func(c string, s *stack.Stack) { coffer, st = c, s })
}

// office is a control plane, a vault, and one registered machine backing
// up src.
type office struct {
	t        *testing.T
	url      string
	admin    *cpclient.Client
	operator *cpclient.Client
	vault    wire.Vault
	dir      string // the agent's config folder
	machine  string
	src      string
}

func newOffice(t *testing.T, name string) *office {
	t.Helper()
	env := st.Env()
	env[config.TokenContributor] = inproc.ContributorToken
	env[config.TokenOperator] = inproc.OperatorToken
	env[config.AlertsQueue] = "queue.1"
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	env[config.PublicURL] = srv.URL
	handler = inproc.New(t, env, time.Now, slog.New(slog.DiscardHandler)).Handler()

	o := &office{t: t, url: srv.URL,
		admin:    &cpclient.Client{BaseURL: srv.URL, Token: inproc.ContributorToken},
		operator: &cpclient.Client{BaseURL: srv.URL, Token: inproc.OperatorToken}}
	ctx := t.Context()
	if _, err := o.admin.Do(ctx, "POST", "/api/v1/vaults", wire.NewVault{Name: fmt.Sprintf("ransomware-%d", time.Now().UnixNano())}, &o.vault); err != nil {
		t.Fatal(err)
	}
	var cr wire.Credentials
	if _, err := o.admin.Do(ctx, "POST", "/api/v1/vaults/"+o.vault.ID+"/credentials", nil, &cr); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cr)
	tmp := t.TempDir()
	creds := filepath.Join(tmp, "vault.credentials")
	if err := os.WriteFile(creds, b, 0o600); err != nil {
		t.Fatal(err)
	}
	o.dir = filepath.Join(tmp, "config")
	out := o.coffer("register", "--credentials", creds, "--name", name, "--json")
	var reg map[string]string
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		t.Fatalf("register --json: %q", out)
	}
	o.machine = reg["machineId"]

	// Text-like files that compress, in folders, as a file share holds.
	o.src = filepath.Join(tmp, "share")
	if err := os.Mkdir(o.src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(o.src, treegen.Options{Files: 80, MaxSize: 64 << 10, Seed: 16}); err != nil {
		t.Fatal(err)
	}
	p := policy.Default("UTC")
	p.Include = []string{o.src}
	if _, err := o.admin.Do(ctx, "PUT", "/api/v1/vaults/"+o.vault.ID+"/policies/office", p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := o.admin.Do(ctx, "PUT", "/api/v1/vaults/"+o.vault.ID+"/machines/"+o.machine+"/policy", wire.AssignPolicy{Policy: "office"}, nil); err != nil {
		t.Fatal(err)
	}
	return o
}

// coffer runs the agent (and coffer admin, as the Contributor) and fails
// the test if it fails.
func (o *office) coffer(args ...string) string {
	o.t.Helper()
	out, errOut, err := o.try(args...)
	if err != nil {
		o.t.Fatalf("coffer %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (o *office) try(args ...string) (string, string, error) {
	if len(args) == 0 || args[0] != "admin" {
		args = append(args, "--config-dir", o.dir)
	}
	cmd := exec.Command(coffer, args...)
	cmd.Env = append(os.Environ(), st.Environ()...)
	cmd.Env = append(cmd.Env, "COFFER_PASSPHRASE=", "COFFER_REPOSITORY=", "XDG_CACHE_HOME="+filepath.Join(o.dir, "cache"),
		"COFFER_CONTROL_PLANE_URL="+o.url, "COFFER_ADMIN_TOKEN="+inproc.ContributorToken)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// backup runs one backup and returns its job as the vault recorded it.
func (o *office) backup() wire.Job {
	o.t.Helper()
	out := o.coffer("backup", "--json")
	var sum struct{ ID, JobID string }
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.JobID == "" {
		o.t.Fatalf("backup --json: %q", out)
	}
	var j wire.Job
	if _, err := o.admin.Do(o.t.Context(), "GET", "/api/v1/vaults/"+o.vault.ID+"/machines/"+o.machine+"/jobs/"+sum.JobID, nil, &j); err != nil {
		o.t.Fatal(err)
	}
	if j.PointID != sum.ID || j.Change == nil {
		o.t.Fatalf("job %+v: want point %s and change counters", j, sum.ID)
	}
	return j
}

func (o *office) points() []wire.Point {
	o.t.Helper()
	var ps []wire.Point
	if _, err := o.admin.Do(o.t.Context(), "GET", "/api/v1/vaults/"+o.vault.ID+"/machines/"+o.machine+"/points", nil, &ps); err != nil {
		o.t.Fatal(err)
	}
	return ps
}

func (o *office) alarms() []wire.Alert {
	o.t.Helper()
	var as []wire.Alert
	if _, err := o.admin.Do(o.t.Context(), "GET", "/api/v1/vaults/"+o.vault.ID+"/alerts?kind="+wire.AlertRansomware, nil, &as); err != nil {
		o.t.Fatal(err)
	}
	return as
}

// normalDay edits files the way a working day does: a few changed, a few
// new (one of a kind the folder never had), one deleted.
func (o *office) normalDay(day uint64) {
	o.t.Helper()
	if _, err := dataset.Change(o.src, day, 0.05); err != nil {
		o.t.Fatal(err)
	}
	for i := range 3 {
		name := filepath.Join(o.src, fmt.Sprintf("minutes-day%d-%d.txt", day, i))
		if err := os.WriteFile(name, bytes.Repeat([]byte(fmt.Sprintf("meeting notes, day %d, item %d\n", day, i)), 200), 0o644); err != nil {
			o.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(o.src, fmt.Sprintf("budget-day%d.xlsx", day)), bytes.Repeat([]byte("a,b,c\n"), 100), 0o644); err != nil {
		o.t.Fatal(err)
	}
	if day > 1 {
		os.Remove(filepath.Join(o.src, fmt.Sprintf("minutes-day%d-0.txt", day-1)))
	}
}

// A normal day's changes raise nothing, day after day.
func TestNormalDaysRaiseNothing(t *testing.T) {
	o := newOffice(t, "branch-quiet")
	o.backup()
	for day := uint64(1); day <= 3; day++ {
		o.normalDay(day)
		j := o.backup()
		if c := j.Change; c.ParentFiles == 0 || c.Changed == 0 || c.Incompressible != 0 {
			t.Errorf("day %d: counters %+v; want a comparison with changed files and none incompressible", day, *c)
		}
	}
	if as := o.alarms(); len(as) != 0 {
		t.Fatalf("normal days raised %d ransomware alarm(s): %+v", len(as), as)
	}
	for _, p := range o.points() {
		if p.Suspicious != "" || p.RetainUntil != nil {
			t.Errorf("point %s flagged or held after normal days: %+v", p.ID, p)
		}
	}
}

// Ransomware encrypting a quarter of the share (in place, or renamed to a
// new extension) raises the alarm on the next backup: the point is flagged
// in the vault and on the machine, the points before it are kept at least
// 30 days, and the last good point restores byte for byte. A Contributor,
// not an Operator, can acknowledge it as a false positive.
func TestRansomwareRaisesTheAlarmAndProtectsThePreviousPoints(t *testing.T) {
	for _, tc := range []struct{ name, ext string }{{"in place", ""}, {"renamed", ".locked"}} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOffice(t, "branch-"+strings.ReplaceAll(tc.name, " ", "-"))
			first := o.backup()
			o.normalDay(1)
			good := o.backup()
			clean := copyTree(t, o.src)

			if _, err := dataset.Encrypt(o.src, 16, 0.25, tc.ext); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			bad := o.backup()

			as := o.alarms()
			if len(as) != 1 || as[0].Severity != wire.SeverityCritical || as[0].JobID != bad.ID ||
				as[0].Title != "Possible ransomware on "+o.machineName() {
				t.Fatalf("alarms after encryption: %+v (counters %+v)", as, *bad.Change)
			}
			byID := map[string]wire.Point{}
			for _, p := range o.points() {
				byID[p.ID] = p
			}
			if p := byID[bad.PointID]; !strings.Contains(p.Suspicious, "ransomware") {
				t.Fatalf("the encrypted backup's point is not flagged: %+v", p)
			}
			for _, j := range []wire.Job{first, good} {
				p := byID[j.PointID]
				if p.Suspicious != "" || p.RetainUntil == nil || p.RetainUntil.Before(start.Add(api.ProtectFor-time.Minute)) {
					t.Fatalf("point %s before the alarm is not kept 30 days: %+v", j.PointID, p)
				}
			}

			// Flagged where people look before restoring.
			if out := o.coffer("points"); !strings.Contains(out, "SUSPECT") || !strings.Contains(out, "ransomware") {
				t.Errorf("coffer points does not flag the point:\n%s", out)
			} else {
				t.Logf("coffer points:\n%s", out)
			}
			if out := o.coffer("admin", "points", o.vault.ID, o.machine); !strings.Contains(out, "SUSPECT") {
				t.Errorf("coffer admin points does not flag the point:\n%s", out)
			}

			// The last good point restores byte for byte.
			target := filepath.Join(t.TempDir(), "restored")
			o.coffer("restore", good.PointID, "--target", target)
			if diffs, err := treegen.Diff(clean, filepath.Join(target, o.src)); err != nil || len(diffs) > 0 {
				t.Fatalf("the last good point restores differently: %v %v", err, diffs)
			}

			// A false positive is a Contributor's call.
			ack := "/api/v1/vaults/" + o.vault.ID + "/alerts/" + as[0].ID + "/acknowledge?falsePositive=true"
			if _, err := o.operator.Do(t.Context(), "POST", ack, nil, nil); cpclient.Code(err) != wire.CodeForbidden {
				t.Fatalf("an Operator acknowledged a false positive: %v", err)
			}
			o.coffer("admin", "alert", "ack", o.vault.ID, as[0].ID, "--false-positive")
			if p := o.pointByID(bad.PointID); p.FalsePositive == "" {
				t.Fatalf("false positive not recorded on the point: %+v", p)
			}

			// The baseline learned: the same kind of change passes now.
			if _, err := dataset.Encrypt(o.src, 17, 0.25, tc.ext); err != nil {
				t.Fatal(err)
			}
			again := o.backup()
			if as := o.alarms(); len(as) != 1 {
				t.Fatalf("after the false positive, a like change (%+v) raised the alarm again: %+v", *again.Change, as)
			}
		})
	}
}

func (o *office) pointByID(id string) wire.Point {
	for _, p := range o.points() {
		if p.ID == id {
			return p
		}
	}
	o.t.Fatalf("no point %s", id)
	return wire.Point{}
}

func (o *office) machineName() string {
	var m wire.Machine
	if _, err := o.admin.Do(o.t.Context(), "GET", "/api/v1/vaults/"+o.vault.ID+"/machines/"+o.machine, nil, &m); err != nil {
		o.t.Fatal(err)
	}
	return m.Name
}

// copyTree copies src's files and folders, with their modes and times, so
// a restore can be compared with the tree as it was.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "clean")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm()|0o700)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
			if err := os.Chmod(to, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(to, fi.ModTime(), fi.ModTime())
		}
		return fmt.Errorf("copyTree: %s is neither a file nor a folder", p)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Folder times last: writing their files changed them.
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if fi, err := d.Info(); err == nil {
				rel, _ := filepath.Rel(src, p)
				os.Chmod(filepath.Join(dst, rel), fi.Mode().Perm())
				os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
			}
		}
		return nil
	})
	return dst
}
