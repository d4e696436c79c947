package archiver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// With ReadFrom (a shadow copy's path mapper) the content comes from the
// mapped path while the point keeps the live paths and their metadata.
func TestContentIsReadThroughReadFrom(t *testing.T) {
	base := t.TempDir()
	live, snap := filepath.Join(base, "live"), filepath.Join(base, "snap")
	for dir, content := range map[string]string{live: "being written now", snap: "as it was at the snapshot"} {
		os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
		os.WriteFile(filepath.Join(dir, "logs", "app.log"), []byte(content), 0o644)
	}
	var asked []string
	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{live}, archiver.Options{ReadFrom: func(p string) string {
		asked = append(asked, p)
		return snap + strings.TrimPrefix(p, live)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0] != filepath.Join(live, "logs", "app.log") {
		t.Fatalf("ReadFrom asked for %q; want the one file, by its live path", asked)
	}
	dst := t.TempDir()
	if _, err := restorer.Restore(t.Context(), reopen(t, r), res.Point, restorer.Options{Target: dst}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(treegen.Restored(dst, live), "logs", "app.log"))
	if err != nil || string(got) != "as it was at the snapshot" {
		t.Fatalf("restored %q (%v) under the live path; want the snapshot's content", got, err)
	}
}
