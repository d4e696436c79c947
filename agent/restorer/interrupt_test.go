package restorer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage"
)

// cancelOnRead cancels the restore when it reads its nth span of file
// content: a read of a pack larger than any of the test's tree blobs,
// which the plan reads first.
type cancelOnRead struct {
	storage.Backend
	reads  atomic.Int32
	nth    int32
	cancel context.CancelFunc
}

func (c *cancelOnRead) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "data/") && length >= 256<<10 && c.reads.Add(1) == c.nth {
		c.cancel()
	}
	return c.Backend.Read(ctx, name, offset, length)
}

// An interrupted restore leaves each file either complete or absent: none
// that looks restored but is empty or cut short.
func TestAnInterruptedRestoreLeavesNoFileHalfWritten(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 7, Files: 200, MaxSize: 200 << 10, BigFiles: 2}); err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	be := &cancelOnRead{Backend: r.Backend(), nth: 1, cancel: cancel}
	r2, err := repository.Open(ctx, be, pass, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := restorer.Restore(ctx, r2, res.Point, restorer.Options{Target: dst, Workers: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("restore cancelled at its first span of content returned %v", err)
	}
	restored := treegen.Restored(dst, src)
	var complete, files int
	err = filepath.WalkDir(restored, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		rel, _ := filepath.Rel(restored, p)
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is left with %d of its %d bytes", rel, len(got), len(want))
		} else {
			complete++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total := int(res.Point.Summary.Files); files >= total {
		t.Errorf("all %d files are there after the restore was interrupted at its first span of content", files)
	}
	t.Logf("%d files complete, the rest absent", complete)
}
