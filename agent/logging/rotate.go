package logging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// RotatingFile is an io.WriteCloser onto Dir/coffer.log that renames the
// file to coffer.log.1 (and .1 to .2, …) before a write would take it past
// MaxBytes, keeping at most MaxFiles files in all. Each Write lands whole in
// one file, so a log record is never split across files or interleaved with
// another writer's.
type RotatingFile struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	maxFiles int
	f        *os.File
	size     int64
}

// The log names files an admin backed up, so only the owner (root, SYSTEM)
// may read it.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// OpenRotatingFile creates dir if needed and opens dir/coffer.log for
// appending. maxFiles counts coffer.log itself, so 1 means no history.
func OpenRotatingFile(dir string, maxBytes int64, maxFiles int) (*RotatingFile, error) {
	if maxBytes <= 0 || maxFiles <= 0 {
		return nil, fmt.Errorf("logging: MaxBytes (%d) and MaxFiles (%d) must be positive", maxBytes, maxFiles)
	}
	// Only a folder we create gets 0700: an existing one (say /var/log) is
	// the admin's and keeps its permissions.
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("logging: creating the log folder: %w; check that %s is writable or choose another folder", err, dir)
	}
	w := &RotatingFile{path: filepath.Join(dir, FileName), maxBytes: maxBytes, maxFiles: maxFiles}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *RotatingFile) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return fmt.Errorf("logging: opening the log file: %w; check the permissions of %s", err, filepath.Dir(w.path))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logging: reading the log file's size: %w", err)
	}
	// A file left by an older version may be readable by all; tighten it.
	if fi.Mode().Perm() != fileMode {
		_ = f.Chmod(fileMode)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past the limit.
// A p larger than the limit still goes whole into a fresh file.
func (w *RotatingFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	var rotErr error
	if w.size > 0 && w.size+int64(len(p)) > w.maxBytes {
		rotErr = w.rotate()
		if w.f == nil {
			return 0, rotErr
		}
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("logging: writing %s: %w", w.path, err)
	}
	// A failed rotation still logged the record (to the old file), but say so.
	return n, rotErr
}

// rotate shifts coffer.log.i to .i+1, dropping the oldest, and starts an
// empty coffer.log. On failure it keeps appending to the current file rather
// than lose records.
func (w *RotatingFile) rotate() error {
	// Windows can't rename an open file. A failed close still frees the
	// handle, so carry on and report it.
	closeErr := w.f.Close()
	w.f = nil
	name := func(i int) string { return w.path + "." + strconv.Itoa(i) }
	err := removeIfExists(name(w.maxFiles - 1))
	for i := w.maxFiles - 2; i >= 1 && err == nil; i-- {
		err = renameIfExists(name(i), name(i+1))
	}
	if err == nil {
		if w.maxFiles > 1 {
			err = os.Rename(w.path, name(1))
		} else {
			err = os.Remove(w.path)
		}
	}
	err = errors.Join(closeErr, err, w.open())
	if err != nil {
		return fmt.Errorf("logging: rotating %s: %w; free space or fix the folder's permissions", w.path, err)
	}
	return nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func renameIfExists(from, to string) error {
	if err := os.Rename(from, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close closes the file; later writes fail with os.ErrClosed.
func (w *RotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
