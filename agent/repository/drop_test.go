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
