package restorer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// encodedTrees hands listings over encoded, as the cache does.
type encodedTrees map[crypto.ID][]byte

func (m encodedTrees) LoadTreeBytes(_ context.Context, id crypto.ID) ([]byte, error) {
	if b, ok := m[id]; ok {
		return b, nil
	}
	return nil, errors.New("no such tree")
}

func (m encodedTrees) LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error) {
	b, err := m.LoadTreeBytes(ctx, id)
	if err != nil {
		return nil, err
	}
	return tree.Decode(b)
}

// A listing read an entry at a time that fails its checks part-way (two
// entries with one name) restores none of its entries, is reported, and
// leaves the rest of the restore alone.
func TestABadListingRestoresNoneOfItsEntries(t *testing.T) {
	sub, root := crypto.ID{1}, crypto.ID{2}
	bad, err := tree.Encode(&tree.Tree{Nodes: []tree.Node{
		{Name: []byte("aa"), Type: tree.File, Mode: 0o644},
		{Name: []byte("ab"), Type: tree.File, Mode: 0o644},
		{Name: []byte("ac"), Type: tree.File, Mode: 0o644},
	}})
	if err != nil {
		t.Fatal(err)
	}
	bad = bytes.Replace(bad, []byte("ac"), []byte("ab"), 1) // the third now repeats the second
	good, err := tree.Encode(&tree.Tree{Nodes: []tree.Node{
		{Name: []byte("d"), Type: tree.Dir, Subtree: &sub, Mode: 0o755},
		{Name: []byte("ok"), Type: tree.File, Mode: 0o644},
	}})
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	res, err := Restore(t.Context(), emptyRepo(t), &repository.Point{Tree: root},
		Options{Target: target, Trees: encodedTrees{sub: bad, root: good}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Path != filepath.Join(target, "d") || !strings.Contains(res.Failed[0].Err, "could not be read") {
		t.Fatalf("failures %v; want d's listing reported", res.Failed)
	}
	if entries, _ := os.ReadDir(filepath.Join(target, "d")); len(entries) != 0 {
		t.Errorf("d holds %d entries of a listing that failed its checks", len(entries))
	}
	if _, err := os.Stat(filepath.Join(target, "ok")); err != nil || res.Files != 1 {
		t.Errorf("the rest was not restored: %v, %d files", err, res.Files)
	}
}

// A root listing that fails its checks fails the whole restore, with or
// without --include, and nothing is written.
func TestABadRootListingFailsTheRestore(t *testing.T) {
	root := crypto.ID{2}
	bad, err := tree.Encode(&tree.Tree{Nodes: []tree.Node{
		{Name: []byte("aa"), Type: tree.File}, {Name: []byte("ab"), Type: tree.File}}})
	if err != nil {
		t.Fatal(err)
	}
	bad = bytes.Replace(bad, []byte("ab"), []byte("a/"), 1)
	for _, include := range [][]string{nil, {"aa"}} {
		target := filepath.Join(t.TempDir(), "target")
		_, err := Restore(t.Context(), emptyRepo(t), &repository.Point{Tree: root},
			Options{Target: target, Include: include, Trees: encodedTrees{root: bad}})
		if !errors.Is(err, tree.ErrInvalid) {
			t.Errorf("include %v: err = %v, want an invalid tree", include, err)
		}
		if entries, _ := os.ReadDir(target); len(entries) > 0 {
			t.Errorf("include %v: %d entries written", include, len(entries))
		}
	}
}
