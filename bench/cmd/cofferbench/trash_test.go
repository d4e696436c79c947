package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTrashKeepsInodesUntilEmptied(t *testing.T) {
	work := t.TempDir()
	// A stopped run's leftovers go when the next run starts.
	if err := os.MkdirAll(filepath.Join(work, "trash", "1-restore"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := newTrash(work)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin.dir); !os.IsNotExist(err) {
		t.Fatalf("leftover trash not emptied: %v", err)
	}

	tree := filepath.Join(work, "source", "restore")
	files := map[string]int{"a/small.txt": 100, "a/b/big.bin": shrinkMin + 1, "c.txt": 0}
	for name, size := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := bin.retire(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Fatalf("retired tree still in place: %v", err)
	}
	// The name is free again for the next repetition, and retiring it
	// again does not clash with the first.
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := bin.retire(tree); err != nil {
		t.Fatalf("second retire of the same name: %v", err)
	}
	if err := bin.retire(filepath.Join(work, "missing")); err != nil {
		t.Errorf("retiring a missing path: %v", err)
	}

	// Every file is still there (its inode allocated); the big one holds
	// no data anymore.
	kept := filepath.Join(bin.dir, "1-restore")
	for name, size := range files {
		fi, err := os.Stat(filepath.Join(kept, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := int64(size)
		if size >= shrinkMin {
			want = 0
		}
		if fi.Size() != want {
			t.Errorf("%s: %d bytes in the trash, want %d", name, fi.Size(), want)
		}
	}

	if err := bin.empty(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin.dir); !os.IsNotExist(err) {
		t.Errorf("trash not emptied: %v", err)
	}
}
