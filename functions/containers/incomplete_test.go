package containers

import (
	"slices"
	"testing"

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
