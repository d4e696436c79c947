package adversary

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 4: stop garbage collection for good. The machine writes a
// refs/X that names another point, and keeps a backup job in progress,
// reporting progress for ever. On the old code GC refused to run, and
// purge and retention skipped the machine, so deleted data was never
// removed. A malformed list is set aside with an alert and GC runs; a
// running job defers GC at most the stale-job bound.
func TestMalformedRefsAndEndlessJobsCannotStopGC(t *testing.T) {
	ctx := t.Context()
	v, m := fx.vault, fx.row4
	// A point the admin deletes, so the purge has something to do.
	if err := changeFiles(m.src, 9); err != nil {
		t.Fatal(err)
	}
	doomed, err := m.backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pin := newPIN(t, fx.contributor, v.ID)
	if _, err := fx.contributor.Do(ctx, "DELETE", wire.Version+"/vaults/"+v.ID+"/machines/"+m.id+"/points/"+doomed, nil, nil, pinHeader(pin)); err != nil {
		t.Fatalf("delete point %s with a PIN: %v", doomed, err)
	}

	// The attack: a list under a new name that names another point...
	refs := m.blobs(t, "refs/")
	var victimRefs string
	for name := range refs {
		if name != "refs/"+doomed {
			victimRefs = name
			break
		}
	}
	forged := "refs/" + randomHex(32)
	if err := m.upload(t, forged, refs[victimRefs]); err != nil {
		t.Fatalf("upload %s naming %s: %v", forged, victimRefs, err)
	}
	// ...a pack no point needs, which GC must remove when it runs...
	orphan := randomHex(32)
	orphanName := "data/" + orphan[:2] + "/" + orphan
	if err := m.upload(t, orphanName, []byte("a pack no point names")); err != nil {
		t.Fatal(err)
	}
	// ...and a backup job that never ends.
	agent := m.agent(fx.cp)
	var job wire.Job
	if _, err := agent.Do(ctx, "POST", wire.Version+"/agent/jobs", wire.NewJob{Type: wire.JobBackup}, &job); err != nil {
		t.Fatal(err)
	}

	// Fifteen days later, past the soft delete, the stale-job bound and
	// GC's grace, the job is still reported as running.
	tm := timeMachine(t)
	now := tm.advance(t, 15*24*time.Hour+time.Hour)
	liar := &cpclient.Client{BaseURL: tm.url, MachineID: m.id, Key: m.key, Now: func() time.Time { return now }}
	if _, err := liar.Do(ctx, "POST", wire.Version+"/agent/jobs/"+job.ID, wire.JobReport{Status: wire.StatusInProgress,
		Progress: wire.Progress{FilesDone: 1, FilesTotal: 1_000_000}}, nil); err != nil {
		t.Logf("the endless job's progress report at the moved time: %v", err)
	}
	if code, logs := tm.invoke(t, "PurgeSoftDeleted"); code != http.StatusOK {
		t.Errorf("PurgeSoftDeleted answered %d: %s", code, logs)
	}

	all := points(t, tm.admin(), v.ID, m.id, true)
	if slices.ContainsFunc(all, func(p wire.Point) bool { return p.ID == doomed }) {
		t.Errorf("the point deleted 15 days ago is still there: the purge skipped %s", m.name)
	}
	if _, ok := m.blobs(t, "data/")[orphanName]; ok {
		t.Errorf("the unreferenced pack %s is still there: GC did not run on %s", orphanName, m.name)
	}
	if _, ok := m.blobs(t, "refs/")[forged]; ok && !m.quarantined(t, forged) {
		t.Errorf("the forged list %s is still among the point lists and not marked quarantined; want it set aside", forged)
	}
	as := alerts(t, tm.admin(), v.ID)
	if !slices.ContainsFunc(as, func(a wire.Alert) bool {
		return a.MachineID == m.id && strings.Contains(a.Title+a.Detail, forged[len("refs/"):len("refs/")+12])
	}) {
		t.Errorf("no alert about %s names the forged list %s: %+v", m.name, forged, as)
	}
	if active := points(t, fx.reader, v.ID, m.id, false); len(active) != 2 {
		t.Errorf("%s has %d active points after GC, want its 2", m.name, len(active))
	}
}
