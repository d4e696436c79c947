//go:build linux

package mount_test

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/mount"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

// BenchmarkSequentialRead reads a 64 MiB incompressible file through a
// fresh mount each time (so neither the kernel's page cache nor the chunk
// cache holds it), with the repository's default chunk and pack sizes.
// The pack files themselves stay in the page cache: this measures the
// mount, not the disk; `make bench` measures both against restic.
func BenchmarkSequentialRead(b *testing.B) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		b.Skip("skipped: /dev/fuse is missing, so nothing can be mounted here")
	}
	src := filepath.Join(b.TempDir(), "src")
	os.Mkdir(src, 0o755)
	const size = 64 << 20
	data := make([]byte, size)
	rand.Read(data)
	os.WriteFile(filepath.Join(src, "big"), data, 0o644)
	be, err := local.New(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repository.Init(b.Context(), be, pass, repository.Options{
		KDF: &crypto.KDFParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 8 << 10, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := archiver.Backup(b.Context(), r, []string{src}, archiver.Options{}); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "mnt")
		os.Mkdir(dir, 0o755)
		mt, err := mount.Mount(b.Context(), dir, mount.Options{Points: r.Points, Trees: r, Blobs: r})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "latest", src, "big"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := io.CopyBuffer(io.Discard, f, buf)
		b.StopTimer()
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		f.Close()
		if err := mt.Unmount(); err != nil {
			b.Fatal(err)
		}
		mt.Wait()
		b.StartTimer()
	}
}

var _ = repository.Point{}
