//go:build windows

package retry

import "syscall"

// Windows reports a file another program (an antivirus scanner, a backup
// agent) holds open, and a network share that dropped, with these codes.
var transientErrnos = append(commonErrnos,
	syscall.Errno(32),    // ERROR_SHARING_VIOLATION
	syscall.Errno(33),    // ERROR_LOCK_VIOLATION
	syscall.Errno(59),    // ERROR_UNEXP_NET_ERR
	syscall.Errno(64),    // ERROR_NETNAME_DELETED
	syscall.Errno(121),   // ERROR_SEM_TIMEOUT
	syscall.Errno(1231),  // ERROR_NETWORK_UNREACHABLE
	syscall.Errno(10054), // WSAECONNRESET
	syscall.Errno(10060), // WSAETIMEDOUT
	syscall.Errno(10061), // WSAECONNREFUSED
)
