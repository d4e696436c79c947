package prune

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/storage"
)

// allPacks names every stored pack.
func allPacks(t *testing.T, be storage.Backend) []string {
	t.Helper()
	var ids []string
	be.List(t.Context(), layout.DataPrefix, func(fi storage.Info) error {
		id, _ := layout.ParsePack(fi.Name)
		ids = append(ids, id)
		return nil
	})
	return ids
}

// listAll stores a pack list, without its point, naming every pack: what
// a backup between its list and its point leaves.
func listAll(t *testing.T, be storage.Backend) string {
	t.Helper()
	s := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	id := hex.EncodeToString(s[:])
	b, err := packrefs.New(id, allPacks(t, be)).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Create(t.Context(), layout.Refs(id), b); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPruneKeepsThePacksOfAListWithoutItsPoint(t *testing.T) {
	src := newFixtureAfterForget(t)
	be := restoreSnapshot(t, src.objects)
	listAll(t, be)
	st, err := Prune(t.Context(), open(t, be), Options{MaxUnused: 0})
	if err != nil {
		t.Fatal(err)
	}
	if st.KeptForLists != st.Packs || st.PacksDeleted+st.PacksRepacked != 0 {
		t.Fatalf("a list naming every pack, yet: %+v", st)
	}
}

func TestPruneStopsBeforeDeletingWhenABackupSavesMeanwhile(t *testing.T) {
	src := newFixtureAfterForget(t)
	be := restoreSnapshot(t, src.objects)
	before := len(allPacks(t, be))
	_, err := Prune(t.Context(), open(t, be), Options{MaxUnused: 0, beforeDelete: func() { listAll(t, be) }})
	if !errors.Is(err, ErrRaced) {
		t.Fatalf("prune with a list appearing before it deletes: %v, want ErrRaced", err)
	}
	if after := len(allPacks(t, be)); after < before {
		t.Fatalf("%d packs, were %d: prune deleted after the race", after, before)
	}
	sound(t, be, src.want)
	if count(t, be, repository.PruneLock) != 0 {
		t.Fatal("the lock outlived the prune")
	}
}

func TestBackupRefusedWhilePruneHoldsTheLockOrAfterItRemovedAPackItReuses(t *testing.T) {
	src := newFixtureAfterForget(t)
	be := restoreSnapshot(t, src.objects)

	// A backup that loaded the index before the prune.
	backup := open(t, be)
	if _, err := backup.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	points, err := backup.Points(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	reused := points[0]
	packs, err := backup.ReadRefs(t.Context(), reused.ID)
	if err != nil {
		t.Fatal(err)
	}
	save := func() error {
		p := *reused
		p.Time = time.Now()
		return backup.SavePoint(t.Context(), &p, append([]crypto.ID{}, packs...))
	}

	pruner := open(t, be)
	release, err := pruner.AcquirePruneLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := save(); !errors.Is(err, repository.ErrConcurrentPrune) {
		t.Fatalf("a point saved under a running prune's lock: %v", err)
	}
	if ids, err := backup.ListPoints(t.Context()); err != nil || len(ids.Orphans) != 0 {
		t.Fatalf("the refused point's list was left (%v, %v): it would keep its packs from every prune", ids.Orphans, err)
	}
	if _, err := Prune(t.Context(), open(t, be), Options{}); !errors.Is(err, repository.ErrPruneRunning) {
		t.Fatalf("a second prune: %v, want ErrPruneRunning", err)
	}
	if err := release(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The prune repacks what the point's list named, and the backup,
	// which found its blobs there, is refused.
	if _, err := Prune(t.Context(), open(t, be), Options{MaxUnused: 0}); err != nil {
		t.Fatal(err)
	}
	if err := save(); !errors.Is(err, repository.ErrConcurrentPrune) {
		t.Fatalf("a point needing a pack the prune removed was saved: %v", err)
	}
	sound(t, be, src.want)
}
