package repository

import (
	"math"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
)

// TestMaxEntryBytesBoundsTheHeader: SizeWith's bound holds for the largest
// entry the format can carry.
func TestMaxEntryBytesBoundsTheHeader(t *testing.T) {
	var id crypto.ID
	for i := range id {
		id[i] = 0xff
	}
	e := BlobEntry{Type: TreeBlob, ID: id, Offset: math.MaxUint32, Length: math.MaxUint32, RawLength: math.MaxUint32, Method: compress.Method(255), GroupOffset: math.MaxUint32, GroupLength: math.MaxUint32}
	for _, n := range []int{1, 1000, 70_000} {
		entries := make([]BlobEntry, n)
		for i := range entries {
			entries[i] = e
		}
		hdr, err := encMode.Marshal(entries)
		if err != nil {
			t.Fatal(err)
		}
		if bound := n*maxEntryBytes + 9; len(hdr) > bound {
			t.Fatalf("%d entries encode to %d bytes, over the bound %d", n, len(hdr), bound)
		}
	}
}

// TestManySmallBlobsStayWithinThePackBuffer: a pack of tiny blobs has a
// header larger than the slack once was; the pack closes early enough that
// blobs and header fit the buffer, so no pack outgrows it.
func TestManySmallBlobsStayWithinThePackBuffer(t *testing.T) {
	r, f := blobTestRepo(t)
	var blobs [][]byte
	for i := range 12_000 {
		blobs = append(blobs, incompressible(uint64(i), 100))
	}
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{Uploads: 1})
	for _, b := range blobs {
		if err := w.SaveBlob(t.Context(), DataBlob, r.BlobID(b), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	limit := int64(r.Config().PackSize) + packSlack
	var packs int
	err := f.List(t.Context(), layout.DataPrefix, func(i storage.Info) error {
		if strings.HasPrefix(i.Name, layout.DataPrefix) {
			packs++
			if i.Size > limit {
				t.Errorf("pack %s has %d bytes, more than its %d-byte buffer", i.Name, i.Size, limit)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packs == 0 {
		t.Fatal("no pack stored")
	}
}
