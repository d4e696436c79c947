package storage

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidName: the name cannot be an object name in every backend.
var ErrInvalidName = errors.New("invalid object name")

// CheckName reports whether name is an object name every backend stores
// under the same path: slash-separated, relative, with no empty, "." or ".."
// segment, no backslash, colon or control character. The rules are the
// intersection of what a folder (on Windows too) and a container accept, so
// a repository copied from one to the other keeps every object.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the name is empty", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	if len(name) > 1024 {
		// Azure's limit for a blob name.
		return fmt.Errorf("%w: %q is longer than 1024 bytes", ErrInvalidName, name[:64]+"…")
	}
	for _, r := range name {
		switch {
		case r == '\\':
			return fmt.Errorf("%w: %q contains a backslash; use slashes between segments", ErrInvalidName, name)
		case r == ':':
			// A drive letter or an NTFS stream on Windows.
			return fmt.Errorf("%w: %q contains a colon", ErrInvalidName, name)
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("%w: %q contains a control character", ErrInvalidName, name)
		}
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: %q is absolute; names are relative to the repository", ErrInvalidName, name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %q has an empty segment (a doubled or trailing slash)", ErrInvalidName, name)
		case ".", "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidName, name, seg)
		}
	}
	return nil
}

// CheckPrefix reports whether prefix can start an object name: empty, or a
// name possibly ending in a slash or in part of a segment.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := CheckName(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("list prefix: %w", err)
	}
	return nil
}
