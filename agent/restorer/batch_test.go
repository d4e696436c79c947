package restorer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// A restore is planned and fetched a batch at a time. With batches of
// three files, a file whose chunks another batch also needs (a copy in a
// far folder) and a hard link whose names land in different batches still
// restore exactly.
func TestARestoreInManyBatchesIsExact(t *testing.T) {
	restorer.SetBatchFiles(t, 3)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 7, Files: 60, MaxSize: 300 << 10, BigFiles: 1}); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 20 {
		t.Fatalf("only %d files generated", len(files))
	}
	far := filepath.Join(src, "zz-far")
	os.Mkdir(far, 0o755)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(far, "copy-of-first"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(files[1], filepath.Join(far, "second-name")); err != nil {
		t.Skipf("this file system cannot make hard links: %v", err)
	}

	r := newRepo(t)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	prog := &restorer.Progress{}
	out, err := restorer.Restore(t.Context(), reopen(t, r), res.Point, restorer.Options{Target: dst, Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) > 0 || len(out.Warnings) > 0 {
		t.Fatalf("failed %v, warnings %v", out.Failed, out.Warnings)
	}
	diffs, err := treegen.Diff(src, treegen.Restored(dst, src))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore differs:\n%s", strings.Join(diffs, "\n"))
	}
	restored := treegen.Restored(dst, src)
	a, errA := os.Stat(filepath.Join(restored, strings.TrimPrefix(files[1], src)))
	c, errC := os.Stat(filepath.Join(restored, "zz-far", "second-name"))
	if errA != nil || errC != nil || !os.SameFile(a, c) {
		t.Errorf("the two names of the hard link are not one file again: %v, %v", errA, errC)
	}
	if !prog.PlanDone.Load() || prog.FilesDone.Load() != prog.FilesTotal.Load() || prog.BytesDone.Load() != prog.BytesTotal.Load() {
		t.Errorf("progress at the end: plan done %v, files %d/%d, bytes %d/%d", prog.PlanDone.Load(),
			prog.FilesDone.Load(), prog.FilesTotal.Load(), prog.BytesDone.Load(), prog.BytesTotal.Load())
	}
}
