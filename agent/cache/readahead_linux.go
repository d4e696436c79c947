package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// readAhead asks the kernel to read the whole file into the page cache in
// the background, in order: the listings are then read from memory.
func readAhead(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED)
}
