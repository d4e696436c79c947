package proc

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the child if its parent dies
// first (a test binary killed by a timeout, say), so no emulator outlives
// the run that started it.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
