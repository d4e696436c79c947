package repostats_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/repostats"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

var fastKDF = &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}

func TestMeasure(t *testing.T) {
	root := t.TempDir()
	var a, b string
	for i, d := range []*string{&a, &b} {
		*d = filepath.Join(root, string(rune('a'+i)))
		if err := os.Mkdir(*d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := treegen.Make(*d, treegen.Options{Seed: uint64(i + 1), Files: 30, MaxSize: 100 << 10, BigFiles: 1, Special: true}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := repository.Init(t.Context(), mem.New(t.Name()), []byte("correct horse battery staple"), repository.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{a, a, b} {
		if _, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	r, err = repository.Open(t.Context(), r.Backend(), []byte("correct horse battery staple"), repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	points, err := r.Points(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st, err := repostats.Measure(t.Context(), r, points)
	if err != nil {
		t.Fatal(err)
	}
	p := st.Points
	if len(p) != 3 {
		t.Fatalf("%d points measured", len(p))
	}
	// The same folder twice: every blob shared, nothing unique but perhaps
	// the trees above it, which hold the times of the folders on its path
	// (/tmp's, or Temp's under wine, change whenever another program makes
	// a temporary file).
	for i := range 2 {
		above := treesAbove(t, r, points[i].Tree, a)
		if u := p[i].UniqueStoredSize; u > above {
			t.Errorf("point %d of one folder backed up twice has %d bytes of its own; want at most the %d of the trees above the folder", i, u, above)
		}
	}
	if p[0].StoredSize != p[1].StoredSize || p[0].StoredSize == 0 {
		t.Errorf("two points of one folder: %+v, %+v", p[0], p[1])
	}
	if p[2].UniqueStoredSize == 0 || p[2].UniqueStoredSize > p[2].StoredSize {
		t.Errorf("a point of another folder: %+v", p[2])
	}
	// Sparse holes and duplicate content make a restore larger than its
	// deduplicated data, where the file system tells holes apart: under
	// wine, FSCTL_QUERY_ALLOCATED_RANGES is not supported, so treegen's
	// sparse file is read and stored whole and a point deduplicates
	// nothing (a ratio of 1).
	holes := findsHoles(t, filepath.Join(a, "sparse.img"))
	if !holes {
		t.Logf("the file system in %s reports no holes (wine, FAT): a point's dedup ratio may be 1", root)
	}
	for _, x := range p {
		// Text compresses.
		if x.RestoreSize <= 0 || x.DedupRatio < 1 || holes && x.DedupRatio == 1 || x.CompressionRatio <= 1 {
			t.Errorf("point %+v", x)
		}
	}
	rep := st.Repository
	if rep.Points != 3 || rep.RestoreSize != p[0].RestoreSize+p[1].RestoreSize+p[2].RestoreSize {
		t.Errorf("repository %+v", rep)
	}
	if rep.DedupRatio < p[0].DedupRatio*1.4 {
		t.Errorf("backing a folder up twice hardly deduplicated: repository %.2f, one point %.2f", rep.DedupRatio, p[0].DedupRatio)
	}
	if rep.StoredSize >= p[0].StoredSize+p[2].StoredSize+1 || rep.UnusedSize > rep.PackSize/20 {
		t.Errorf("repository %+v", rep)
	}
}

// findsHoles says whether fsmeta.DataExtents finds a hole in the sparse
// file name.
func findsHoles(t *testing.T, name string) bool {
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	exts, err := fsmeta.DataExtents(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range exts {
		data += e.Length
	}
	return data < fi.Size()
}

// treesAbove is the stored size of the trees of a point that list the
// folders above dir: its root tree, and each folder's down to dir's parent.
func treesAbove(t *testing.T, r *repository.Repository, root crypto.ID, dir string) int64 {
	t.Helper()
	size := func(id crypto.ID) int64 {
		loc, ok := r.Index().Lookup(id)
		if !ok {
			t.Fatalf("tree %s is in no index", id)
		}
		return int64(loc.Length)
	}
	total := size(root)
	parts := strings.Split(strings.Trim(find.PointPath(dir), "/"), "/")
	for i := 1; i < len(parts); i++ {
		n, err := restorer.Lookup(t.Context(), r, root, strings.Join(parts[:i], "/"))
		if err != nil || n.Subtree == nil {
			t.Fatalf("%s in the point: %v", strings.Join(parts[:i], "/"), err)
		}
		total += size(*n.Subtree)
	}
	return total
}
