//go:build !windows

package restorer

import "syscall"

// noFollow keeps a file open from following a symlink planted in its place.
const noFollow = syscall.O_NOFOLLOW

// preCreate: files are created while planning and reopened by the fetch
// workers; O_NOFOLLOW and an identity check keep the reopening safe.
const preCreate = true
