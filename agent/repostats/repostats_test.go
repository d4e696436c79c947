package repostats_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/repostats"
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
	// The same folder twice: every blob shared, nothing unique.
	if p[0].UniqueStoredSize != 0 || p[1].UniqueStoredSize != 0 || p[0].StoredSize != p[1].StoredSize || p[0].StoredSize == 0 {
		t.Errorf("two points of one folder: %+v, %+v", p[0], p[1])
	}
	if p[2].UniqueStoredSize == 0 || p[2].UniqueStoredSize > p[2].StoredSize {
		t.Errorf("a point of another folder: %+v", p[2])
	}
	for _, x := range p {
		// Sparse holes and duplicate content make a restore larger than
		// its deduplicated data; text compresses.
		if x.RestoreSize <= 0 || x.DedupRatio <= 1 || x.CompressionRatio <= 1 {
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
