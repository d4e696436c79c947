package fsmeta

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoAttr is what getxattr returns for a missing attribute.
const errNoAttr = unix.ENOATTR

// fillStat copies the fields whose names and widths differ between unixes.
// Darwin's dev_t is a signed 32-bit value; going through uint32 keeps
// large device numbers from sign-extending.
func fillStat(m *Meta, st *syscall.Stat_t) {
	m.Dev = uint64(uint32(st.Dev))
	m.Rdev = uint64(uint32(st.Rdev))
	m.ModTime = timespec(st.Mtimespec)
	m.ChangeTime = timespec(st.Ctimespec)
	m.BirthTime = timespec(st.Birthtimespec)
}

// chmodNoFollow uses lchmod semantics: darwin symlinks do have their own
// mode, and it must never reach the target.
func chmodNoFollow(path string, mode uint32, isLink bool) error {
	if isLink {
		return unix.Fchmodat(unix.AT_FDCWD, path, mode, unix.AT_SYMLINK_NOFOLLOW)
	}
	return unix.Chmod(path, mode)
}
