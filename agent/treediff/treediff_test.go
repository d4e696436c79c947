package treediff_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treediff"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

func TestCompareTwoPointsOfATreeWithEveryFileKind(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := treegen.Make(src, treegen.Options{Seed: 5, Files: 20, MaxSize: 50 << 10, BigFiles: 1, Special: true}); err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(t.Context(), mem.New(t.Name()), []byte("correct horse battery staple"), repository.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	backup := func() *repository.Point {
		res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Point
	}
	p1 := backup()

	in := func(name string) string { return filepath.Join(src, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(in("added.txt"), []byte("0123456789"), 0o644))
	must(os.Remove(in("empty")))
	must(os.WriteFile(in(" leading space and trailing dot."), []byte("y"), 0o644))
	must(os.Chmod(in("naïve café – 日本語.txt"), 0o600))
	must(os.Remove(in("dangling-link")))
	must(os.Symlink("/another/target", in("dangling-link")))
	must(os.RemoveAll(in("empty-dir")))
	must(os.MkdirAll(in("new-dir"), 0o755))
	must(os.WriteFile(in("new-dir/f"), []byte("abc"), 0o644))
	must(os.Remove(in("link-to-dir")))
	must(os.WriteFile(in("link-to-dir"), []byte("now a file"), 0o644))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(in("hardlink-a"), old, old))
	p2 := backup()

	got := map[string]treediff.Change{}
	sum, err := treediff.Compare(t.Context(), r, p1.Tree, p2.Tree, func(c treediff.Change) error {
		if _, dup := got[c.Path]; dup {
			t.Errorf("%s reported twice", c.Path)
		}
		got[c.Path] = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []treediff.Change{
		{Path: "added.txt", Kind: treediff.Added, Type: "file", NewSize: 10},
		{Path: "empty", Kind: treediff.Removed, Type: "file"},
		{Path: " leading space and trailing dot.", Kind: treediff.Modified, Type: "file", OldSize: 1, NewSize: 1, What: []string{"content", "mtime"}},
		{Path: "naïve café – 日本語.txt", Kind: treediff.Modified, Type: "file", OldSize: 12, NewSize: 12, What: []string{"mode"}},
		{Path: "dangling-link", Kind: treediff.Modified, Type: "symlink", What: []string{"mtime", "target"}},
		{Path: "empty-dir", Kind: treediff.Removed, Type: "dir"},
		{Path: "new-dir", Kind: treediff.Added, Type: "dir"},
		{Path: "new-dir/f", Kind: treediff.Added, Type: "file", NewSize: 3},
		{Path: "link-to-dir", Kind: treediff.Modified, Type: "file", NewSize: 10, What: []string{"type"}},
	} {
		want.Path = filepath.ToSlash(filepath.Join(treegen.Restored(string(filepath.Separator), src), want.Path)) // as the point names it
		c, ok := got[want.Path]
		if !ok {
			t.Errorf("%s: not reported", want.Path)
			continue
		}
		// Symlink times depend on when the test made them.
		if c.Kind != want.Kind || c.Type != want.Type || c.OldSize != want.OldSize || c.NewSize != want.NewSize || !slices.Equal(c.What, want.What) {
			t.Errorf("%s: %+v, want %+v", want.Path, c, want)
		}
		delete(got, want.Path)
	}
	// What is left: the folders whose listing changed, for their times,
	// and both names of the hard-linked file whose time changed (one name
	// is stored as the file, the other as the link; which may change
	// between backups, and then both change type).
	links := 0
	for p, c := range got {
		switch base := filepath.Base(p); {
		case base == "hardlink-a" || base == "hardlink-b":
			if !slices.Equal(c.What, []string{"mtime"}) && !slices.Equal(c.What, []string{"type"}) {
				t.Errorf("unexpected change %s: %+v", p, c)
			}
			links++
		case !slices.Equal(c.What, []string{"mtime"}):
			t.Errorf("unexpected change %s: %+v", p, c)
		case c.Type != "dir":
			t.Errorf("unexpected change %s: %+v", p, c)
		}
	}
	if links != 2 {
		t.Errorf("%d names of the hard-linked file reported, want 2", links)
	}
	// 13 bytes in new files, 10 in the symlink become a file; a hard
	// link's roles swapping moves 30 bytes from one name to the other.
	if sum.Added != 3 || sum.Removed != 2 || sum.BytesAdded-sum.BytesRemoved != 13+10 {
		t.Errorf("summary %+v", sum)
	}

	// A point against itself: nothing.
	n := 0
	if _, err := treediff.Compare(t.Context(), r, p2.Tree, p2.Tree, func(treediff.Change) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("a point against itself: %d changes, %v", n, err)
	}
}
