package storage_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// sizedBackend's objects say their size when read, truthfully or not:
// ReadAll must return exactly the object's bytes either way.
type sizedBackend struct {
	storage.Backend
	claim int64
}

type claimed struct {
	io.ReadCloser
	n int64
}

func (c claimed) Size() int64 { return c.n }

func (b sizedBackend) Read(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	rc, err := b.Backend.Read(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	return claimed{rc, b.claim}, nil
}

func TestReadAllReadsTheWholeObjectWhateverSizeIsClaimed(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789"), 100_000)
	for _, claim := range []int64{int64(len(want)), 1, int64(len(want)) - 1, int64(len(want)) * 3} {
		b := sizedBackend{Backend: mem.New("sized"), claim: claim}
		if err := b.Create(t.Context(), "obj", want); err != nil {
			t.Fatal(err)
		}
		got, err := storage.ReadAll(t.Context(), b, "obj")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("claimed %d bytes: read %d (%v), want %d", claim, len(got), err, len(want))
		}
	}
}
