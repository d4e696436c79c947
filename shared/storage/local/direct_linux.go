package local

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// createDirect creates a temp file in dir opened for direct writes, or
// returns ok false where the file system refuses them (tmpfs, some
// network file systems), for the caller to write through the cache.
func createDirect(dir string) (f *os.File, ok bool, err error) {
	var r [8]byte
	for range 16 {
		rand.Read(r[:])
		name := filepath.Join(dir, tmpPrefix+hex.EncodeToString(r[:]))
		fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_DIRECT, 0o600)
		switch {
		case errors.Is(err, unix.EEXIST):
			continue
		case errors.Is(err, unix.EINVAL):
			return nil, false, nil
		case err != nil:
			return nil, false, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), true, nil
	}
	return nil, false, nil
}

// dropDirect turns f's direct writes off.
func dropDirect(f *os.File) error {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, fl&^unix.O_DIRECT)
	return err
}

// openDirect opens path for direct reads, or returns nil where the file
// system refuses them, for the caller to read through the cache.
func openDirect(path string) *os.File {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}
