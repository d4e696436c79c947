//go:build unix

package treegen

import (
	"os"
	"syscall"
)

// blocks is the file's allocated size in 512-byte blocks, to tell a
// restored hole from written zeros.
func blocks(p string) int64 {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks)
	}
	return fi.Size() / 512
}
