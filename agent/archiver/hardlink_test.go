package archiver_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// linkedTree makes a folder where one file has three names in three
// folders, among enough other files that the readers race for them.
func linkedTree(t *testing.T) (src string, names []string, content []byte) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src")
	content = bytes.Repeat([]byte("the same file under every name\n"), 5000)
	names = []string{"a/first", "m/second", "z/third"}
	for i, name := range names {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := os.WriteFile(p, content, 0o640); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Link(filepath.Join(src, filepath.FromSlash(names[0])), p); err != nil {
			t.Skipf("this file system cannot make hard links: %v", err)
		}
		for j := range 40 {
			other := filepath.Join(filepath.Dir(p), fmt.Sprintf("other-%02d", j))
			if err := os.WriteFile(other, bytes.Repeat([]byte{byte(j)}, 1000*j), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return src, names, content
}

func TestEveryNameOfAHardLinkedFileIsStoredAlikeWhicheverIsReadFirst(t *testing.T) {
	src, names, content := linkedTree(t)
	r := newRepo(t)
	var trees []string
	var first *archiver.Result
	// No parent, so every run reads the files again and the readers race.
	for range 8 {
		res, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Readers: 16})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res
		}
		// src's own tree: the folders above it change on a busy machine.
		n, err := restorer.Lookup(t.Context(), reopen(t, r), res.Point.Tree, find.PointPath(src))
		if err != nil || n.Subtree == nil {
			t.Fatalf("src in the point: %v", err)
		}
		trees = append(trees, n.Subtree.String())
	}
	if len(slices.Compact(slices.Clone(trees))) != 1 {
		t.Fatalf("eight backups of one unchanged folder built different trees: %v", trees)
	}

	r = reopen(t, r)
	var want *tree.Node
	for _, name := range names {
		n, err := restorer.Lookup(t.Context(), r, first.Point.Tree, find.PointPath(filepath.Join(src, name)))
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != tree.File || n.Links != 3 || n.Size != int64(len(content)) || len(n.Content) == 0 {
			t.Fatalf("%s stored as %s, %d names, %d bytes in %d chunks; want a file of 3 names and %d bytes", name, n.Type, n.Links, n.Size, len(n.Content), len(content))
		}
		if want == nil {
			want = n
		} else if !slices.Equal(n.Content, want.Content) || n.Inode != want.Inode || n.Dev != want.Dev {
			t.Errorf("%s does not hold the same file as %s", name, names[0])
		}
	}
	others := int64(len(names) * 1000 * (39 * 40 / 2)) // other-00 … other-39 in each folder
	if s := first.Point.Summary; s.BytesRead != others+int64(len(content)) {
		t.Errorf("read %d bytes; want %d, the linked file once", s.BytesRead, others+int64(len(content)))
	}

	t.Run("a restore links the names again", func(t *testing.T) {
		dst := t.TempDir()
		out, err := restorer.Restore(t.Context(), r, first.Point, restorer.Options{Target: dst})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("restore: %+v, %v", out, err)
		}
		var infos []os.FileInfo
		for _, name := range names {
			p := filepath.Join(treegen.Restored(dst, src), filepath.FromSlash(name))
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%s restored with %d bytes (%v); want the %d backed up", name, len(got), err, len(content))
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			infos = append(infos, fi)
		}
		for i := 1; i < len(infos); i++ {
			if !os.SameFile(infos[0], infos[i]) {
				t.Errorf("%s and %s restored as separate files", names[0], names[i])
			}
		}
	})

	t.Run("any one name restores on its own", func(t *testing.T) {
		dst := t.TempDir()
		out, err := restorer.Restore(t.Context(), r, first.Point, restorer.Options{Target: dst, Include: []string{find.PointPath(filepath.Join(src, names[2]))}})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("restore of %s alone: %+v, %v", names[2], out, err)
		}
		got, err := os.ReadFile(filepath.Join(treegen.Restored(dst, src), filepath.FromSlash(names[2])))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s restored alone with %d bytes (%v); want %d", names[2], len(got), err, len(content))
		}
	})
}
