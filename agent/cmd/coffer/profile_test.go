package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestProfilesAreWrittenWhereTheEnvironmentSays: each of the three files
// is written, non-empty, when the command's profiling stops; a path that
// cannot be created costs a message, not the command.
func TestProfilesAreWrittenWhereTheEnvironmentSays(t *testing.T) {
	dir := t.TempDir()
	for _, env := range []string{"COFFER_CPUPROFILE", "COFFER_MEMPROFILE", "COFFER_TRACE"} {
		t.Setenv(env, filepath.Join(dir, env))
	}
	stop := startCPUProfile()
	stop()
	for _, env := range []string{"COFFER_CPUPROFILE", "COFFER_MEMPROFILE", "COFFER_TRACE"} {
		if fi, err := os.Stat(filepath.Join(dir, env)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", env, err)
		}
	}
	t.Setenv("COFFER_TRACE", filepath.Join(dir, "missing", "trace"))
	startCPUProfile()() // no panic, no profile
}
