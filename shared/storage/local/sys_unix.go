//go:build unix

package local

import (
	"errors"
	"os"
	"syscall"
)

// syncDir makes the folder's entries durable: a new link is not on disk
// until its folder is synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems (network shares) cannot sync a folder; the data
	// file itself was synced, which is the best they offer.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// isNotDir reports a path that goes through a file as if it were a folder.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }
