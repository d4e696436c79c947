package cache

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// recordPoint runs what a backup does with the cache: it loads the
// parent's listings it keeps and tells the cache so, saves the new ones,
// and names the bundle for the point's root.
func recordPoint(t *testing.T, c *Cache, kept, saved []crypto.ID, f *fakeRepo, root crypto.ID) {
	t.Helper()
	if err := c.RecordBundle(); err != nil {
		t.Fatal(err)
	}
	for _, id := range kept {
		if _, err := c.LoadTree(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		c.KeepTree(id)
	}
	for _, id := range saved {
		c.SaveTree(id, f.blobs[id])
	}
	if err := c.FinishBundle(root); err != nil {
		t.Fatal(err)
	}
}

// The next backup reads the whole point's listings from its bundle: no
// fetch from the repository and no file per listing.
func TestTheParentsListingsComeFromItsBundle(t *testing.T) {
	f, ids := newFake(t, 6)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	recordPoint(t, c, ids[:3], ids[3:], f, ids[0])
	c.Close()
	if _, err := os.Stat(c.path(ids[4])); err == nil {
		t.Fatal("a listing saved while recording also went to a file of its own")
	}
	os.RemoveAll(filepath.Join(dir, "trees"))
	servedFromBundle(t, dir, f, ids[0], ids)
}

// servedFromBundle checks that a fresh cache in dir, using the bundle of
// root, serves every listing of ids without a fetch from the repository.
func servedFromBundle(t *testing.T, dir string, f *fakeRepo, root crypto.ID, ids []crypto.ID) {
	t.Helper()
	fetched := f.fetches
	c, _ := New(dir, f, 0)
	defer c.Close()
	if !c.UseBundle(root, true) {
		t.Fatal("the point's bundle was not found")
	}
	for _, id := range ids {
		if b, err := c.LoadTreeBytes(t.Context(), id); err != nil || string(b) != string(f.blobs[id]) {
			t.Fatalf("listing %s: %q, %v", id, b, err)
		}
	}
	if f.fetches != fetched {
		t.Fatalf("%d listings were fetched from the repository, want none", f.fetches-fetched)
	}
}

// A bundle is only a cache: a record that does not match its keyed ID is
// fetched again, and a file that is not a bundle is not used.
func TestATamperedBundleIsNotTrusted(t *testing.T) {
	f, ids := newFake(t, 2)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	recordPoint(t, c, nil, ids, f, ids[0])
	path := c.bundlePath(ids[0])
	b, _ := os.ReadFile(path)
	b[32+4] ^= 0xff // the first record's first byte
	os.WriteFile(path, b, 0o600)
	fetched := f.fetches

	c2, _ := New(dir, f, 0)
	defer c2.Close()
	c2.UseBundle(ids[0], true)
	got, err := c2.LoadTreeBytes(t.Context(), ids[0])
	if err != nil || string(got) != string(f.blobs[ids[0]]) || f.fetches != fetched+1 {
		t.Fatalf("tampered record: %q, %v, fetched %d", got, err, f.fetches-fetched)
	}

	os.WriteFile(path, []byte("not a bundle at all"), 0o600)
	c3, _ := New(dir, f, 0)
	defer c3.Close()
	if c3.UseBundle(ids[0], true) {
		t.Fatal("a file that is not a bundle was used")
	}
}

// Trim keeps the newest bundles and removes what an interrupted backup
// left, once it is old enough not to be another backup's, still running.
func TestTrimKeepsTheNewestBundles(t *testing.T) {
	f, ids := newFake(t, keepBundles+2)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	for i, id := range ids {
		recordPoint(t, c, nil, []crypto.ID{id}, f, id)
		at := now.Add(time.Duration(i-len(ids)) * time.Hour)
		os.Chtimes(c.bundlePath(id), at, at)
	}
	if err := c.RecordBundle(); err != nil { // a backup that never finished
		t.Fatal(err)
	}
	c.SaveTree(ids[0], f.blobs[ids[0]]) // its first new listing starts the file
	leftover := c.rec.f.Name()
	c.rec.f.Close()
	c.rec = nil
	if err := c.Trim(); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		_, err := os.Stat(c.bundlePath(id))
		if kept := i >= len(ids)-keepBundles; kept != (err == nil) {
			t.Fatalf("bundle %d of %d: kept %v, want %v", i+1, len(ids), err == nil, kept)
		}
	}
	if _, err := os.Stat(leftover); err != nil {
		t.Fatal("a bundle still being recorded was removed")
	}
	now = now.Add(2 * recountEvery)
	c.Trim()
	if _, err := os.Stat(leftover); err == nil {
		t.Fatal("an interrupted backup's unfinished bundle stayed")
	}
}

// bundleFiles lists the bundle folder: name and modification time.
func bundleFiles(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, bundleDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = fi.ModTime()
	}
	return out
}

// parentPoint makes n listings and records a point holding the first
// `saved` of them, rooted at the first, in a new cache folder: the parent
// of the backups the tests run next.
func parentPoint(t *testing.T, n, saved int) (*fakeRepo, []crypto.ID, string) {
	t.Helper()
	f, ids := newFake(t, n)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	recordPoint(t, c, nil, ids[:saved], f, ids[0])
	c.Close()
	return f, ids, dir
}

