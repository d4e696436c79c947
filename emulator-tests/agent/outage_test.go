package agent

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The control plane goes down in the middle of a backup: the backup still
// completes, and its point and outcome reach the vault when it is back.
func TestBackupDuringAControlPlaneOutageReportsWhenItReturns(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-outage")
	src := filepath.Join(t.TempDir(), "data")
	if err := makeTree(t, src, 20); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	down := "/api/v1/agent/points"
	w.DownOn.Store(&down) // down from the moment the point would be registered
	out, errOut, err := m.coffer("backup", "--json")
	if err != nil {
		t.Fatalf("backup during the outage: %v\n%s%s", err, out, errOut)
	}
	var sum struct {
		ID     string
		JobID  string
		Queued bool `json:"reportQueued"`
	}
	json.Unmarshal([]byte(out), &sum)
	if !sum.Queued {
		t.Fatalf("the outcome was not kept for later: %s", out)
	}
	pending, _ := os.ReadDir(filepath.Join(m.Dir, "pending"))
	if len(pending) != 2 {
		t.Fatalf("pending reports: %d, want the point and the outcome", len(pending))
	}

	// Back up again once the control plane returns: the kept reports go first.
	w.DownOn.Store(nil)
	w.Down.Store(false)
	if out, errOut, err := m.coffer("backup"); err != nil {
		t.Fatalf("backup after the outage: %v\n%s%s", err, out, errOut)
	}
	var job wire.Job
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/jobs/"+sum.JobID, nil, &job); err != nil {
		t.Fatal(err)
	}
	if job.Status != wire.StatusCompleted || job.PointID != sum.ID {
		t.Fatalf("the job of the outage: %+v", job)
	}
	var ps []wire.Point
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/points", nil, &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || (ps[0].ID != sum.ID && ps[1].ID != sum.ID) {
		t.Fatalf("points after the outage: %+v", ps)
	}
	if rest, _ := os.ReadDir(filepath.Join(m.Dir, "pending")); len(rest) != 0 {
		t.Fatalf("%d reports still pending", len(rest))
	}
}

// A SAS that has expired fails the backup with a message that says so.
func TestExpiredSASFailsClearly(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-sas")
	src := filepath.Join(t.TempDir(), "data")
	if err := makeTree(t, src, 3); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	var reg struct{ Container string }
	b, _ := os.ReadFile(filepath.Join(m.Dir, "agent.json"))
	json.Unmarshal(b, &reg)
	expired := func(g wire.SAS) wire.SAS {
		u, err := st.Azurite.ContainerSAS(reg.Container, sas.ContainerPermissions{Create: true, Read: true, List: true}, time.Now().Add(-time.Hour))
		if err != nil {
			t.Error(err)
			return g
		}
		g.SAS = u[strings.Index(u, "?")+1:]
		g.ExpiresOn = time.Now().Add(time.Hour) // the agent is told it is fine
		return g
	}
	w.SAS.Store(&expired)
	_, errOut, err := m.coffer("backup")
	if err == nil || !strings.Contains(strings.ToLower(errOut), "expired") && !strings.Contains(strings.ToLower(errOut), "sas") {
		t.Fatalf("backup with an expired SAS: %v %q", err, errOut)
	}
	t.Logf("the agent said: %s", strings.TrimSpace(errOut))
}

// An on-demand backup keeps to the policy's bandwidth: its upload rate is
// within 10% of the configured one.
func TestThrottledUploadKeepsToTheConfiguredRate(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-throttle")
	src := mkdir(t, filepath.Join(t.TempDir(), "media"))
	blob := make([]byte, 6<<20) // incompressible, so stored bytes are uploaded bytes
	rand.Read(blob)
	if err := os.WriteFile(filepath.Join(src, "video.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	p := policy.Default("UTC")
	p.Include = []string{src}
	all := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	const kbps = 4096
	p.Throttle = policy.Throttle{Enabled: true, WorkDays: all, WorkStart: "00:00", WorkEnd: "24:00", WorkKbps: kbps, NonWorkKbps: kbps}
	ctx := t.Context()
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/policies/slow", p, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admin.Do(ctx, "PUT", "/api/v1/vaults/"+w.Vault.ID+"/machines/"+m.ID+"/policy", wire.AssignPolicy{Policy: "slow"}, nil); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := m.coffer("backup", "--json")
	if err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	var sum struct {
		BytesStored int64   `json:"bytesStored"`
		Seconds     float64 `json:"durationSeconds"`
	}
	json.Unmarshal([]byte(out), &sum)
	want := float64(policy.BytesPerSecond(kbps))
	got := float64(sum.BytesStored) / sum.Seconds
	t.Logf("uploaded %d bytes in %.2f s: %.0f B/s against %.0f B/s configured (%.1f%%)", sum.BytesStored, sum.Seconds, got, want, 100*got/want)
	if got < 0.9*want || got > 1.1*want {
		t.Fatalf("upload rate %.0f B/s is not within 10%% of %.0f B/s", got, want)
	}
}

func makeTree(t *testing.T, dir string, files int) error {
	return treegenMake(mkdir(t, dir), files)
}
