package restorer

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/tree"
)

// A file the plan keeps open is written and finished through its
// descriptor: a link planted at its path meanwhile gets neither its bytes
// nor its mode and times.
func TestAFileKeptOpenIsFinishedThroughItsDescriptor(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	r := &restorer{prog: &Progress{}}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &fileState{path: filepath.Join(dir, "restored"),
		meta: nodeMeta{typ: tree.File, mode: 0o640, modTime: mtime.UnixNano()}}
	st.remaining.Store(1)
	if err := r.create(st, true); err != nil {
		t.Fatal(err)
	}
	if st.f == nil || r.open.Load() != 1 {
		t.Fatalf("the file was not kept open (open files %d)", r.open.Load())
	}
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(st.path, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, st.path); err != nil {
		t.Fatal(err)
	}
	r.writeChunk(target{st, 0}, []byte("restored"))
	if r.open.Load() != 0 {
		t.Errorf("%d files still counted open after the last chunk", r.open.Load())
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the planted link's target now holds %q", b)
	}
	if after, _ := os.Stat(victim); after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the planted link's target changed: mode %v → %v, time %v → %v", before.Mode(), after.Mode(), before.ModTime(), after.ModTime())
	}
	got, err := os.Stat(moved)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(moved); string(b) != "restored" {
		t.Errorf("the restored file holds %q", b)
	}
	if got.Mode().Perm() != 0o640 || !got.ModTime().Equal(mtime) {
		t.Errorf("the restored file has mode %v and time %v, want 0640 and %v", got.Mode().Perm(), got.ModTime(), mtime)
	}
}
