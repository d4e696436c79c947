package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startCPUProfile writes a CPU profile of the whole command to the file
// COFFER_CPUPROFILE names, and a heap profile at its end to the file
// COFFER_MEMPROFILE names, for `go tool pprof`: how the benchmarks'
// figures were taken apart (docs/benchmarks.md). COFFER_TRACE names a file
// for an execution trace (`go tool trace`), which shows where goroutines
// wait rather than where the CPU goes. Unset, they do nothing.
func startCPUProfile() (stop func()) {
	stopTrace, stopPprof := startTrace(), startPprof()
	return func() { stopPprof(); stopTrace() }
}

func startTrace() (stop func()) {
	path := os.Getenv("COFFER_TRACE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_TRACE:", err)
		return func() {}
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_TRACE:", err)
		f.Close()
		return func() {}
	}
	return func() { trace.Stop(); f.Close() }
}

func startPprof() (stop func()) {
	path := os.Getenv("COFFER_CPUPROFILE")
	if path == "" {
		return writeHeapProfile
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
		writeHeapProfile()
	}
}

// writeHeapProfile writes what is live when the command ends, which for a
// backup is the whole point's bookkeeping (index, trees, references).
func writeHeapProfile() {
	path := os.Getenv("COFFER_MEMPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_MEMPROFILE:", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "coffer: COFFER_MEMPROFILE:", err)
	}
}
