package prune

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// A backup killed while a pack was spooling leaves a temp file in the
// folder; prune, holding its lock, removes those a day old and leaves a
// fresh one (a write that may still be going on) alone.
func TestPruneRemovesTempFilesInterruptedWritesLeft(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	lb, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	be := retry.New(lb, retry.Policy{})
	newFixture(t, be)
	old := filepath.Join(dir, "data", ".tmp-killed-backup")
	fresh := filepath.Join(dir, "data", ".tmp-spooling")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	twoDays := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, twoDays, twoDays); err != nil {
		t.Fatal(err)
	}
	dry, err := Prune(t.Context(), open(t, be), Options{DryRun: true})
	if err != nil || dry.TempFilesRemoved != 0 {
		t.Fatalf("dry run: %d removed, %v", dry.TempFilesRemoved, err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("a dry run removed a temp file")
	}
	st, err := Prune(t.Context(), open(t, be), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.TempFilesRemoved != 1 {
		t.Fatalf("prune removed %d temp files, want 1", st.TempFilesRemoved)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("the day-old temp file is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a fresh temp file was removed")
	}
}
