package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/coffer-backup/coffer/shared/wire"
)

// A backup whose pack uploads fail is a failed job with the cause, and the
// admin gets a critical alert. It used to be recorded as cancelled, which
// raises no alert, so the failure went unnoticed (issue 17, bug 1).
func TestFailedUploadIsAFailedJobWithACriticalAlert(t *testing.T) {
	w := newWorld(t)
	m, _ := w.register("branch-upload")
	src := filepath.Join(t.TempDir(), "data")
	if err := makeTree(t, src, 5); err != nil {
		t.Fatal(err)
	}
	w.assignPolicy(m, src)
	var reg struct{ Container string }
	b, _ := os.ReadFile(filepath.Join(m.Dir, "agent.json"))
	if err := json.Unmarshal(b, &reg); err != nil || reg.Container == "" {
		t.Fatalf("agent.json: %v %q", err, b)
	}
	// The agent can open its repository but not write to it: the first
	// write, a pack, is refused.
	readOnly := func(g wire.SAS) wire.SAS {
		u, err := st.Azurite.ContainerSAS(reg.Container, sas.ContainerPermissions{Read: true, List: true}, time.Now().Add(time.Hour))
		if err != nil {
			t.Error(err)
			return g
		}
		g.SAS = u[strings.Index(u, "?")+1:]
		return g
	}
	w.SAS.Store(&readOnly)
	out, errOut, err := m.coffer("backup")
	if err == nil {
		t.Fatalf("backup with a read-only SAS succeeded:\n%s%s", out, errOut)
	}

	js := w.backupJobs(m)
	if len(js) != 1 {
		t.Fatalf("backup jobs: %+v, want one", js)
	}
	j := js[0]
	if j.Status != wire.StatusFailed || j.ErrorCode == "cancelled" || !strings.Contains(j.Message, "data/") {
		t.Fatalf("job: status %s, code %s, message %q; want failed, naming the pack it could not write", j.Status, j.ErrorCode, j.Message)
	}
	var as []wire.Alert
	if _, err := w.Admin.Do(t.Context(), "GET", "/api/v1/vaults/"+w.Vault.ID+"/alerts?kind="+wire.AlertJobFailed, nil, &as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Severity != wire.SeverityCritical || as[0].JobID != j.ID || !strings.Contains(as[0].Detail, j.Message) {
		t.Fatalf("alerts: %+v; want one critical job-failed alert for job %s with its cause", as, j.ID)
	}
}
