package adversary

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 9: an Operator (or a stolen Operator session) stops protection of
// a machine. On the old code nobody was told, and the stopped machine
// still got a SAS with create permission and could add points. Stopping
// raises a warning alert; a stopped machine gets read-only storage access
// and can add neither objects nor points, while its points stay
// restorable.
func TestStoppedMachineGetsNoWriteAccessAndTheVaultIsTold(t *testing.T) {
	ctx := t.Context()
	v, m := fx.vault, fx.row9
	// Prepared while still protected: a pack list for a point to come.
	next := randomHex(32)
	if err := m.upload(t, "refs/"+next, fmt.Appendf(nil, `{"version":1,"point":%q,"packs":[]}`, next)); err != nil {
		t.Fatal(err)
	}
	if err := m.upload(t, "points/"+next, []byte("sealed point")); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.operator.Do(ctx, "POST", wire.Version+"/vaults/"+v.ID+"/machines/"+m.id+"/stop", wire.StopProtection{}, nil); err != nil {
		t.Fatalf("the Operator stops protection of %s: %v", m.name, err)
	}
	as := alerts(t, fx.reader, v.ID)
	if !slices.ContainsFunc(as, func(a wire.Alert) bool {
		return a.MachineID == m.id && a.Kind == wire.AlertProtectionStopped && a.Severity == wire.SeverityWarning
	}) {
		t.Errorf("stopping protection of %s raised no warning alert: %+v", m.name, as)
	}

	g := m.sas(t)
	if sp := sasPermissions(t, g.SAS); strings.ContainsAny(sp, "cwad") {
		t.Errorf("the stopped machine got a SAS with permissions %q; want read and list only", sp)
	}
	if err := m.upload(t, "data/00/"+strings.Repeat("0", 64), []byte("new data")); err == nil {
		t.Error("the stopped machine wrote a new object with its SAS")
	}
	agent := m.agent(fx.cp)
	_, err := agent.Do(ctx, "POST", wire.Version+"/agent/points", wire.NewPoint{ID: next}, nil)
	if s := status(err); s != http.StatusConflict && s != http.StatusForbidden {
		t.Errorf("the stopped machine adds a point: %v; want 409 or 403", err)
	}
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, nil); status(err) != http.StatusConflict {
		t.Errorf("the stopped machine starts a backup job: %v; want 409", err)
	}
	if out, err := m.coffer(ctx, "backup"); err == nil {
		t.Errorf("coffer backup on the stopped machine succeeded: %s", out)
	}
	if ps := points(t, fx.reader, v.ID, m.id, false); len(ps) != 1 {
		t.Errorf("the stopped machine has %d points, want its 1", len(ps))
	}
}
