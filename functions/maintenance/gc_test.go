package maintenance

import (
	"testing"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Orphaned pack lists are removed only for points the points table does
// not hold at the moment the collector asks, soft-deleted ones included.
func TestCollectionAsksThePointsTableAboutOrphans(t *testing.T) {
	e := newEnv(t)
	m := e.machine(e.vault(false, 7), "pc-1", wire.MachineProtected, start)
	e.point(m, "kept", start.Add(-day))
	e.deletedPoint(m, "soft", start.Add(-2*day), start.Add(10*day))
	if _, err := e.timers.collect(e.ctx(), m); err != nil {
		t.Fatal(err)
	}
	if len(e.blobs.opts) != 1 {
		t.Fatalf("%d collections", len(e.blobs.opts))
	}
	o := e.blobs.opts[0]
	if o.OrphanAfter != DefaultOrphanAfter || o.RegisteredNow == nil {
		t.Fatalf("collection options %+v: orphans are never removed", o)
	}
	for id, want := range map[string]bool{"kept": true, "soft": true, "never-registered": false} {
		got, err := o.RegisteredNow(e.ctx(), id)
		if err != nil || got != want {
			t.Errorf("RegisteredNow(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	// Registered after the collection's snapshot: the live check sees it.
	e.point(m, "late", start)
	if got, err := o.RegisteredNow(e.ctx(), "late"); err != nil || !got {
		t.Errorf("a point registered during the collection: RegisteredNow = %v, %v", got, err)
	}
}
