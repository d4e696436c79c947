//go:build unix && !linux && !darwin

package measure

import "syscall"

// The BSDs report ru_maxrss in kibibytes, as Linux does.
func MaxRSSBytes(ru *syscall.Rusage) int64 { return int64(ru.Maxrss) * 1024 }
