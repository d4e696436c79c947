package measure

import "syscall"

// MaxRSSBytes is ru_maxrss in bytes: Linux reports kibibytes.
func MaxRSSBytes(ru *syscall.Rusage) int64 { return ru.Maxrss * 1024 }
