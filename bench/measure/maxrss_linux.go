package measure

import "syscall"

// Linux reports ru_maxrss in kibibytes.
func maxRSSBytes(ru *syscall.Rusage) int64 { return ru.Maxrss * 1024 }
