package measure

import "syscall"

// macOS reports ru_maxrss in bytes.
func MaxRSSBytes(ru *syscall.Rusage) int64 { return ru.Maxrss }
