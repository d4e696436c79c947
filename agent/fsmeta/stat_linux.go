package fsmeta

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoAttr is what lgetxattr returns for a missing attribute.
const errNoAttr = unix.ENODATA

// fillStat copies the fields whose names and widths differ between unixes.
// Linux's stat has no birth time (only statx does, at the cost of another
// call), so BirthTime stays zero.
func fillStat(m *Meta, st *syscall.Stat_t) {
	m.Dev = uint64(st.Dev)
	m.Rdev = uint64(st.Rdev)
	m.ModTime = timespec(st.Mtim)
	m.ChangeTime = timespec(st.Ctim)
}

// chmodNoFollow skips symlinks: Linux ignores a link's own mode, and chmod
// on the path would change the target instead.
func chmodNoFollow(path string, mode uint32, isLink bool) error {
	if isLink {
		return nil
	}
	return unix.Chmod(path, mode)
}
