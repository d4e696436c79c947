package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// trash holds the trees a run is done with (restored trees, the restore
// floor's output, an earlier repetition's dataset and repositories) until
// the run ends, so that no timed step follows a mass deletion.
//
// Why: ext4 without a journal (this bench's host; see docs/benchmarks.md)
// will not hand out an inode freed in the last 60 seconds (6 minutes once
// its inode-table block is dirty again) while an older one is free, and
// checks each such inode, from the start of the block group, on every
// file it creates. Deleting one tool's 50,000-file restore just before the
// next tool's restore put a third of that restore's samples in the check
// (recently_deleted, find_inode_bit) and made the restore floor slower at
// each repetition, a cost that falls on whoever creates files next and
// that no restore on a real machine pays. Renaming is instant and frees
// no inode; emptying the trash when nothing is timed anymore does.
type trash struct {
	dir string
	n   int
}

// shrinkMin is the size from which a retired file is truncated to free its
// blocks at once (a full run retires tens of GiB of restores); smaller
// files are left whole, as their inodes are kept anyway.
const shrinkMin = 64 << 10

// newTrash returns the trash folder of work, emptying what a run that was
// stopped before its end left there.
func newTrash(work string) (*trash, error) {
	t := &trash{dir: filepath.Join(work, "trash")}
	if ents, _ := os.ReadDir(t.dir); len(ents) > 0 {
		progress("emptying the trash a stopped run left in %s: restores in the next minutes may be slower for it (see trash in trash.go)", t.dir)
	}
	if err := t.empty(); err != nil {
		return nil, err
	}
	return t, nil
}

// retire moves path into the trash and truncates its large files, keeping
// every inode allocated. A path that does not exist is not an error.
func (t *trash) retire(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return fmt.Errorf("trash: %w", err)
	}
	t.n++
	dst := filepath.Join(t.dir, strconv.Itoa(t.n)+"-"+filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("trash: %w", err)
	}
	// Shrinking only saves space, so an entry it cannot read or truncate
	// (a read-only restored file, when not root) is left as it is.
	_ = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Size() >= shrinkMin {
			_ = os.Truncate(p, 0)
		}
		return nil
	})
	return nil
}

// empty deletes everything in the trash.
func (t *trash) empty() error {
	if err := os.RemoveAll(t.dir); err != nil {
		return fmt.Errorf("empty trash: %w", err)
	}
	return nil
}
