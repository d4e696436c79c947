//go:build !windows

package restorer

import "syscall"

// noFollow keeps a file open from following a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW
