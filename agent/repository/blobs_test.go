package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

const blobTestPass = "blob writer test passphrase"

// blobTestRepo is a repository in memory with 1 MiB packs (the least allowed), behind a
// faulty wrapper the test may arm.
func blobTestRepo(t *testing.T) (*Repository, *faulty.Backend) {
	t.Helper()
	f := faulty.New(mem.New(t.Name()))
	r, err := Init(t.Context(), f, []byte(blobTestPass), Options{
		KDF:      &crypto.KDFParams{Algorithm: crypto.AlgorithmArgon2id, Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		Chunker:  &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
		PackSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, f
}

// incompressible makes n random bytes, so sealed sizes are predictable.
func incompressible(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// saveAll saves blobs from several goroutines, as the archiver's sealers do.
func saveAll(ctx context.Context, w *BlobWriter, r *Repository, blobs [][]byte) error {
	var wg sync.WaitGroup
	errs := make([]error, len(blobs))
	for i, b := range blobs {
		wg.Go(func() {
			t := DataBlob
			if i%5 == 0 {
				t = TreeBlob
			}
			errs[i] = w.SaveBlob(ctx, t, r.BlobID(b), b)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func TestBlobWriterStoresEveryBlobAndIndexesIt(t *testing.T) {
	r, f := blobTestRepo(t)
	var blobs [][]byte
	for i := range 40 {
		blobs = append(blobs, incompressible(uint64(i), 100<<10+i*1000))
	}
	var stored atomic.Int64
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{Uploads: 2, IndexEvery: 2, Stored: func(n int64) { stored.Add(n) }})
	if err := saveAll(t.Context(), w, r, blobs); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}

	var packs, indexes int
	var packBytes int64
	err := f.List(t.Context(), "", func(i storage.Info) error {
		switch {
		case strings.HasPrefix(i.Name, layout.DataPrefix):
			packs++
			packBytes += i.Size
			if i.Size > int64(r.Config().PackSize)+packSlack {
				t.Errorf("pack %s has %d bytes, over the pack size %d", i.Name, i.Size, r.Config().PackSize)
			}
		case strings.HasPrefix(i.Name, layout.IndexPrefix):
			indexes++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packs < 3 {
		t.Fatalf("%d packs for ~5 MiB in 1 MiB packs, want several", packs)
	}
	if indexes < 2 {
		t.Fatalf("%d index files for %d packs with IndexEvery 2; the index is not saved as packs are stored", indexes, packs)
	}
	if stored.Load() != packBytes {
		t.Fatalf("Stored was told of %d bytes, the packs hold %d", stored.Load(), packBytes)
	}

	// A fresh open finds every blob through the index files alone.
	r2, err := Open(t.Context(), f, []byte(blobTestPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r2.LoadIndex(t.Context())
	if err != nil || st.Recovered != 0 {
		t.Fatalf("LoadIndex: %+v, %v; want every pack indexed", st, err)
	}
	for i, b := range blobs {
		got, err := r2.LoadBlob(t.Context(), r.BlobID(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d: %v (%d bytes back of %d)", i, err, len(got), len(b))
		}
	}
}

func TestBlobWriterFailsWithTheUploadsCause(t *testing.T) {
	r, f := blobTestRepo(t)
	f.FailWritesAfter(1) // the first pack lands, the rest are refused
	var failed []error
	var mu sync.Mutex
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{Uploads: 1, Failed: func(err error) {
		mu.Lock()
		failed = append(failed, err)
		mu.Unlock()
	}})
	var blobs [][]byte
	for i := range 60 {
		blobs = append(blobs, incompressible(uint64(100+i), 40<<10))
	}
	saveErr := saveAll(t.Context(), w, r, blobs)
	err := w.Finish(t.Context())
	if !errors.Is(err, faulty.ErrInjected) || errors.Is(err, context.Canceled) {
		t.Fatalf("Finish: %v, want the upload's failure and no cancellation", err)
	}
	if saveErr != nil && !errors.Is(saveErr, faulty.ErrInjected) {
		t.Fatalf("SaveBlob: %v, want nil or the upload's failure", saveErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) == 0 || !errors.Is(failed[0], faulty.ErrInjected) {
		t.Fatalf("Failed was told %v, want the upload's failure", failed)
	}
}

func TestBlobWriterStopsWithItsContext(t *testing.T) {
	r, f := blobTestRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := r.NewBlobWriter(ctx, BlobWriterOptions{})
	b := incompressible(7, 1000)
	if err := w.SaveBlob(ctx, DataBlob, r.BlobID(b), b); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := w.SaveBlob(ctx, DataBlob, r.BlobID(b[1:]), b[1:]); !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveBlob after cancel: %v, want context.Canceled", err)
	}
	if err := w.Finish(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish after cancel: %v, want context.Canceled", err)
	}
	// The pack still filling is dropped, not stored half-way through a
	// cancellation.
	var names []string
	f.List(t.Context(), layout.DataPrefix, func(i storage.Info) error { names = append(names, i.Name); return nil })
	if len(names) != 0 {
		t.Fatalf("packs stored after cancel: %v", names)
	}
}

// SaveBlob may be handed a buffer the caller reuses at once.
func TestBlobWriterDoesNotKeepTheCallersBuffer(t *testing.T) {
	r, _ := blobTestRepo(t)
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{})
	buf := incompressible(9, 100<<10)
	want := bytes.Clone(buf)
	id := r.BlobID(buf)
	if err := w.SaveBlob(t.Context(), DataBlob, id, buf); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := r.LoadBlob(t.Context(), id)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatal(fmt.Errorf("blob read back wrong: %v", err))
	}
}
