package fsmeta

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ApplyFile restores m onto a regular file the caller holds open, after its
// content has been written, in Apply's order: owner, mode, then times. It
// reports ok=false, having done nothing, when it cannot (here it always
// can); the caller then closes the file and uses Apply.
//
// Why: a restore of many small files spent most of its system time
// resolving paths. Apply finds the file by its path three or four times
// (lstat, chmod, utimensat); through the descriptor there is no lookup, and
// no question whether a link has been planted in its place since.
func ApplyFile(f *os.File, m Meta, o ApplyOptions) (ok bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	fromWindows := m.WinAttrs != 0
	cerr := rc.Control(func(fd uintptr) {
		if o.Owner && !fromWindows {
			if err := unix.Fchown(int(fd), int(m.UID), int(m.GID)); err != nil {
				keep(fmt.Errorf("fsmeta: chown %s: %w", f.Name(), err))
			}
		}
		if !fromWindows {
			if err := unix.Fchmod(int(fd), m.Mode&modePerm); err != nil {
				keep(fmt.Errorf("fsmeta: chmod %s: %w", f.Name(), err))
			}
		}
		if !m.ModTime.IsZero() {
			ts := unix.NsecToTimespec(m.ModTime.UnixNano())
			times := [2]unix.Timespec{ts, ts}
			// utimensat with a null path sets the descriptor's own times
			// (futimens); x/sys's Futimes goes through /proc instead.
			_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&times)), 0, 0, 0)
			if errno != 0 {
				keep(fmt.Errorf("fsmeta: futimens %s: %w", f.Name(), errno))
			}
		}
	})
	if cerr != nil {
		return false, nil
	}
	return true, first
}
