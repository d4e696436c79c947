package containers

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
)

// Agents write a point's pack list first and the point second
// (docs/repository-format.md). A point without its list is incomplete: it
// keeps no pack from the purge, cannot be registered, and GC leaves the
// object itself alone. A list without its point (a backup killed between
// the two writes) keeps its packs.
func TestGCOnIncompletePointsAndOrphanLists(t *testing.T) {
	f := newFixture(t, later)
	ctx := t.Context()
	pk := newIDs(4)
	f.packs(pk...)
	complete, incomplete, orphan := newID(), newID(), newID()
	f.point(complete, pk[0])
	f.put(layout.Point(incomplete), []byte("sealed point")) // its list, naming pk[1], was never written
	list, err := packrefs.New(orphan, []string{pk[2]}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.put(layout.Refs(orphan), list)

	if _, err := f.c.MissingPacks(ctx, f.name, incomplete); err == nil {
		t.Fatal("an incomplete point passed the check that comes before registering it")
	}
	if _, err := f.c.MissingPacks(ctx, f.name, orphan); err == nil {
		t.Fatal("a pack list without its point passed the check that comes before registering it")
	}
	if missing, err := f.c.MissingPacks(ctx, f.name, complete); err != nil || missing != nil {
		t.Fatalf("a complete point failed the check: missing %v, %v", missing, err)
	}
	res, err := f.c.CollectGarbage(ctx, f.name, grace)
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted(pk[1], pk[3]); !slices.Equal(res.DeletedPacks, want) {
		t.Fatalf("GC deleted %v, want %v (the incomplete point's pack and the unreferenced one)", res.DeletedPacks, want)
	}
	if got, want := f.storedPacks(), sorted(pk[0], pk[2]); !slices.Equal(got, want) {
		t.Fatalf("packs left %v, want %v", got, want)
	}
	want := sorted(layout.Point(complete), layout.Refs(complete), layout.Point(incomplete), layout.Refs(orphan))
	if got := sorted(append(f.names(layout.PointsPrefix), f.names(layout.RefsPrefix)...)...); !slices.Equal(got, want) {
		t.Fatalf("points and lists after GC %v, want %v untouched", got, want)
	}
}

// A list without a registered point keeps its packs only for a while: once
// it is older than OrphanAfter, and the point is still not registered when
// asked just before, the list and its point object are deleted and its
// packs collected. A point registered meanwhile keeps everything.
func TestGCRemovesOrphanListsOnceOld(t *testing.T) {
	for _, tc := range []struct {
		name        string
		orphanAfter time.Duration
		nowSays     func(id string) (bool, error)
		wantRemoved bool
		wantErr     bool
	}{
		{"younger than the orphan age", 30 * day, func(string) (bool, error) { return false, nil }, false, false},
		{"old and still unregistered", 14 * day, func(string) (bool, error) { return false, nil }, true, false},
		{"registered since the snapshot", 14 * day, func(string) (bool, error) { return true, nil }, false, false},
		{"registry unreachable", 14 * day, func(string) (bool, error) { return false, errors.New("table storage is down") }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, later)
			pk := newIDs(3)
			slices.Sort(pk)
			f.packs(pk...)
			kept, orphan, bare := newID(), newID(), newID()
			f.point(kept, pk[0])   // registered
			f.point(orphan, pk[1]) // written, never registered
			list, err := packrefs.New(bare, []string{pk[2]}).Encode()
			if err != nil {
				t.Fatal(err)
			}
			f.put(layout.Refs(bare), list) // killed before its point was written
			var (
				mu    sync.Mutex
				asked []string
			)
			res, err := f.c.Collect(t.Context(), f.name, GCOptions{Grace: grace, OrphanAfter: tc.orphanAfter,
				Registered: func(id string) bool { return id == kept },
				RegisteredNow: func(_ context.Context, id string) (bool, error) {
					mu.Lock()
					asked = append(asked, id)
					mu.Unlock()
					return tc.nowSays(id)
				}})
			if tc.wantErr {
				if err == nil || res.Deleted != 0 {
					t.Fatalf("with the registry down GC answered %v and deleted %d packs; want an error and nothing deleted", err, res.Deleted)
				}
				if got := f.storedPacks(); len(got) != 3 {
					t.Fatalf("packs left %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(asked, kept) {
				t.Error("a point registered before the collection was asked about again")
			}
			wantPacks := sorted(pk...)
			wantObjects := sorted(layout.Point(kept), layout.Refs(kept), layout.Point(orphan), layout.Refs(orphan), layout.Refs(bare))
			var wantRemoved []string
			if tc.wantRemoved {
				wantPacks = []string{pk[0]}
				wantObjects = sorted(layout.Point(kept), layout.Refs(kept))
				wantRemoved = sorted(orphan, bare)
			}
			if !slices.Equal(res.OrphansRemoved, wantRemoved) {
				t.Errorf("orphans removed %v, want %v", res.OrphansRemoved, wantRemoved)
			}
			if got := f.storedPacks(); !slices.Equal(got, wantPacks) {
				t.Errorf("packs left %v, want %v", got, wantPacks)
			}
			if got := sorted(append(f.names(layout.PointsPrefix), f.names(layout.RefsPrefix)...)...); !slices.Equal(got, wantObjects) {
				t.Errorf("points and lists left %v, want %v", got, wantObjects)
			}
		})
	}
}

func TestGCOrphanAgeNeedsALiveCheck(t *testing.T) {
	f := newFixture(t, later)
	for _, o := range []GCOptions{{Grace: grace, OrphanAfter: day}, {Grace: grace, OrphanAfter: -day}} {
		if _, err := f.c.Collect(t.Context(), f.name, o); err == nil {
			t.Errorf("Collect accepted orphan age %v with RegisteredNow set: %v", o.OrphanAfter, o.RegisteredNow != nil)
		}
	}
}
