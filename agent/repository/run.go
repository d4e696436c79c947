package repository

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
)

// spanBuffers hold the sealed bytes of a run while its blobs are opened;
// they are dead once opened, so they are reused rather than allocated and
// zeroed for every run.
var spanBuffers = sync.Pool{New: func() any { return new([]byte) }}

// LoadRun reads blobs stored one after another in a pack (entries sorted
// by offset) with one request, and hands each one's plaintext, or why it
// could not be read, to fn in order. It is for readers that keep what
// they read, such as a mount's cache: unlike LoadBlob, a blob stored
// uncompressed is not copied again after decryption.
func (r *Repository) LoadRun(ctx context.Context, pack crypto.ID, entries []BlobEntry, fn func(e BlobEntry, plain []byte, err error)) {
	if len(entries) == 0 {
		return
	}
	start := int64(entries[0].Offset)
	last := entries[len(entries)-1]
	n := int64(last.Offset) + int64(last.Length) - start
	bp := spanBuffers.Get().(*[]byte)
	defer spanBuffers.Put(bp)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	span := (*bp)[:n]
	err := r.readInto(ctx, PackName(pack), start, span)
	var g GroupBuf
	for _, e := range entries {
		if err != nil {
			fn(e, nil, err)
			continue
		}
		off := int64(e.Offset) - start
		if off < 0 || off+int64(e.Length) > n {
			fn(e, nil, fmt.Errorf("%w: blob %s is not where the run says", ErrDamaged, e.ID))
			continue
		}
		plain, err := r.openKept(&g, e, span[off:off+int64(e.Length)])
		fn(e, plain, err)
	}
}

func (r *Repository) readInto(ctx context.Context, name string, off int64, buf []byte) error {
	rc, err := r.be.Read(ctx, name, off, int64(len(buf)))
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, buf); err != nil {
		return fmt.Errorf("read %s [%d, +%d): %w", name, off, len(buf), err)
	}
	return nil
}

// openKept is OpenBlob returning the decrypted bytes themselves for a blob
// stored uncompressed, with the same checks. A group member is opened
// through g and copied: kept, it must not hold on to its whole group.
func (r *Repository) openKept(g *GroupBuf, e BlobEntry, sealed []byte) ([]byte, error) {
	if e.Grouped() {
		plain, err := r.OpenMember(g, e, sealed)
		if err != nil {
			return nil, err
		}
		return bytes.Clone(plain), nil
	}
	if e.Method != compress.None {
		return r.OpenBlob(e, sealed)
	}
	plain, err := r.key.Open(nil, sealed, blobAD(e.Type, e.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: %s blob %s: %v", ErrDamaged, e.Type, e.ID, err)
	}
	if len(plain) != int(e.RawLength) || r.key.ChunkID(plain) != e.ID {
		return nil, fmt.Errorf("%w: %s blob %s does not match its ID", ErrDamaged, e.Type, e.ID)
	}
	return plain, nil
}
