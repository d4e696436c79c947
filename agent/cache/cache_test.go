package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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

func newFake(t testing.TB, n int) (*fakeRepo, []crypto.ID) {
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

// Trim lists the cache only when its ledger says the bound is passed, or
// once a day: a file put there behind the cache's back is noticed at the
// daily count, not after every backup.
func TestTrimCountsTheCacheOnlyWhenItMust(t *testing.T) {
	f, ids := newFake(t, 20)
	dir := t.TempDir()
	c, _ := New(dir, f, 120) // each tree is 9 bytes: ten fit, twenty do not
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	size := func() (total int64) {
		filepath.Walk(filepath.Join(dir, "trees"), func(_ string, fi os.FileInfo, _ error) error {
			if fi != nil && !fi.IsDir() {
				total += fi.Size()
			}
			return nil
		})
		return total
	}
	for _, id := range ids[:10] {
		c.SaveTree(id, f.blobs[id])
	}
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "trees", "zz", "junk")
	os.MkdirAll(filepath.Dir(junk), 0o700)
	if err := os.WriteFile(junk, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatalf("the cache was listed although its ledger said it fits: %v", err)
	}
	// What this process writes is counted without listing: past the bound,
	// Trim lists and trims.
	for _, id := range ids[10:] {
		c.SaveTree(id, f.blobs[id])
	}
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); err == nil || size() > 120 {
		t.Fatalf("over its bound the cache was not trimmed: %d bytes, junk there: %v", size(), err == nil)
	}

	// A day later the cache is listed whatever the ledger says.
	os.WriteFile(junk, make([]byte, 1000), 0o600)
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Fatal("listed again within the day")
	}
	now = now.Add(recountEvery + time.Minute)
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(junk); err == nil || size() > 120 {
		t.Fatalf("a day later the cache was not listed: %d bytes, junk there: %v", size(), err == nil)
	}
}
