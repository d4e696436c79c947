//go:build !windows

package retry_test

import "syscall"

// diskErrno is a transient error of a local disk or share on this system.
var diskErrno = syscall.EIO
