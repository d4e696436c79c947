package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of the whole command to the file
// COFFER_CPUPROFILE names, for `go tool pprof`: how the benchmarks'
// figures were taken apart (docs/benchmarks.md). Unset, it does nothing.
func startCPUProfile() (stop func()) {
	path := os.Getenv("COFFER_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_CPUPROFILE:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_CPUPROFILE:", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
