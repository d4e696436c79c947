package restorer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// Points made before tree.Node.Links stored further names of a file as
// hard links to its point path. They are linked to wherever that file was
// restored: under its own name, or beside an existing file as a copy; and
// one to a file not restored fails alone.
func TestOldPointsHardLinksFollowTheirFile(t *testing.T) {
	SetBatchFiles(t, 1)
	sub, root := crypto.ID{1}, crypto.ID{2}
	loader := trees{
		sub: {Nodes: []tree.Node{
			{Name: []byte("first"), Type: tree.File, Mode: 0o644},
			{Name: []byte("kept"), Type: tree.File, Mode: 0o644},
		}},
		root: {Nodes: []tree.Node{
			{Name: []byte("d"), Type: tree.Dir, Subtree: &sub, Mode: 0o755},
			{Name: []byte("link-to-first"), Type: tree.HardLink, LinkTarget: []byte("d/first")},
			{Name: []byte("link-to-kept"), Type: tree.HardLink, LinkTarget: []byte("d/kept")},
			{Name: []byte("link-to-nothing"), Type: tree.HardLink, LinkTarget: []byte("d/missing")},
		}},
	}
	for _, mode := range []struct {
		name     string
		conflict Conflict
		wantKept string // where link-to-kept should lead, or "" for a failure
	}{
		{"copy", Copy, "copy"},
		{"skip", Skip, ""},
	} {
		t.Run(mode.name, func(t *testing.T) {
			target := t.TempDir()
			os.Mkdir(filepath.Join(target, "d"), 0o755)
			existing := filepath.Join(target, "d", "kept")
			if err := os.WriteFile(existing, []byte("the user's own file"), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := Restore(t.Context(), emptyRepo(t), &repository.Point{Tree: root}, Options{Target: target, Trees: loader, Conflict: mode.conflict})
			if err != nil {
				t.Fatal(err)
			}
			same := func(a, b string) bool {
				fa, errA := os.Stat(a)
				fb, errB := os.Stat(b)
				return errA == nil && errB == nil && os.SameFile(fa, fb)
			}
			if !same(filepath.Join(target, "d", "first"), filepath.Join(target, "link-to-first")) {
				t.Error("link-to-first is not a name of d/first")
			}
			failed := map[string]string{}
			for _, f := range res.Failed {
				failed[filepath.Base(f.Path)] = f.Err
			}
			if !strings.Contains(failed["link-to-nothing"], "not restored") {
				t.Errorf("a link to a path the point does not hold: %q", failed["link-to-nothing"])
			}
			keptLink := filepath.Join(target, "link-to-kept")
			switch mode.wantKept {
			case "copy":
				if len(res.Copies) != 1 || !same(res.Copies[0], keptLink) {
					t.Errorf("link-to-kept does not lead to the restored copy %v", res.Copies)
				}
				if same(existing, keptLink) {
					t.Error("link-to-kept leads to the user's own file")
				}
			case "":
				if _, err := os.Lstat(keptLink); err == nil || !strings.Contains(failed["link-to-kept"], "not restored") {
					t.Errorf("a link to a skipped file was made or not reported: %q", failed["link-to-kept"])
				}
			}
		})
	}
}
