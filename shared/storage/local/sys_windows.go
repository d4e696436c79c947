//go:build windows

package local

import (
	"errors"
	"syscall"
)

// syncDir does nothing: Windows cannot open a folder for syncing, and NTFS
// journals its metadata, folder entries included.
func syncDir(string) error { return nil }

// errDirectory is ERROR_DIRECTORY, "the directory name is invalid", which
// Windows reports for a path that goes through a file.
const errDirectory = syscall.Errno(267)

// isNotDir reports a path that goes through a file as if it were a folder.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || errors.Is(err, errDirectory)
}
