//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// detach puts the supervisor in a session of its own, so it outlives the
// terminal and `make` that started it.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
