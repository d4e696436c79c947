package repository

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
)

// TestOpenBlobIntoReusesBuffers opens compressed and stored blobs of
// different sizes through the same two buffers, as a restore worker does:
// each comes out whole, and once the buffers have grown, opening allocates
// nothing.
func TestOpenBlobIntoReusesBuffers(t *testing.T) {
	r, _ := blobTestRepo(t)
	text := bytes.Repeat([]byte("a line of text that compresses well\n"), 3000)
	blobs := [][]byte{text, incompressible(1, 70_000), text[:500], incompressible(2, 10), text[:40_000]}
	type sealed struct {
		e    BlobEntry
		data []byte
	}
	var all []sealed
	for _, b := range blobs {
		id := r.BlobID(b)
		data, m, _ := r.SealBlob(nil, DataBlob, id, b, nil)
		all = append(all, sealed{BlobEntry{Type: DataBlob, ID: id, Length: uint32(len(data)), RawLength: uint32(len(b)), Method: m}, data})
	}
	if all[0].e.Method != compress.Zstd || all[1].e.Method != compress.None {
		t.Fatalf("methods %v, %v: want one compressed and one stored", all[0].e.Method, all[1].e.Method)
	}
	var plain, scratch []byte
	for round := range 2 {
		for i, s := range all {
			out, sc, err := r.OpenBlobInto(plain, scratch, s.e, s.data)
			if err != nil {
				t.Fatalf("round %d blob %d: %v", round, i, err)
			}
			if !bytes.Equal(out, blobs[i]) {
				t.Fatalf("round %d blob %d: content differs", round, i)
			}
			if cap(out) > cap(plain) {
				plain = out
			}
			scratch = sc
		}
	}
	// Only small bookkeeping (the blob's additional data) may be allocated,
	// never a blob-sized buffer.
	if !raceEnabled { // the race detector allocates on its own
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 20
		for range runs {
			for _, s := range all {
				out, sc, err := r.OpenBlobInto(plain, scratch, s.e, s.data)
				if err != nil {
					t.Fatal(err)
				}
				_, scratch = out, sc
			}
		}
		runtime.ReadMemStats(&after)
		if perBlob := (after.TotalAlloc - before.TotalAlloc) / runs / uint64(len(all)); perBlob > 256 {
			t.Errorf("opening a blob into grown buffers allocated %d bytes", perBlob)
		}
	}

	// Damage is still refused, into reused buffers too.
	bad := bytes.Clone(all[0].data)
	bad[len(bad)/2] ^= 1
	if _, _, err := r.OpenBlobInto(plain, scratch, all[0].e, bad); !errors.Is(err, ErrDamaged) {
		t.Fatalf("tampered blob: err = %v, want ErrDamaged", err)
	}
	wrongLen := all[1].e
	wrongLen.RawLength--
	if _, _, err := r.OpenBlobInto(plain, scratch, wrongLen, all[1].data); !errors.Is(err, ErrDamaged) {
		t.Fatalf("stored blob longer than the index says: err = %v, want ErrDamaged", err)
	}
}
