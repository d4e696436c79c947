//go:build !windows

package restorer

import (
	"os"
	"syscall"
)

// noFollow keeps a file open from following a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW

// preCreate: files are created ahead of the fetch, which mostly writes them
// through the descriptor kept open since; one closed meanwhile (beyond
// maxOpenAhead) is reopened, and O_NOFOLLOW and an identity check keep the
// reopening safe.
const preCreate = true

// fileID is a file's device and inode, read from the stat the caller has
// (fsmeta.FromFileInfo would also look up owner names, twice per file).
func fileID(fi os.FileInfo) [2]uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	}
	return [2]uint64{}
}

// openFile is os.OpenFile without the poller: os.OpenFile tries to
// register every file with it and sets non-blocking mode on and off, five
// system calls per file that a regular file never needs, and as many as
// the restore's own calls per small file.
func openFile(path string, flags int, perm uint32) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, flags|syscall.O_CLOEXEC, perm)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
