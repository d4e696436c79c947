package repository

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// LoadRun must give each blob of a run exactly what LoadBlob gives,
// compressed or not, and fail only the blob whose bytes are damaged.
func TestLoadRunOpensEachBlobOfARunAsLoadBlobDoes(t *testing.T) {
	r, _ := blobTestRepo(t)
	blobs := [][]byte{incompressible(1, 40<<10), bytes.Repeat([]byte("compressible "), 5000), incompressible(2, 70<<10), incompressible(3, 10)}
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{Savers: 1})
	for _, b := range blobs {
		if err := w.SaveBlob(t.Context(), DataBlob, r.BlobID(b), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	var pack crypto.ID
	var entries []BlobEntry
	for _, b := range blobs {
		loc, ok := r.Index().Lookup(r.BlobID(b))
		if !ok {
			t.Fatal("a saved blob is not indexed")
		}
		pack = loc.Pack
		entries = append(entries, loc.BlobEntry)
	}
	slices.SortFunc(entries, func(a, b BlobEntry) int { return int(a.Offset) - int(b.Offset) })

	var got int
	r.LoadRun(t.Context(), pack, entries, func(e BlobEntry, plain []byte, err error) {
		if err != nil {
			t.Fatalf("blob %s: %v", e.ID, err)
		}
		want, _ := r.LoadBlob(t.Context(), e.ID)
		if !bytes.Equal(plain, want) {
			t.Errorf("blob %s: LoadRun and LoadBlob differ", e.ID)
		}
		got++
	})
	if got != len(blobs) {
		t.Fatalf("LoadRun handed over %d blobs, want %d", got, len(blobs))
	}

	// A blob whose recorded place is off by one fails alone.
	bad := slices.Clone(entries)
	bad[1].Offset++
	var failed []crypto.ID
	r.LoadRun(t.Context(), pack, bad, func(e BlobEntry, plain []byte, err error) {
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("blob %s: %v, want ErrDamaged", e.ID, err)
			}
			failed = append(failed, e.ID)
		}
	})
	if len(failed) != 1 || failed[0] != bad[1].ID {
		t.Fatalf("failed %v, want only the damaged blob %s", failed, bad[1].ID)
	}
}
