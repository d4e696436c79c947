package retry_test

import "syscall"

// diskErrno is a transient error of a local disk or share on this system:
// Windows never returns EIO, and a file another program holds open is its
// everyday transient failure.
var diskErrno = syscall.Errno(32) // ERROR_SHARING_VIOLATION
