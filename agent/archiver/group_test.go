package archiver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
)

// A backup groups each folder's small files apart from other folders',
// though its walkers read many folders at once: a restore writes a
// folder's files together and opens a whole group for any of them.
func TestSmallFilesAreGroupedByFolder(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for d := range 24 {
		dir := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 20 {
			text := strings.Repeat(fmt.Sprintf("folder %d file %d line\n", d, f), 50+f)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.txt", f)), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Which folder each blob belongs to, from the point's trees.
	folderOf := map[crypto.ID]string{}
	var walk func(id crypto.ID, path string)
	walk = func(id crypto.ID, path string) {
		tr, err := r.LoadTree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			for _, c := range n.Content {
				folderOf[c.ID] = path
			}
			if n.Subtree != nil {
				walk(*n.Subtree, path+"/"+string(n.Name))
			}
		}
	}
	walk(res.Point.Tree, "")
	type place struct {
		pack   crypto.ID
		offset uint32
	}
	groups := map[place]map[string]bool{}
	for id, folder := range folderOf {
		loc, ok := r.Index().Lookup(id)
		if !ok {
			t.Fatalf("blob %s is not indexed", id)
		}
		if !loc.Grouped() {
			t.Fatalf("a small file's blob in %s is not grouped", folder)
		}
		p := place{loc.Pack, loc.Offset}
		if groups[p] == nil {
			groups[p] = map[string]bool{}
		}
		groups[p][folder] = true
	}
	for p, folders := range groups {
		if len(folders) != 1 {
			t.Fatalf("the group at %d of pack %s holds files of %d folders: %v", p.offset, p.pack, len(folders), folders)
		}
	}
	if len(groups) < 24 {
		t.Fatalf("%d groups for 24 folders", len(groups))
	}
}
