//go:build unix

package retry

import "syscall"

// EIO and ESTALE come from failing disks and dropped NFS or SMB mounts,
// which often recover.
var transientErrnos = append(commonErrnos, syscall.EIO, syscall.ESTALE)
