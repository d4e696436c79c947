package archiver_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
)

// A storage failure fails the backup with that failure as its cause. It
// must not read as a cancellation: the vault would record the job as
// cancelled and raise no alert (issue 17, bug 1).
func TestStorageFailureFailsTheBackupWithItsCause(t *testing.T) {
	for _, c := range []struct {
		name   string
		prefix string
		opts   archiver.Options
	}{
		{"pack upload", layout.DataPrefix, archiver.Options{}},
		{"pack upload, one at a time", layout.DataPrefix, archiver.Options{Uploads: 1, Workers: 1, Readers: 1}},
		{"index save between packs", layout.IndexPrefix, archiver.Options{IndexEvery: 1}},
		{"index save at the end", layout.IndexPrefix, archiver.Options{IndexEvery: 1000}},
		{"point save", layout.PointsPrefix, archiver.Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := sourceTree(t, 16)
			f := faulty.New(mem.New(t.Name()))
			r := newRepoOn(t, f)
			f.Fail(faulty.Create, faulty.Prefix(c.prefix))

			res, err := archiver.Backup(t.Context(), r, []string{src}, c.opts)
			if err == nil {
				t.Fatalf("the backup succeeded (point %s) although every write under %s failed", res.Point.ID, c.prefix)
			}
			if !errors.Is(err, faulty.ErrInjected) {
				t.Fatalf("error %q does not carry the storage failure", err)
			}
			if errors.Is(err, context.Canceled) || strings.Contains(err.Error(), context.Canceled.Error()) {
				t.Fatalf("error %q reads as a cancellation; nobody cancelled the backup", err)
			}
			if points := objects(t, f.Unwrap(), layout.PointsPrefix); len(points) > 0 {
				t.Fatalf("a failed backup left points %v", points)
			}
		})
	}
}

// Cancelling is still reported as a cancellation, before and during the
// backup.
func TestCancelledBackupSaysSo(t *testing.T) {
	src := sourceTree(t, 17)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := archiver.Backup(ctx, newRepo(t), []string{src}, archiver.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with a cancelled context: %v, want context.Canceled", err)
	}

	// Cancel from inside the first pack upload, while the pipeline is full.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	be := &onCreate{Backend: mem.New(t.Name()), prefix: layout.DataPrefix}
	r := newRepoOn(t, be)
	be.fn = cancel
	if _, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup cancelled while uploading: %v, want context.Canceled", err)
	}
}
