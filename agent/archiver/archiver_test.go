package archiver_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
)

func TestIncrementalBackupReadsAndStoresOnlyWhatChanged(t *testing.T) {
	src := sourceTree(t, 11)
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r = reopen(t, r)
	same, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is read. The point records its ancestors' metadata too (/tmp,
	// which other processes touch), so a few small trees may be new.
	if s := same.Point.Summary; s.BytesRead != 0 || s.BytesNew > 4<<10 {
		t.Fatalf("no-change backup read %d and stored %d new bytes; want 0 read and at most a few small trees", s.BytesRead, s.BytesNew)
	}

	// Change one file: only it is read, and only its changed chunk is new.
	big := filepath.Join(src, "big0.bin")
	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("a small edit in the middle"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	r = reopen(t, r)
	changed, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Parent: same.Point})
	if err != nil {
		t.Fatal(err)
	}
	s := changed.Point.Summary
	if s.BytesRead != fi.Size() {
		t.Errorf("read %d bytes, want just the changed file's %d", s.BytesRead, fi.Size())
	}
	if s.BytesNew == 0 || s.BytesNew > 600<<10 {
		t.Errorf("new data %d bytes, want only the chunks around the edit (under 600 KiB of a %d-byte file)", s.BytesNew, fi.Size())
	}
}

func TestInterruptedBackupLeavesAValidRepositoryAndItsUploadsAreReused(t *testing.T) {
	src := sourceTree(t, 15)
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	more := filepath.Join(src, "more")
	if err := os.Mkdir(more, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(more, treegen.Options{Seed: 99, Files: 30, MaxSize: 100 << 10, BigFiles: 3}); err != nil {
		t.Fatal(err)
	}
	// Cancel once two packs (about 2 MiB) are stored, as a crash would stop
	// it. A process killed with -9 writes no index at the end: refuse index
	// writes, so only the packs themselves survive.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	noIndex := faulty.New(&onCreate{Backend: r.Backend(), prefix: layout.DataPrefix, after: 2, fn: cancel})
	noIndex.Fail(faulty.Create, faulty.Prefix(layout.IndexPrefix))
	crashing, err := repository.Open(t.Context(), noIndex, pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crashing.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = archiver.Backup(ctx, crashing, []string{src}, archiver.Options{Parent: first.Point, IndexEvery: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("backup cancelled after two packs: %v, want context.Canceled", err)
	}

	// The first point is intact and the repository checks clean.
	r = reopen(t, r)
	rep, err := checker.Check(t.Context(), r, checker.Options{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check after interruption: %+v, %v", rep.Problems, err)
	}
	// The next backup finds the interrupted one's packs and does not store them again.
	r2, err := repository.Open(t.Context(), r.Backend(), pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.LoadIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Recovered == 0 {
		t.Fatal("no pack of the interrupted backup was recovered")
	}
	second, err := archiver.Backup(t.Context(), r2, []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	if second.Point.Summary.BytesNew >= second.Point.Summary.BytesRead {
		t.Fatalf("after the interruption the backup stored %d new of %d read bytes: nothing was reused", second.Point.Summary.BytesNew, second.Point.Summary.BytesRead)
	}
	dst := t.TempDir()
	out, err := restorer.Restore(t.Context(), reopen(t, r2), second.Point, restorer.Options{Target: dst})
	if err != nil || len(out.Failed) > 0 {
		t.Fatalf("restore: %v %v", out, err)
	}
	if diffs, _ := treegen.Diff(src, treegen.Restored(dst, src)); len(diffs) > 0 {
		t.Fatalf("restore differs: %v", diffs)
	}
}

// savedTrees records the trees a backup encodes and writes, and those of
// the parent it keeps.
type savedTrees struct {
	mu   sync.Mutex
	ids  []crypto.ID
	kept []crypto.ID
}

func (s *savedTrees) SaveTree(id crypto.ID, _ []byte) {
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
}

func (s *savedTrees) KeepTree(id crypto.ID) {
	s.mu.Lock()
	s.kept = append(s.kept, id)
	s.mu.Unlock()
}

// TestUnchangedFoldersKeepTheirTrees: a re-backup does not encode the tree
// of a folder that has not changed; it keeps the parent point's, and a
// change encodes only the trees from there to the root.
func TestUnchangedFoldersKeepTheirTrees(t *testing.T) {
	src := sourceTree(t, 12)
	depth := strings.Count(filepath.ToSlash(src), "/") + 1 // the root and src's ancestors
	r := newRepo(t)
	var first *archiver.Result
	// Other programs may change src's ancestors (/tmp) at any moment, and
	// the root tree holds them: the pair of backups is tried again when one
	// changed between the first backup and the end of the second.
	for range 3 {
		stable := ancestorsUnchanged(t, src)
		var all, again savedTrees
		var err error
		first, err = archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Saved: &all})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.ids) <= depth {
			t.Fatalf("the first backup wrote %d trees; the test needs folders below %s", len(all.ids), src)
		}
		same, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Parent: first.Point, Saved: &again})
		if err != nil {
			t.Fatal(err)
		}
		if !stable() {
			continue
		}
		if len(again.ids) != 0 || same.Point.Tree != first.Point.Tree {
			t.Fatalf("no-change re-backup encoded %d trees and made root %s; want none and the parent's root %s", len(again.ids), same.Point.Tree, first.Point.Tree)
		}
		toldOfEveryTree(t, r, same.Point.Tree, &again)
		break
	}

	// A file's new time changes the trees from its folder to the root, and
	// no other.
	var file string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && file == "" && d.Type().IsRegular() && filepath.Dir(p) != src {
			file = p
		}
		return nil
	})
	if file == "" {
		t.Fatalf("treegen made no file in a folder below %s", src)
	}
	onPath := strings.Count(filepath.ToSlash(filepath.Dir(file)), "/") + 1
	if filepath.VolumeName(file) != "" {
		onPath++ // on Windows the root holds the volumes: C:\ is a tree of its own
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	var changed savedTrees
	next, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Parent: first.Point, Saved: &changed})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(changed.ids); n != onPath || next.Point.Tree == first.Point.Tree {
		t.Errorf("after the time of %s changed the backup encoded %d trees, want the %d from its folder to the root; root changed: %v",
			file, n, onPath, next.Point.Tree != first.Point.Tree)
	}
	toldOfEveryTree(t, r, next.Point.Tree, &changed)
}

// toldOfEveryTree checks that the saver heard of each tree of the point
// rooted at root, as saved or kept, and of no other: a cache builds the
// point's bundle of listings from exactly these.
func toldOfEveryTree(t *testing.T, r *repository.Repository, root crypto.ID, s *savedTrees) {
	t.Helper()
	r = reopen(t, r) // r's index is from before the backups
	want := map[crypto.ID]bool{}
	var walk func(id crypto.ID)
	walk = func(id crypto.ID) {
		if want[id] {
			return
		}
		want[id] = true
		tr, err := r.LoadTree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			if n.Subtree != nil {
				walk(*n.Subtree)
			}
		}
	}
	walk(root)
	told := map[crypto.ID]bool{}
	for _, id := range append(slices.Clone(s.ids), s.kept...) {
		if !want[id] {
			t.Errorf("told of tree %s, which is not in the point", id)
		}
		told[id] = true
	}
	for id := range want {
		if !told[id] {
			t.Errorf("tree %s of the point was neither saved nor kept", id)
		}
	}
}
