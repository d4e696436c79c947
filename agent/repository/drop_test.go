package repository

import (
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// A pack that is gone takes its blobs out of the index only where no
// other pack holds a copy.
func TestDropFallsBackToAnotherCopy(t *testing.T) {
	shared, only := crypto.ID{1}, crypto.ID{2}
	a, b := crypto.ID{0xa}, crypto.ID{0xb}
	x := NewIndex()
	x.add(a, 100, []BlobEntry{{ID: shared, Length: 40}, {ID: only, Offset: 40, Length: 40}}, false)
	x.add(b, 100, []BlobEntry{{ID: shared, Offset: 10, Length: 40}}, false)
	orphaned := map[crypto.ID]bool{}
	x.drop(a, orphaned)
	x.relink(orphaned)
	for _, tc := range []struct {
		blob crypto.ID
		ok   bool
		pack crypto.ID
	}{{shared, true, b}, {only, false, crypto.ID{}}} {
		loc, ok := x.Lookup(tc.blob)
		if ok != tc.ok || loc.Pack != tc.pack || ok && loc.Offset != 10 {
			t.Errorf("blob %x: %+v, %v; want pack %x, %v", tc.blob[:1], loc, ok, tc.pack[:1], tc.ok)
		}
	}
}

// A pack that is gone but held only second copies takes nothing out of
// the index: its blobs are found where they were first.
func TestDropOfASecondCopyKeepsTheFirst(t *testing.T) {
	shared := crypto.ID{1}
	a, b := crypto.ID{0xa}, crypto.ID{0xb}
	x := NewIndex()
	x.add(a, 100, []BlobEntry{{ID: shared, Offset: 20, Length: 40}}, false)
	x.add(b, 100, []BlobEntry{{ID: crypto.ID{9}, Length: 10}, {ID: shared, Offset: 10, Length: 40}}, false)
	orphaned := map[crypto.ID]bool{}
	x.drop(b, orphaned)
	x.relink(orphaned)
	if loc, ok := x.Lookup(shared); !ok || loc.Pack != a || loc.Offset != 20 {
		t.Fatalf("after dropping the pack of the second copy: %+v, %v; want the first copy in pack a", loc, ok)
	}
	if _, ok := x.Lookup(crypto.ID{9}); ok || len(orphaned) != 1 {
		t.Fatalf("the dropped pack's own blob is still indexed, or orphans are %v", orphaned)
	}
	if x.Len() != 1 || len(x.Packs()) != 1 {
		t.Fatalf("%d blobs in %d packs, want 1 in 1", x.Len(), len(x.Packs()))
	}
}
