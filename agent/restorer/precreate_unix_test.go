//go:build !windows

package restorer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The plan creates each file and a fetch worker reopens it later: a file
// swapped for something else in between is never written through.
func TestAFileSwappedAfterThePlanIsNotWrittenThrough(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, swap := range []struct {
		name string
		do   func(path string) error
	}{
		{"a hard link to another file", func(p string) error { return os.Link(victim, p) }},
		{"a symlink to another file", func(p string) error { return os.Symlink(victim, p) }},
	} {
		t.Run(swap.name, func(t *testing.T) {
			r := &restorer{}
			st := &fileState{path: filepath.Join(dir, "restored-"+strings.ReplaceAll(swap.name, " ", "-"))}
			if err := r.create(st, false); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(st.path); err != nil {
				t.Fatal(err)
			}
			if err := swap.do(st.path); err != nil {
				t.Fatal(err)
			}
			if err := r.openFile(st); err == nil {
				st.f.WriteAt([]byte("overwritten"), 0)
				st.f.Close()
				t.Fatal("the swapped-in file was opened for writing")
			}
			if st.created {
				t.Error("the swapped-in file counts as the restore's own, so a failure would remove it")
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("the other file now holds %q", b)
			}
		})
	}

	t.Run("the file the plan made", func(t *testing.T) {
		r := &restorer{}
		st := &fileState{path: filepath.Join(dir, "restored")}
		if err := r.create(st, false); err != nil {
			t.Fatal(err)
		}
		if err := r.openFile(st); err != nil {
			t.Fatalf("reopening the plan's own file: %v", err)
		}
		st.f.Close()
	})
}
