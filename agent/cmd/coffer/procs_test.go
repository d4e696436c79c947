package main

import (
	"os"
	"runtime"
	"testing"
)

// TestSmallReadsAddOneProcessor: while a backup reads small files it runs
// with one processor more than it has workers, and with as many again
// afterwards.
func TestSmallReadsAddOneProcessor(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set in the environment, which backups leave alone")
	}
	n := backupProcs()
	defer runtime.GOMAXPROCS(n)
	smallReadProcs(true)
	if got := runtime.GOMAXPROCS(0); got != n+1 {
		t.Fatalf("reading small files: %d processors, want %d", got, n+1)
	}
	smallReadProcs(false)
	if got := runtime.GOMAXPROCS(0); got != n {
		t.Fatalf("after: %d processors, want %d", got, n)
	}
}
