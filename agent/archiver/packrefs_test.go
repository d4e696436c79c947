package archiver_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
)

// A point's pack list names exactly the packs its files and folders are
// in, whether their content was read or found unchanged: the control
// plane keeps those packs from deletion while the point lives.
func TestPackListOfAReBackupIsExact(t *testing.T) {
	src := sourceTree(t, 21)
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refs := func(p *repository.Point) []crypto.ID {
		t.Helper()
		ids, err := r.ReadRefs(t.Context(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ids, func(a, b crypto.ID) int { return slices.Compare(a[:], b[:]) })
		return ids
	}
	r = reopen(t, r)
	same, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs(same.Point)) == 0 {
		t.Fatal("a re-backup of the same files lists no pack")
	}

	// One file more: the packs its content and the changed listings went
	// to are added, and every pack listed still holds something of the point.
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("a new file's content"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = reopen(t, r)
	next, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: same.Point})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*repository.Point{first.Point, same.Point, next.Point} {
		if got, want := refs(p), packsOf(t, r, p.Tree); !slices.Equal(got, want) {
			t.Fatalf("point %s lists packs %x; its trees and content are in %x", p.ID, got, want)
		}
	}
}

// packsOf is every pack holding a tree or content blob below root, sorted.
func packsOf(t *testing.T, r *repository.Repository, root crypto.ID) []crypto.ID {
	t.Helper()
	set := map[crypto.ID]bool{}
	note := func(id crypto.ID) {
		p, ok := r.BlobPack(id)
		if !ok {
			t.Fatalf("blob %s is in no pack", id)
		}
		set[p] = true
	}
	var walk func(id crypto.ID)
	walk = func(id crypto.ID) {
		note(id)
		tr, err := r.LoadTree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			for _, c := range n.Content {
				if !c.Hole {
					note(c.ID)
				}
			}
			if n.Subtree != nil {
				walk(*n.Subtree)
			}
		}
	}
	walk(root)
	out := make([]crypto.ID, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b crypto.ID) int { return slices.Compare(a[:], b[:]) })
	return out
}
