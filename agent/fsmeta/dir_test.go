package fsmeta

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// LstatAt in an open folder describes each entry as Lstat of its path
// does: a file, a folder and a symlink, which is not followed.
func TestLstatAtAgreesWithLstat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	names := []string{"f.txt", "sub"}
	// Windows links are not what LstatAt is for (it is Lstat there), and
	// wine makes ones its own Lstat cannot find.
	if runtime.GOOS != "windows" {
		if err := os.Symlink("f.txt", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		names = append(names, "link")
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range names {
		path := filepath.Join(dir, name)
		want, err := Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*os.File{d, nil} {
			got, err := LstatAt(in, name, path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s (folder open: %v): LstatAt %+v, Lstat %+v", name, in != nil, got, want)
			}
		}
	}
	_, err = LstatAt(d, "gone", filepath.Join(dir, "gone"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "gone")) {
		t.Fatalf("a missing entry: %v; want not-exist naming its whole path", err)
	}
}

// OpenDir does not follow a symlink put where a folder was.
func TestOpenDirRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(dir, "loop")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if f, err := OpenDir(filepath.Join(dir, "loop")); err == nil {
		f.Close()
		if filepath.Separator == '/' {
			t.Fatal("OpenDir followed a symlink")
		}
	}
}

// OpenAt reads a file of an open folder, or of its path without one, and
// does not follow a symlink put where the file was.
func TestOpenAtReadsTheFileAndRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(path, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, in := range []*os.File{d, nil} {
		f, err := OpenAt(in, "f.txt", path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "hello" {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	if _, err := OpenAt(d, "gone", filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "gone")) {
		t.Fatalf("a missing file: %v; want not-exist naming its whole path", err)
	}
	if runtime.GOOS == "windows" {
		return // OpenAt is os.Open there, and wine's symlinks cannot be read back
	}
	if err := os.Symlink(path, filepath.Join(dir, "link")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if f, err := OpenAt(d, "link", filepath.Join(dir, "link")); err == nil {
		f.Close()
		t.Fatal("OpenAt followed a symlink")
	}
}
