package archiver

import (
	"context"
	"io/fs"
	"os"
)

// scan walks the chosen paths ahead of the backup, counting their files
// and bytes into Progress.TotalFiles and TotalBytes, with the same
// exclusions as the walk. The walk itself cannot run ahead: it hands files
// to the readers through a short queue, so its counts grow only as files
// are opened and a progress bar drawn from them sits near 100% all along.
// A scan of metadata alone is quick next to reading content, so totals and
// an ETA are known early, as restic's scanner gives them.
func (a *archiver) scan(ctx context.Context, roots []string) {
	for _, root := range roots {
		fi, err := os.Lstat(root)
		if err != nil {
			continue // the walk warns of it
		}
		if fi.IsDir() {
			a.scanDir(ctx, root)
		} else if fi.Mode().IsRegular() {
			a.prog.TotalFiles.Add(1)
			a.prog.TotalBytes.Add(fi.Size())
		}
		if ctx.Err() != nil {
			return
		}
	}
	a.prog.ScanDone.Store(true)
}

func (a *archiver) scanDir(ctx context.Context, dir string) {
	if ctx.Err() != nil {
		return
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return // the walk warns of it
	}
	for _, de := range des {
		path := joinPath(dir, de.Name())
		if a.skipEntry(path, de) {
			continue
		}
		switch {
		case de.IsDir():
			a.scanDir(ctx, path)
		case de.Type().IsRegular():
			if fi, err := de.Info(); err == nil {
				a.prog.TotalFiles.Add(1)
				a.prog.TotalBytes.Add(fi.Size())
			}
		case de.Type()&fs.ModeSymlink != 0:
			// Stored as links; their targets are not read.
		}
		if ctx.Err() != nil {
			return
		}
	}
}
