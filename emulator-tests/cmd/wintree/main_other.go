//go:build !windows

// Command wintree makes and compares folder trees with Windows specifics
// for the Windows lane; it is a Windows program, run under wine there
// (see main_windows.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "wintree is a Windows program: build it with GOOS=windows and run it on Windows or under wine (make test-windows does)")
	os.Exit(2)
}
