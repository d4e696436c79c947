//go:build linux

package mount_test

import (
	"crypto/rand"
	"io"
	"os"
	"os/exec"
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
// Where the page cache may be dropped (root on Linux) the pack files are
// read from disk too; `make bench` compares the same with restic.
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
		mt, err := mount.Mount(b.Context(), dir, mount.Options{Points: r.Points, Trees: r, Blobs: r, Packs: mount.RepositoryPacks(r)})
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, "latest", src, "big"))
		if err != nil {
			b.Fatal(err)
		}
		dropCaches()
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

// dropCaches empties the page cache where allowed, so the benchmark reads
// the repository from disk.
func dropCaches() {
	exec.Command("sync").Run()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}
