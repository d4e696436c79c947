package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Spool starts an object written to a temp file in the prefix's folder
// (so committing it is a hard link on the same file system). Temp files
// are never listed; one left by a crash is only disk space.
func (b *Backend) Spool(ctx context.Context, prefix string) (storage.Spool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := filepath.Join(b.dir, filepath.FromSlash(prefix))
	if _, err := b.mkdirs(dir); err != nil {
		return nil, fmt.Errorf("spool below %s: %w", prefix, err)
	}
	f, direct, err := createDirect(dir)
	if err != nil {
		return nil, fmt.Errorf("spool below %s: %w", prefix, mapErr(err))
	}
	if direct {
		return &spool{b: b, f: f, direct: newDirectWriter(f)}, nil
	}
	if f, err = os.CreateTemp(dir, tmpPrefix+"*"); err != nil {
		return nil, fmt.Errorf("spool below %s: %w", prefix, mapErr(err))
	}
	return &spool{b: b, f: f}, nil
}

type spool struct {
	b      *Backend
	f      *os.File
	direct *directWriter // nil when f is written through the cache
	closed bool
	done   bool
}

func (s *spool) Write(p []byte) (n int, err error) {
	if s.direct != nil {
		n, err = s.direct.Write(p)
	} else {
		n, err = s.f.Write(p)
	}
	if err != nil {
		err = mapErr(err)
	}
	return n, err
}

func (s *spool) Abort() {
	if !s.done {
		s.done = true
		if !s.closed {
			s.f.Close()
		}
		if s.direct != nil {
			s.direct.release()
		}
		os.Remove(s.f.Name())
	}
}

// Commit syncs the temp file and links it under name, as Create does.
func (s *spool) Commit(ctx context.Context, name string) error {
	if s.done {
		return errors.New("spool already committed or aborted")
	}
	defer s.Abort() // the temp name is never wanted afterwards
	final, err := s.b.path(name)
	if err != nil {
		return err
	}
	if s.direct != nil {
		err = s.direct.finish()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.closed = true // linked closed, as Create does: Windows may refuse an open file
	if err != nil {
		return fmt.Errorf("create %s: %w", name, mapErr(err))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	newDirs, err := s.b.mkdirs(filepath.Dir(final))
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return s.b.linkInPlace(name, s.f.Name(), final, newDirs)
}

// linkInPlace gives the synced temp file its final name (failing if the
// name is taken) and syncs the folders that make the link durable: the
// one holding it and those just created for it (newDirs, from mkdirs).
func (b *Backend) linkInPlace(name, tmp, final string, newDirs []string) error {
	parent := filepath.Dir(final)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
				return fmt.Errorf("create %s: a folder of that name holds other objects: %w", name, err)
			}
			return fmt.Errorf("create %s: %w", name, storage.ErrExists)
		}
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("create %s: %w: %w; the folder must be writable and on a file system with hard links (not FAT)", name, storage.ErrPermission, err)
		}
		return fmt.Errorf("create %s: %w", name, mapErr(err))
	}
	for _, d := range append([]string{parent}, newDirs...) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("create %s: sync folder %s: %w", name, d, mapErr(err))
		}
	}
	return nil
}

// SweepTemps removes the temp files (of Create, Replace and spools) last
// written before cutoff: debris of a write a crash interrupted. A write in
// progress rewrites its temp file continuously, so a cutoff hours back
// never reaches one.
func (b *Backend) SweepTemps(ctx context.Context, cutoff time.Time) (int, error) {
	removed := 0
	err := filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove leftover temp file %s: %w", p, mapErr(err))
		}
		removed++
		return nil
	})
	return removed, err
}
