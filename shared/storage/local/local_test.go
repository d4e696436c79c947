package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

func open(t *testing.T) storage.Backend {
	b, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) { storagetest.Run(t, open) }

func TestNewCreatesMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("folder not created: %v", err)
	}
	if b.Location() != dir {
		t.Fatalf("Location() = %q, want %q", b.Location(), dir)
	}
}

func TestNewRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := local.New(f)
	if err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Fatalf("New(file): got %v, want an error saying it is not a folder", err)
	}
}

func TestNewRelativeIsAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := local.New("repo")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(b.Location()) {
		t.Fatalf("Location() = %q, want an absolute path", b.Location())
	}
}

// A crash between writing the temp file and linking it leaves debris that
// must not look like an object.
func TestListSkipsTempDebris(t *testing.T) {
	dir := t.TempDir()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.Create(ctx, "data/ab/abcd", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".tmp-123", "data/ab/.tmp-456", "data/.tmp-789"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	if err := b.List(ctx, "", func(i storage.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "data/ab/abcd" {
		t.Fatalf("List = %v, want only data/ab/abcd", names)
	}
	if err := b.Create(ctx, "data/ab/.tmp-x", []byte("x")); !errors.Is(err, storage.ErrInvalidName) {
		t.Fatalf("Create of a temp-like name: got %v, want ErrInvalidName", err)
	}
}

// Create leaves no temp file behind, whether it wins or finds the name taken.
func TestCreateLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	b, _ := local.New(dir)
	ctx := t.Context()
	if err := b.Create(ctx, "a/b", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "a/b", []byte("2")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "b" {
		t.Fatalf("folder holds %v, want only b", entries)
	}
}

func TestNameUnderAnObjectIsAnError(t *testing.T) {
	b := open(t)
	ctx := t.Context()
	if err := b.Create(ctx, "a", []byte("file")); err != nil {
		t.Fatal(err)
	}
	err := b.Create(ctx, "a/b", []byte("x"))
	if err == nil || errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create(a/b) under object a: got %v, want a non-ErrExists error", err)
	}
	if err := b.Create(ctx, "c/d", []byte("x")); err != nil {
		t.Fatal(err)
	}
	err = b.Create(ctx, "c", []byte("x"))
	if err == nil || errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create(c) over folder c: got %v, want a non-ErrExists error", err)
	}
	if err := b.Delete(ctx, "c"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete of a folder: got %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(b.Location(), "c", "d")); err != nil {
		t.Fatalf("Delete of a folder name touched the folder: %v", err)
	}
}

func TestReadOnlyFolderIsErrPermission(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("folder permissions do not bind root, and differ on Windows")
	}
	dir := t.TempDir()
	b, _ := local.New(dir)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	err := b.Create(t.Context(), "x", []byte("x"))
	if !errors.Is(err, storage.ErrPermission) {
		t.Fatalf("Create in a read-only folder: got %v, want ErrPermission", err)
	}
}
