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

// TestOpenBlobInPlace opens blobs as a restore worker does, each in the
// storage of the span it was read into, with one buffer for decompressed
// bytes: each comes out whole, the buffer keeps its largest size however
// the sizes alternate, and damage is refused.
func TestOpenBlobInPlace(t *testing.T) {
	r, _ := blobTestRepo(t)
	text := bytes.Repeat([]byte("a line of text that compresses well\n"), 3000)
	blobs := [][]byte{text, incompressible(1, 70_000), text[:500], incompressible(2, 10), text[:40_000], text}
	var entries []BlobEntry
	var seals [][]byte
	for _, b := range blobs {
		id := r.BlobID(b)
		data, m, _ := r.SealBlob(nil, DataBlob, id, b, nil)
		entries = append(entries, BlobEntry{Type: DataBlob, ID: id, Length: uint32(len(data)), RawLength: uint32(len(b)), Method: m})
		seals = append(seals, data)
	}
	if entries[0].Method != compress.Zstd || entries[1].Method != compress.None {
		t.Fatalf("methods %v, %v: want one compressed and one stored", entries[0].Method, entries[1].Method)
	}
	var plain []byte
	for round := range 2 {
		for i := range blobs {
			span := bytes.Clone(seals[i])
			out, p, err := r.OpenBlobInPlace(plain, entries[i], span)
			if err != nil {
				t.Fatalf("round %d blob %d: %v", round, i, err)
			}
			if !bytes.Equal(out, blobs[i]) {
				t.Fatalf("round %d blob %d: content differs", round, i)
			}
			if entries[i].Method == compress.None && &out[0] != &span[0] {
				t.Errorf("round %d blob %d: a stored blob was not opened in its own storage", round, i)
			}
			if cap(p) < cap(plain) {
				t.Fatalf("round %d blob %d: the buffer shrank from %d to %d bytes", round, i, cap(plain), cap(p))
			}
			plain = p
		}
	}
	bad := bytes.Clone(seals[0])
	bad[len(bad)/2] ^= 1
	if _, _, err := r.OpenBlobInPlace(plain, entries[0], bad); !errors.Is(err, ErrDamaged) {
		t.Fatalf("tampered blob: err = %v, want ErrDamaged", err)
	}
	wrongLen := entries[1]
	wrongLen.RawLength--
	if _, _, err := r.OpenBlobInPlace(plain, wrongLen, bytes.Clone(seals[1])); !errors.Is(err, ErrDamaged) {
		t.Fatalf("stored blob longer than the index says: err = %v, want ErrDamaged", err)
	}
	wrongID := entries[2]
	wrongID.ID = entries[4].ID
	if _, _, err := r.OpenBlobInPlace(plain, wrongID, bytes.Clone(seals[2])); !errors.Is(err, ErrDamaged) {
		t.Fatalf("blob under another blob's ID: err = %v, want ErrDamaged", err)
	}
}
