package checker_test

import (
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
)

// A blob stored twice, as a repack or a backup killed before its index
// leaves it, is safe when the point's list names either copy: the check
// must not call such a list incomplete, whichever copy the index picks.
func TestListNamingAnyCopyOfABlobIsComplete(t *testing.T) {
	r, p := backedUp(t, 7)
	refs, err := r.ReadRefs(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Copy every blob of the first listed pack, sealed as it is, into a
	// new pack, and list the copy instead of the original.
	old := refs[0]
	info, _ := r.Index().Pack(old)
	data, err := r.ReadPack(t.Context(), old, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	pk := repository.NewPacker(len(data))
	for _, e := range info.Blobs {
		pk.Add(e.Type, e.ID, data[e.Offset:e.Offset+e.Length], int(e.RawLength), e.Method)
	}
	b, id, entries, err := pk.Finish(r.Key())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SavePack(t.Context(), b, id, entries); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	list := slices.DeleteFunc(slices.Clone(refs), func(x crypto.ID) bool { return x == old })
	list = append(list, id)
	slices.SortFunc(list, func(a, b crypto.ID) int { return slices.Compare(a[:], b[:]) })
	if err := r.ReplaceRefs(t.Context(), p.ID, list); err != nil {
		t.Fatal(err)
	}
	for range 4 { // the index picks a copy by load order
		rep, err := checker.Check(t.Context(), reopen(t, r.Backend()), checker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 {
			t.Fatalf("problems: %+v", rep.Problems)
		}
	}
	// Listing neither copy is still found.
	if err := r.ReplaceRefs(t.Context(), p.ID, list[:0:0]); err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(t.Context(), reopen(t, r.Backend()), checker.Options{})
	if err != nil || len(rep.Problems) != 1 {
		t.Fatalf("a list naming nothing: %+v, %v", rep, err)
	}
}
