package repository

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// localTestRepo is a repository in a folder, behind the retry wrapper as
// the CLI opens one, with 1 MiB packs.
func localTestRepo(t *testing.T) (*Repository, storage.Backend, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	lb, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	be := retry.New(lb, retry.Policy{})
	r, err := Init(t.Context(), be, []byte(blobTestPass), Options{
		KDF:      &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		Chunker:  &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
		PackSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, be, dir
}

func leftoverTemps(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestBlobWriterSpoolsPacksToALocalFolder: in a folder, data packs are
// written out as they fill instead of held in memory, and come out the
// same: every blob readable through the index files alone, packs within
// the size, no temp file left.
func TestBlobWriterSpoolsPacksToALocalFolder(t *testing.T) {
	r, be, dir := localTestRepo(t)
	var blobs [][]byte
	for i := range 60 {
		blobs = append(blobs, incompressible(uint64(i), 50<<10+i*997))
	}
	blobs = append(blobs, bytes.Repeat([]byte("compresses "), 20_000))
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{Uploads: 1, IndexEvery: 2})
	if w.spooler == nil {
		t.Fatal("the writer holds packs in memory for a local folder")
	}
	if err := saveAll(t.Context(), w, r, blobs); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	var packs int
	err := be.List(t.Context(), layout.DataPrefix, func(i storage.Info) error {
		packs++
		if i.Size > int64(r.Config().PackSize)+packSlack {
			t.Errorf("pack %s has %d bytes", i.Name, i.Size)
		}
		return nil
	})
	if err != nil || packs < 3 {
		t.Fatalf("%d packs (%v), want several", packs, err)
	}
	if tmp := leftoverTemps(t, dir); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
	r2, err := Open(t.Context(), be, []byte(blobTestPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.LoadIndex(t.Context())
	if err != nil || st.Recovered != 0 || len(st.DamagedPacks) != 0 {
		t.Fatalf("LoadIndex: %+v, %v; want every pack indexed and sound", st, err)
	}
	for i, b := range blobs {
		got, err := r2.LoadBlob(t.Context(), r.BlobID(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	// A stored pack's header matches its index entry: the spooled hash
	// and offsets are the pack's own.
	for id, p := range r2.Index().Packs() {
		entries, err := r2.ReadPackHeader(t.Context(), id, p.Size)
		if err != nil || len(entries) != len(p.Blobs) {
			t.Fatalf("pack %s: header %d entries (%v), index %d", id, len(entries), err, len(p.Blobs))
		}
		data, err := storage.ReadAll(t.Context(), be, PackName(id))
		if err != nil || hashID(data) != id.String() {
			t.Fatalf("pack %s is not named by its hash (%v)", id, err)
		}
	}
}

// TestBlobWriterDropsItsSpoolWhenStopped: a backup stopped midway leaves no
// temp file, and what it stored stays readable.
func TestBlobWriterDropsItsSpoolWhenStopped(t *testing.T) {
	r, _, dir := localTestRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := r.NewBlobWriter(ctx, BlobWriterOptions{Uploads: 1})
	for i := range 30 {
		b := incompressible(uint64(i), 100<<10)
		if i == 25 {
			cancel()
		}
		if err := w.SaveBlob(ctx, DataBlob, r.BlobID(b), b); err != nil {
			break
		}
	}
	if err := w.Finish(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish after cancel: %v", err)
	}
	if tmp := leftoverTemps(t, dir); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}
