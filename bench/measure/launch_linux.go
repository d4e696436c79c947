package measure

import "syscall"

// dieWithParent kills the command if its launcher dies first (the harness
// kills the launcher when a step's context ends).
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
