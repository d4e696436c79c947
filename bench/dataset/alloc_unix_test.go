//go:build unix

package dataset

import "syscall"

// allocated is how many bytes of disk the file at p takes.
func allocated(p string) (int64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, false
	}
	return st.Blocks * 512, true
}
