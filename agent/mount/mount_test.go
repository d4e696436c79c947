//go:build linux

package mount_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/mount"
	"github.com/coffer-backup/coffer/agent/mount/mounttest"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treegen"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

var pass = []byte("correct horse battery staple")

// backup makes a repository holding one point of src, with small chunks
// so that files span many of them.
func backup(t *testing.T, src string) *repository.Repository {
	t.Helper()
	be, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(t.Context(), be, pass, repository.Options{
		KDF:     &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		Chunker: &chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func mountRepo(t *testing.T, r *repository.Repository, o mount.Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o755)
	o.Points, o.Trees, o.Blobs, o.Packs = r.Points, r, r, mount.RepositoryPacks(r)
	mt, err := mount.Mount(t.Context(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mt.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		mt.Wait()
	})
	return dir
}

func TestMountShowsEveryFileAndLinkAsBackedUp(t *testing.T) {
	mounttest.RequireFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 14, Files: 80, MaxSize: 300 << 10, BigFiles: 2, Special: true}); err != nil {
		t.Fatal(err)
	}
	r := backup(t, src)
	// A cache smaller than the big files, so reads also go through
	// eviction.
	mnt := mountRepo(t, r, mount.Options{CacheBytes: 1 << 20})

	points, err := r.Points(t.Context())
	if err != nil || len(points) != 1 {
		t.Fatalf("points: %v %v", points, err)
	}
	id := points[0].ID
	byTime := filepath.Join(mnt, "by-time", points[0].Time.Local().Format("2006-01-02T15:04:05"))
	for _, view := range []string{filepath.Join(mnt, "latest"), filepath.Join(mnt, "points", id), byTime} {
		diffs, err := treegen.Diff(src, filepath.Join(view, src))
		if err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		for _, d := range diffs {
			t.Errorf("%s: %s", strings.TrimPrefix(view, mnt), d)
		}
	}
	// Every file kind the generator makes is there: a reader that skipped
	// some would pass the diff above only if the walk missed them too.
	for _, name := range []string{"link-to-file", "dangling-link", "link-to-dir", "sparse.img", "hardlink-a", "empty", "empty-dir", "bad-\xff\xfe-name"} {
		if _, err := os.Lstat(filepath.Join(mnt, "latest", src, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(mnt, "latest", src, "dangling-link")); err != nil || target != "/nonexistent/target" {
		t.Errorf("dangling link reads %q, %v", target, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "latest", src, "new"), []byte("x"), 0o644); err == nil {
		t.Error("a file could be created in the read-only mount")
	}
}

func TestMountServesRandomReads(t *testing.T) {
	mounttest.RequireFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 15, Files: 10, MaxSize: 600 << 10, BigFiles: 3, Special: true}); err != nil {
		t.Fatal(err)
	}
	r := backup(t, src)
	mnt := mountRepo(t, r, mount.Options{CacheBytes: 1 << 20})
	rng := rand.New(rand.NewPCG(15, 16))
	var files []string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	for _, p := range files {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(mnt, "latest", p))
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			off := rng.Int64N(int64(len(want)) + 1)
			buf := make([]byte, rng.IntN(700<<10))
			n, err := f.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("%s: read %d at %d: %v", p, len(buf), off, err)
			}
			if exp := want[off:min(off+int64(len(buf)), int64(len(want)))]; !bytes.Equal(buf[:n], exp) {
				t.Fatalf("%s: %d bytes at %d differ from the source", p, len(buf), off)
			}
		}
		f.Close()
	}
}

func TestNewPointsAppearWhileMounted(t *testing.T) {
	mounttest.RequireFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("first"), 0o644)
	r := backup(t, src)
	mnt := mountRepo(t, r, mount.Options{Refresh: time.Millisecond})
	if b, err := os.ReadFile(filepath.Join(mnt, "latest", src, "f")); string(b) != "first" {
		t.Fatalf("latest before the second backup: %q %v", b, err)
	}
	os.WriteFile(filepath.Join(src, "f"), []byte("second"), 0o644)
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel keeps what it knows of latest/ for about a second.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		b, _ := os.ReadFile(filepath.Join(mnt, "latest", src, "f"))
		if string(b) == "second" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("latest still shows %q a minute after the second backup", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "points", res.Point.ID, src, "f")); string(b) != "second" {
		t.Fatalf("the new point by ID: %q %v", b, err)
	}
	entries, err := os.ReadDir(filepath.Join(mnt, "points"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("points/ lists %v, %v; want both points", entries, err)
	}
}

func TestDamagedChunkFailsOnlyTheReadsThatNeedIt(t *testing.T) {
	mounttest.RequireFUSE(t)
	src := filepath.Join(t.TempDir(), "src")
	os.Mkdir(src, 0o755)
	if err := treegen.Make(src, treegen.Options{Seed: 16, Files: 30, MaxSize: 200 << 10, BigFiles: 2}); err != nil {
		t.Fatal(err)
	}
	r := backup(t, src)
	// Flip a byte in the middle of the largest pack, where file data is.
	var victim string
	var size int64
	filepath.WalkDir(filepath.Join(r.Backend().Location(), "data"), func(p string, d fs.DirEntry, err error) error {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			victim, size = p, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x40
	os.Chmod(victim, 0o644)
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := mountRepo(t, r, mount.Options{})
	var good, bad int
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(mnt, "latest", p))
		switch {
		case err != nil:
			if !errors.Is(err, syscall.EIO) {
				t.Errorf("%s: %v, want EIO", p, err)
			}
			bad++
		case !bytes.Equal(got, want):
			t.Errorf("%s: read without error but differs from the source", p)
		default:
			good++
		}
		return nil
	})
	if bad == 0 || good == 0 {
		t.Fatalf("%d files failed and %d read; want the damage to fail some and spare the rest", bad, good)
	}
}
