package local_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/limit"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/retry"
)

// tempFiles lists what a spool may leave behind in the repository folder.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestSpoolCommitsWholeAndLeavesNoTempFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Found through the retry wrapper, which a repository always has.
	sp, ok := storage.AsSpooler(retry.New(b, retry.Policy{}))
	if !ok {
		t.Fatal("a local folder behind the retry wrapper offers no spool")
	}
	// A throttle or a fault injector must not be bypassed: they hide it.
	if _, ok := storage.AsSpooler(retry.New(limit.New(b, limit.Options{Concurrency: 1}), retry.Policy{})); ok {
		t.Fatal("the spool is offered through a throttle")
	}
	if _, ok := storage.AsSpooler(faulty.New(b)); ok {
		t.Fatal("the spool is offered through a fault injector")
	}
	ctx := t.Context()
	s, err := sp.Spool(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("pack bytes "), 100_000)
	for chunk := range slices(want, 64<<10) {
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := storage.ReadAll(ctx, b, "data/ab/abcd"); got != nil {
		t.Fatal("the object is visible before Commit")
	}
	if err := s.Commit(ctx, "data/ab/abcd"); err != nil {
		t.Fatal(err)
	}
	s.Abort() // after Commit: no effect
	got, err := storage.ReadAll(ctx, b, "data/ab/abcd")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(want))
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}

	// A taken name is ErrExists and the spool is dropped.
	s2, err := sp.Spool(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	s2.Write([]byte("other bytes"))
	if err := s2.Commit(ctx, "data/ab/abcd"); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("commit to a taken name: %v, want ErrExists", err)
	}
	if got, _ := storage.ReadAll(ctx, b, "data/ab/abcd"); !bytes.Equal(got, want) {
		t.Fatal("the existing object was changed")
	}

	// Aborted: nothing stored, nothing left.
	s3, err := sp.Spool(ctx, "data")
	if err != nil {
		t.Fatal(err)
	}
	s3.Write([]byte("dropped"))
	s3.Abort()
	if err := s3.Commit(ctx, "data/cd/cdef"); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	if _, err := b.Stat(ctx, "data/cd/cdef"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("aborted spool stored something: %v", err)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

// slices yields b in pieces of n bytes.
func slices(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func TestSweepTempsRemovesOnlyOldTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.Create(ctx, "data/ab/abcd", []byte("a pack")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := filepath.Join(dir, "data", ".tmp-crashed")
	fresh := filepath.Join(dir, "data", "ab", ".tmp-writing")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("half a pack"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	sw, ok := storage.AsTempSweeper(retry.New(b, retry.Policy{}))
	if !ok {
		t.Fatal("a local folder offers no sweep")
	}
	n, err := sw.SweepTemps(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want the one old temp file", n, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("the old temp file is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a temp file being written was removed")
	}
	if got, err := storage.ReadAll(ctx, b, "data/ab/abcd"); err != nil || string(got) != "a pack" {
		t.Fatalf("an object was touched: %q, %v", got, err)
	}
}
