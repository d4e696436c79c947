package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Replace stores data under name, atomically replacing the object of that
// name, which must exist. Only trusted maintenance uses it: prune rewrites
// a point's pack reference list (refs/<point>) after repacking, and the
// point must never be seen without a list. The data goes to a synced temp
// file that is renamed over the old one, so a crash leaves the old object
// or the new one, never neither.
func (b *Backend) Replace(ctx context.Context, name string, data []byte) (err error) {
	final, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := os.Lstat(final); err != nil {
		return fmt.Errorf("replace %s: %w", name, mapErr(err))
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("replace %s: %w (a folder or special file has that name)", name, storage.ErrNotFound)
	}
	parent := filepath.Dir(final)
	tmp, err := os.CreateTemp(parent, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", name, mapErr(err))
	}
	defer func() {
		if err != nil {
			if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temp file: %w", rerr))
			}
		}
	}()
	if err := writeSync(ctx, tmp, data); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("replace %s: %w", name, mapErr(err))
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("replace %s: sync folder %s: %w", name, parent, mapErr(err))
	}
	return nil
}
