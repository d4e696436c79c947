package archiver_test

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/treegen"
)

// Linux only: it mounts a tmpfs (kept apart so the package's other tests
// build for Windows, where the Windows lane runs them).
func TestOneFileSystemKeepsMountPointsEmpty(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs root on Linux to mount a tmpfs inside the source")
	}
	src := specialTree(t)
	mnt := filepath.Join(src, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	write(t, filepath.Join(mnt, "other-fs.txt"), "x")
	for _, one := range []bool{false, true} {
		filter, err := archiver.NewFilter(archiver.Filter{OneFileSystem: one})
		if err != nil {
			t.Fatal(err)
		}
		r := newRepo(t)
		res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Filter: filter})
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if _, err := restorer.Restore(t.Context(), reopen(t, r), res.Point, restorer.Options{Target: dst, Owner: os.Geteuid() == 0}); err != nil {
			t.Fatal(err)
		}
		got := treegen.Restored(dst, src)
		if fi, err := os.Stat(filepath.Join(got, "mnt")); err != nil || !fi.IsDir() {
			t.Errorf("one-file-system=%v: the mount point should be restored as a folder: %v", one, err)
		}
		_, err = os.Stat(filepath.Join(got, "mnt", "other-fs.txt"))
		if one && err == nil {
			t.Error("--one-file-system backed up a file of another file system")
		}
		if !one && err != nil {
			t.Errorf("without --one-file-system the other file system's file is missing: %v", err)
		}
	}
}

// An unchanged file's extended attributes come from the parent point
// (setting one changes the ctime); one set since then must still reach the
// new point.
func TestAnExtendedAttributeSetSinceTheLastPointIsBackedUp(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(src, "report.txt")
	write(t, f, "content that does not change")
	if err := unix.Setxattr(f, "user.coffer.first", []byte("1"), 0); err != nil {
		t.Skipf("this file system keeps no user xattrs: %v", err)
	}
	r := newRepo(t)
	first, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(f, "user.coffer.second", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	second, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Parent: first.Point})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing changed since: the parent's attributes carry over.
	third, err := archiver.Backup(t.Context(), reopen(t, r), []string{src}, archiver.Options{Parent: second.Point})
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"user.coffer.first", "user.coffer.second"}
	for _, c := range []struct {
		point *archiver.Result
		want  []string
	}{{first, []string{"user.coffer.first"}}, {second, both}, {third, both}} {
		n, err := restorer.Lookup(t.Context(), reopen(t, r), c.point.Point.Tree, find.PointPath(filepath.Join(src, "report.txt")))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range n.Xattrs {
			got = append(got, x.Name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("point %s holds xattrs %v; want %v", c.point.Point.Tree, got, c.want)
		}
	}
}
