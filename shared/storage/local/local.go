// Package local keeps a repository in a folder: one file per object, at the
// object's slash-separated name below the folder.
//
// Create is create-only and atomic without locks: the data goes to a temp
// file beside the final one, is synced, then hard-linked to the final name.
// A link never replaces an existing file, so of two racing writers exactly
// one wins, and a reader never sees a partial object. A crash leaves at most
// temp files, which List skips.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/shared/storage"
)

// tmpPrefix starts the names of temp files; no object name may have a
// segment starting with it, so List can skip crash debris.
const tmpPrefix = ".tmp-"

// Backend is a repository in a folder.
type Backend struct {
	dir string // absolute
}

var _ storage.Backend = (*Backend)(nil)

// New opens the repository in dir, creating the folder if it is missing.
func New(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("local repository: no folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local repository %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("local repository %s is a file, not a folder; give a folder path", abs)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("create repository folder %s: %w", abs, mapErr(err))
		}
	case err != nil:
		return nil, fmt.Errorf("local repository %s: %w", abs, mapErr(err))
	}
	return &Backend{dir: abs}, nil
}

// Location is the folder's absolute path.
func (b *Backend) Location() string { return b.dir }

// path checks name and returns its file path.
func (b *Backend) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(b.dir, filepath.FromSlash(name)), nil
}

func checkName(name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, tmpPrefix) {
			return fmt.Errorf("%w: %q: segments starting with %q are reserved for temp files", storage.ErrInvalidName, name, tmpPrefix)
		}
	}
	return nil
}

// mapErr puts OS errors in the terms of the storage package, keeping the
// cause for messages and for retry decisions.
func mapErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), isNotDir(err):
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w; check the folder's owner and permissions", storage.ErrPermission, err)
	}
	return err
}

// Create stores data under name unless the name is taken.
func (b *Backend) Create(ctx context.Context, name string, data []byte) (err error) {
	final, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := filepath.Dir(final)
	newDirs, err := b.mkdirs(parent)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(parent, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create %s: %w", name, mapErr(err))
	}
	defer func() {
		// The temp file is never wanted afterwards: on success the final
		// name links to the same data.
		if rerr := os.Remove(tmp.Name()); rerr != nil && err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("create %s: remove temp file: %w", name, rerr)
		}
	}()
	if err := writeSync(ctx, tmp, data); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	// Last chance to give up before the object becomes visible.
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.linkInPlace(name, tmp.Name(), final, newDirs)
}

// writeSync writes data in pieces, checking ctx between them, and syncs.
func writeSync(ctx context.Context, f *os.File, data []byte) error {
	const piece = 4 << 20
	for len(data) > 0 {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(len(data), piece)
		if _, err := f.Write(data[:n]); err != nil {
			f.Close()
			return mapErr(err)
		}
		data = data[n:]
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return mapErr(err)
	}
	return mapErr(f.Close())
}

// mkdirs creates dir and its missing parents below the repository folder and
// returns the parents of the folders it created, deepest first, which must be
// synced for the new folders to survive a crash.
func (b *Backend) mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; d != b.dir && filepath.Dir(d) != d; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if isNotDir(err) || errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("an object's name is a prefix of this one; a folder repository cannot hold both: %w", err)
		}
		return nil, mapErr(err)
	}
	parents := make([]string, 0, len(missing))
	for _, d := range missing {
		parents = append(parents, filepath.Dir(d))
	}
	return parents, nil
}

// Read opens length bytes of name from offset.
func (b *Backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, mapErr(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", name, mapErr(err))
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("read %s: %w (a folder or special file has that name)", name, storage.ErrNotFound)
	}
	if offset > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("read %s: offset %d is beyond the object's end (%d bytes)", name, offset, fi.Size())
	}
	if length < 0 || offset+length > fi.Size() {
		length = fi.Size() - offset
	}
	if length == 0 {
		f.Close()
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if length >= directReadMin {
		if df := openDirect(p); df != nil {
			f.Close()
			return newDirectSection(df, offset, length), nil
		}
	}
	return &section{SectionReader: io.NewSectionReader(f, offset, length), f: f}, nil
}

type section struct {
	*io.SectionReader
	f *os.File
}

func (s *section) Close() error { return s.f.Close() }

// Stat describes name.
func (b *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	p, err := b.path(name)
	if err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Info{}, fmt.Errorf("stat %s: %w", name, mapErr(err))
	}
	if !fi.Mode().IsRegular() {
		return storage.Info{}, fmt.Errorf("stat %s: %w (a folder or special file has that name)", name, storage.ErrNotFound)
	}
	return storage.Info{Name: name, Size: fi.Size()}, nil
}

// listWorkers is how many folders List reads at once. A repository's
// packs sit in up to 256 folders, listed whenever a repository is opened:
// one at a time on a cold disk, the listing and each pack's lstat were a
// seek apiece, 40 ms before a one-file restore could start.
const listWorkers = 8

// List calls fn for every object whose name starts with prefix. Folders
// are read in parallel; fn is called from one goroutine at a time.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Walk only the deepest folder the prefix names whole.
	root := b.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		root = filepath.Join(b.dir, filepath.FromSlash(prefix[:i]))
	}
	l := lister{b: b, prefix: prefix, fn: fn}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listWorkers)
	l.ctx, l.g = gctx, g
	g.Go(func() error { return l.dir(root, true) })
	err := g.Wait()
	if l.fnErr != nil {
		// Hand back fn's own error, unwrapped, as the caller gave it.
		return l.fnErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("list %q in %s: %w", prefix, b.dir, err)
	}
	return nil
}

// lister is one List call's walk.
type lister struct {
	b      *Backend
	prefix string
	ctx    context.Context
	g      *errgroup.Group

	mu    sync.Mutex // serialises fn
	fn    func(storage.Info) error
	fnErr error // fn's error; no call after it
}

// dir lists one folder, handing its subfolders to other workers when one
// is free, and its objects to fn.
func (l *lister) dir(p string, root bool) error {
	des, err := os.ReadDir(p)
	if err != nil {
		switch {
		case root && (errors.Is(err, fs.ErrNotExist) || isNotDir(err)):
			return nil // nothing under that prefix
		case !root && errors.Is(err, fs.ErrNotExist):
			return nil // deleted since its parent was read
		}
		return mapErr(err)
	}
	for _, d := range des {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			continue
		}
		sub := filepath.Join(p, d.Name())
		rel, err := filepath.Rel(l.b.dir, sub)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			// Descend only where names may still start with prefix.
			if !strings.HasPrefix(name+"/", l.prefix) && !strings.HasPrefix(l.prefix, name+"/") {
				continue
			}
			if !l.g.TryGo(func() error { return l.dir(sub, false) }) {
				if err := l.dir(sub, false); err != nil {
					return err
				}
			}
			continue
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(name, l.prefix) {
			continue
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the folder was read
		}
		if err != nil {
			return mapErr(err)
		}
		if err := l.call(storage.Info{Name: name, Size: fi.Size()}); err != nil {
			return err
		}
	}
	return nil
}

// call hands one object to fn, unless fn has failed already.
func (l *lister) call(i storage.Info) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fnErr != nil {
		return l.fnErr
	}
	if err := l.fn(i); err != nil {
		l.fnErr = err
		return err
	}
	return nil
}

// Delete removes name.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// os.Remove would also remove an empty folder of that name.
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, mapErr(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("delete %s: %w (a folder or special file has that name)", name, storage.ErrNotFound)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("delete %s: %w", name, mapErr(err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete %s: sync folder: %w", name, mapErr(err))
	}
	return nil
}
