package mount

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// blobs is an in-memory BlobLoader that counts loads and can hold them
// back until released.
type blobs struct {
	data  map[crypto.ID][]byte
	loads atomic.Int64
	gate  chan struct{} // nil: loads proceed at once
}

func (b *blobs) LoadBlob(ctx context.Context, id crypto.ID) ([]byte, error) {
	b.loads.Add(1)
	if b.gate != nil {
		<-b.gate
	}
	d, ok := b.data[id]
	if !ok {
		return nil, fmt.Errorf("no blob %s", id)
	}
	return bytes.Clone(d), nil
}

// file makes a file of the given chunk sizes (negative: a hole) and
// returns its chunk list, its bytes and the loader holding its chunks.
func file(rng *rand.Rand, sizes ...int) ([]tree.Ref, []byte, *blobs) {
	b := &blobs{data: map[crypto.ID][]byte{}}
	var refs []tree.Ref
	var all []byte
	for i, s := range sizes {
		if s < 0 {
			refs = append(refs, tree.Ref{Size: int64(-s), Hole: true})
			all = append(all, make([]byte, -s)...)
			continue
		}
		d := make([]byte, s)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		var id crypto.ID
		id[0], id[1] = byte(i), byte(i>>8)
		b.data[id] = d
		refs = append(refs, tree.Ref{ID: id, Size: int64(s)})
		all = append(all, d...)
	}
	return refs, all, b
}

func TestContentReadsAnyExtentAcrossChunksAndHoles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	refs, want, src := file(rng, 1000, 1, -5000, 70000, 3, -1, 4096, 9999)
	c := newContent(refs)
	bc := newBlobCache(src, 1<<20, 2)
	if c.size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", c.size(), len(want))
	}
	for range 2000 {
		off := rng.Int64N(int64(len(want)) + 100)
		buf := make([]byte, rng.IntN(20000))
		n, _, err := c.readAt(t.Context(), bc, buf, off)
		if err != nil {
			t.Fatal(err)
		}
		exp := want[min(off, int64(len(want))):min(off+int64(len(buf)), int64(len(want)))]
		if !bytes.Equal(buf[:n], exp) {
			t.Fatalf("read %d bytes at %d: got %d bytes that differ from the file's", len(buf), off, n)
		}
	}
}

func TestCacheStaysWithinItsBoundAndEvictsTheLeastRecent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	refs, _, src := file(rng, 100_000, 100_000, 100_000, 100_000, 100_000)
	bc := newBlobCache(src, 450_000, 1)
	for _, r := range refs {
		bc.get(t.Context(), r.ID)
		if bc.bytes() > 450_000 {
			t.Fatalf("cache holds %d bytes, bound 450000", bc.bytes())
		}
	}
	// The first chunk was the least recently used, so it went first.
	before := src.loads.Load()
	bc.get(t.Context(), refs[4].ID)
	if src.loads.Load() != before {
		t.Fatal("the most recent chunk was evicted")
	}
	bc.get(t.Context(), refs[0].ID)
	if src.loads.Load() != before+1 {
		t.Fatal("the least recent chunk was kept past the bound")
	}
}

func TestConcurrentReadersOfAChunkShareOneLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	refs, want, src := file(rng, 50_000)
	src.gate = make(chan struct{})
	bc := newBlobCache(src, 1<<20, 1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			got, err := bc.get(context.Background(), refs[0].ID)
			if err == nil && !bytes.Equal(got, want) {
				err = fmt.Errorf("wrong bytes")
			}
			errs <- err
		})
	}
	bc.warm(refs[0].ID)
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("8 readers and a prefetch loaded the chunk %d times, want once", n)
	}
}

func TestAFailedLoadIsNotCached(t *testing.T) {
	bc := newBlobCache(&blobs{data: map[crypto.ID][]byte{}}, 1<<20, 1)
	var id crypto.ID
	if _, err := bc.get(t.Context(), id); err == nil {
		t.Fatal("a missing chunk read as present")
	}
	if bc.bytes() != 0 {
		t.Fatal("a failed load took cache space")
	}
}
