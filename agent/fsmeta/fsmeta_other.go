//go:build !linux && !darwin && !windows

package fsmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// This portable fallback keeps the package building on other systems with
// what the os package offers: no ownership, identity, xattrs or holes.

// Lstat returns the portable part of path's metadata, without following
// a symlink.
func Lstat(path string) (Meta, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return Meta{}, fmt.Errorf("fsmeta: %w", err)
	}
	return FromFileInfo(fi), nil
}

// FromFileInfo returns what fs.FileInfo itself offers.
func FromFileInfo(fi fs.FileInfo) Meta { return genericMeta(fi) }

// IsRoot reports whether the effective user ID is 0.
func IsRoot() bool { return os.Geteuid() == 0 }

// Apply restores mode and modification time; symlinks are left alone
// because the os package can only follow them.
func Apply(path string, m Meta, o ApplyOptions) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("fsmeta: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	var first error
	if o.Owner {
		if err := os.Chown(path, int(m.UID), int(m.GID)); err != nil {
			first = fmt.Errorf("fsmeta: %w", err)
		}
	}
	mode := fs.FileMode(m.Mode & 0o777)
	if m.Mode&modeSetuid != 0 {
		mode |= fs.ModeSetuid
	}
	if m.Mode&modeSetgid != 0 {
		mode |= fs.ModeSetgid
	}
	if m.Mode&modeSticky != 0 {
		mode |= fs.ModeSticky
	}
	if err := os.Chmod(path, mode); err != nil && first == nil {
		first = fmt.Errorf("fsmeta: %w", err)
	}
	if !m.ModTime.IsZero() {
		if err := os.Chtimes(path, m.ModTime, m.ModTime); err != nil && first == nil {
			first = fmt.Errorf("fsmeta: %w", err)
		}
	}
	return first
}

// ReadXattrs returns nil, nil: xattrs are not supported here.
func ReadXattrs(path string) ([]Xattr, error) { return nil, nil }

// WriteXattrs reports any xattrs as unsupported, for a warning.
func WriteXattrs(path string, xs []Xattr) error {
	if len(xs) == 0 {
		return nil
	}
	return fmt.Errorf("fsmeta: %d xattrs on %s: %w", len(xs), path, errors.ErrUnsupported)
}

// DataExtents returns one extent covering the whole file.
func DataExtents(f *os.File, size int64) ([]Extent, error) {
	if size <= 0 {
		return nil, nil
	}
	return []Extent{{Offset: 0, Length: size}}, nil
}

// MakeSparse sets f's final size; file systems that support holes keep
// unwritten ranges as holes.
func MakeSparse(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("fsmeta: %w", err)
	}
	return nil
}