// A re-backup that changed nothing meets only its parent's listings, from
// the parent's bundle, and ends with the parent's root: it writes no new
// bundle, and the parent's is kept as the newest.
func TestANoChangeBackupKeepsItsParentsBundle(t *testing.T) {
	f, ids, dir := parentPoint(t, 3, 3)
	before := bundleFiles(t, dir)

	c2, _ := New(dir, f, 0)
	defer c2.Close()
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	c2.now = func() time.Time { return later }
	c2.UseBundle(ids[0], true)
	recordPoint(t, c2, ids, nil, f, ids[0])
	after := bundleFiles(t, dir)
	if len(after) != len(before) {
		t.Fatalf("bundle folder went from %v to %v", before, after)
	}
	name := filepath.Base(c2.bundlePath(ids[0]))
	if !after[name].Equal(later) {
		t.Errorf("the parent's bundle was not marked newest: modified %v, want %v", after[name], later)
	}
}

// Once a listing is new, the listings met before it in the parent's
// bundle are copied into the new bundle too, so the next backup reads
// them all from it.
func TestABundleStartedLateHoldsEveryListing(t *testing.T) {
	f, ids, dir := parentPoint(t, 4, 3)

	c2, _ := New(dir, f, 0)
	c2.UseBundle(ids[0], true)
	// Two from the parent's bundle, then a new one that is the new root.
	recordPoint(t, c2, ids[1:3], []crypto.ID{ids[3]}, f, ids[3])
	c2.Close()
	os.Remove(c2.bundlePath(ids[0]))
	servedFromBundle(t, dir, f, ids[3], ids[1:])
}

// A changed folder's previous listing is read for the comparison but is
// not the new point's: the new bundle leaves it out.
func TestABundleHoldsOnlyThePointsListings(t *testing.T) {
	for _, withBundle := range []bool{true, false} {
		f, ids, dir := parentPoint(t, 5, 3)
		if !withBundle {
			os.RemoveAll(filepath.Join(dir, bundleDir)) // every listing is fetched
		}
		c2, _ := New(dir, f, 0)
		c2.UseBundle(ids[0], true)
		if err := c2.RecordBundle(); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids[:3] {
			if _, err := c2.LoadTree(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		// ids[1] is kept; the folders of ids[0] (the root) and ids[2]
		// changed, and ids[3] and ids[4] replace them.
		c2.KeepTree(ids[1])
		c2.SaveTree(ids[4], f.blobs[ids[4]])
		c2.SaveTree(ids[3], f.blobs[ids[3]])
		if err := c2.FinishBundle(ids[3]); err != nil {
			t.Fatal(err)
		}
		c2.Close()
		b, err := os.Open(c2.bundlePath(ids[3]))
		if err != nil {
			t.Fatal(err)
		}
		index, err := readBundleIndex(b)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[crypto.ID]bool{}
		for id := range index {
			got[id] = true
		}
		want := map[crypto.ID]bool{ids[1]: true, ids[3]: true, ids[4]: true}
		if !maps.Equal(got, want) {
			t.Errorf("parent's bundle in use %v: the new bundle holds %d listings %v, want the point's 3 (%s, %s, %s)", withBundle, len(got), got, ids[1], ids[3], ids[4])
		}
	}
}

// A point whose listings all come from bundles but whose root has no
// bundle of its own (a backup of one folder of the parent) gets one.
func TestABundleIsWrittenForANewRootFromOldListings(t *testing.T) {
	f, ids, dir := parentPoint(t, 3, 3)

	c2, _ := New(dir, f, 0)
	defer c2.Close()
	c2.UseBundle(ids[0], true)
	recordPoint(t, c2, ids[1:], nil, f, ids[1])
	if _, err := os.Stat(c2.bundlePath(ids[1])); err != nil {
		t.Fatalf("no bundle for the new root: %v", err)
	}
}

// A backup that fails leaves no bundle behind.
func TestAnAbortedBundleLeavesNothing(t *testing.T) {
	f, ids := newFake(t, 1)
	dir := t.TempDir()
	c, _ := New(dir, f, 0)
	if err := c.RecordBundle(); err != nil {
		t.Fatal(err)
	}
	c.SaveTree(ids[0], f.blobs[ids[0]])
	c.Close()
	des, _ := os.ReadDir(filepath.Join(dir, bundleDir))
	if len(des) != 0 {
		t.Fatalf("left %d files in the bundle folder", len(des))
	}
}

// The bundle index is read from a local file another process may have
// damaged: anything is refused or read within bounds, never a panic.
func FuzzBundleIndex(f *testing.F) {
	fr, ids := newFake(f, 2)
	dir := f.TempDir()
	c, _ := New(dir, fr, 0)
	c.RecordBundle()
	for _, id := range ids {
		c.SaveTree(id, fr.blobs[id])
	}
	c.FinishBundle(ids[0])
	good, _ := os.ReadFile(c.bundlePath(ids[0]))
	f.Add(good)
	f.Add([]byte(bundleMagic))
	f.Add(append(make([]byte, 12), bundleMagic...))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		index, err := readBundleIndex(fh)
		if err != nil {
			return
		}
		for _, e := range index {
			if e.off < 0 || e.off+int64(e.n) > int64(len(b)) {
				t.Fatalf("record at %d+%d past the end of a %d-byte file", e.off, e.n, len(b))
			}
		}
	})
}
