package main

import (
	"fmt"
	"io"
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
	stopTrace := startRecording("COFFER_TRACE", trace.Start, trace.Stop)
	stopCPU := startRecording("COFFER_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	return func() {
		stopCPU()
		writeHeapProfile()
		stopTrace()
	}
}

// startRecording starts a recording into the file the environment
// variable env names, if it names one, and returns what ends it.
func startRecording(env string, start func(io.Writer) error, end func()) (stop func()) {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = start(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "coffer: %s: %v\n", env, err)
		return func() {}
	}
	return func() { end(); f.Close() }
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
