package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// fakeRepo serves encoded trees and counts fetches.
type fakeRepo struct {
	key     *crypto.Key
	blobs   map[crypto.ID][]byte
	fetches int
}

func (f *fakeRepo) Key() *crypto.Key { return f.key }

func (f *fakeRepo) LoadBlob(_ context.Context, id crypto.ID) ([]byte, error) {
	f.fetches++
	return f.blobs[id], nil
}

func newFake(t *testing.T, n int) (*fakeRepo, []crypto.ID) {
	key, _ := crypto.NewKey()
	f := &fakeRepo{key: key, blobs: map[crypto.ID][]byte{}}
	var ids []crypto.ID
	for i := range n {
		b, err := tree.Encode(&tree.Tree{Nodes: []tree.Node{{Name: []byte{byte('a' + i)}, Type: tree.File, Size: 0}}})
		if err != nil {
			t.Fatal(err)
		}
		id := key.ChunkID(b)
		f.blobs[id] = b
		ids = append(ids, id)
	}
	return f, ids
}

func TestMissesAreFetchedOnceThenServedLocally(t *testing.T) {
	f, ids := newFake(t, 1)
	c, err := New(t.TempDir(), f, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.LoadTree(t.Context(), ids[0]); err != nil {
			t.Fatal(err)
		}
	}
	if f.fetches != 1 {
		t.Fatalf("fetched %d times, want 1", f.fetches)
	}
}

func TestALostOrTamperedCacheIsRebuiltFromTheRepository(t *testing.T) {
	f, ids := newFake(t, 1)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	c.LoadTree(t.Context(), ids[0])
	// Tamper with the cached copy: it must not be trusted.
	os.WriteFile(c.path(ids[0]), []byte("garbage"), 0o600)
	got, err := c.LoadTree(t.Context(), ids[0])
	if err != nil || string(got.Nodes[0].Name) != "a" || f.fetches != 2 {
		t.Fatalf("tampered entry: %v, %v, fetches %d", got, err, f.fetches)
	}
	// Lose the whole folder.
	os.RemoveAll(dir)
	c2, _ := New(dir, f, 0)
	if _, err := c2.LoadTree(t.Context(), ids[0]); err != nil || f.fetches != 3 {
		t.Fatalf("lost cache: %v, fetches %d", err, f.fetches)
	}
}

func TestTrimKeepsTheCacheWithinItsBound(t *testing.T) {
	f, ids := newFake(t, 20)
	dir := t.TempDir()
	c, _ := New(dir, f, 200)
	for _, id := range ids {
		c.SaveTree(id, f.blobs[id])
	}
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	var total int64
	filepath.Walk(filepath.Join(dir, "trees"), func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > 200 || total == 0 {
		t.Fatalf("cache holds %d bytes after trimming to 200", total)
	}
}
