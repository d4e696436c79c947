//go:build unix

package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/bench/measure"
)

// floorTree makes a small tree: folders, text and random files, an empty
// file and a 9 MiB sparse file with 1 MiB of data in the middle and holes
// on both sides. It returns the root and the bytes of all files.
func floorTree(t *testing.T) (string, int64) {
	t.Helper()
	// The tests must not empty the page cache of a machine others measure on.
	old := dropCaches
	dropCaches = func() {}
	t.Cleanup(func() { dropCaches = old })

	root := filepath.Join(t.TempDir(), "src")
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"a/one.txt":         bytes.Repeat([]byte("hello floor "), 1000),
		"a/b/two.bin":       random(300 << 10),
		"a/b/c/three.bin":   random(2<<20 + 17),
		"c/empty":           nil,
		"top.txt":           []byte("top"),
		"d/e/f/g/deep.text": []byte(strings.Repeat("x", 4097)),
	}
	var total int64
	for rel, b := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		total += int64(len(b))
	}
	if err := os.Mkdir(filepath.Join(root, "emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "c/disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(random(1<<20), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return root, total + 9<<20
}

func TestMetaWalkSeesEveryEntry(t *testing.T) {
	root, _ := floorTree(t)
	n, d, err := metaWalk(root)
	// 9 folders below the root and 7 files.
	if err != nil || n != 16 || d <= 0 {
		t.Fatalf("walk lstat-ed %d entries in %v (%v), want 16", n, d, err)
	}
	if _, _, err := metaWalk(filepath.Join(root, "missing")); err == nil {
		t.Error("a missing root walked without error")
	}
}

func TestChangedPassReadsTheChangedFiles(t *testing.T) {
	root, _ := floorTree(t)
	ch, err := dataset.Change(root, 1, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, rel := range ch.Files {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		want += fi.Size()
	}
	n, d, err := changedPass(root, ch.Files)
	if err != nil || n != want || d <= 0 || len(ch.Files) == 0 {
		t.Fatalf("changed pass read %d bytes of %d files in %v (%v), want %d", n, len(ch.Files), d, err, want)
	}
	if _, _, err := changedPass(root, []string{"no/such/file"}); err == nil {
		t.Error("a missing changed file read without error")
	}
}

func TestCompressPassReadsEveryByte(t *testing.T) {
	root, total := floorTree(t)
	n, d, err := compressPass(root)
	if err != nil || n != total || d <= 0 {
		t.Fatalf("compress pass read %d bytes in %v (%v), want %d", n, d, err, total)
	}
}

func TestWriteFloorRecreatesTheTreeWithItsHoles(t *testing.T) {
	root, _ := floorTree(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "a/one.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	want, err := dataset.DigestTree(root)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	d, skipped, err := recreate(root, dst)
	if err != nil || d <= 0 || skipped != 0 {
		t.Fatalf("recreate took %v, skipped %d (%v)", d, skipped, err)
	}
	got, err := dataset.DigestTree(dst)
	if err != nil || !got.Equal(want) {
		t.Fatalf("recreated %v (%v), source %v", got, err, want)
	}
	fi, err := os.Stat(filepath.Join(dst, "c/disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; fi.Size() != 9<<20 || used > 2<<20 {
		t.Errorf("sparse file: %d bytes take %d on disk, want its holes kept", fi.Size(), used)
	}
	fi, err = os.Stat(filepath.Join(dst, "a/one.txt"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("a/one.txt: %v (%v), want mode 0640 and mtime %v", fi, err, mtime)
	}
	if fi, err := os.Stat(filepath.Join(dst, "emptydir")); err != nil || !fi.IsDir() {
		t.Errorf("empty folder not recreated: %v", err)
	}

	// A left-over destination is cleared first: O_EXCL would refuse it.
	if _, _, err := recreate(root, dst); err != nil {
		t.Fatalf("recreate does not clear its destination first: %v", err)
	}
	d, _, err = writeFloor(root, dst)
	if err != nil || d <= 0 {
		t.Fatalf("write floor took %v (%v)", d, err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("write floor left its folder: %v", err)
	}
}

func TestWriteFloorSkipsSymlinks(t *testing.T) {
	root, _ := floorTree(t)
	if err := os.Symlink("top.txt", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	_, skipped, err := writeFloor(root, filepath.Join(t.TempDir(), "dst"))
	if err != nil || skipped != 1 {
		t.Fatalf("write floor skipped %d (%v), want the symlink", skipped, err)
	}
}

func TestFloorTableBoundsRestic(t *testing.T) {
	log, _ := os.CreateTemp(t.TempDir(), "log")
	sec := func(s float64) *measure.Result { return &measure.Result{Wall: time.Duration(s * float64(time.Second))} }
	rst := &target{t: &tool{name: "restic"}, label: "restic", log: log, verify: "ok",
		res: [numSteps]*measure.Result{sec(30), sec(2), sec(4), sec(20)}}
	d := &datasetResult{kind: dataset.Source, stats: dataset.Stats{Files: 1, Bytes: 1e9}, local: []*target{rst},
		changed: dataset.Changed{Files: []string{"x"}},
		floors:  floorTimes{compress: 10 * time.Second, compressBytes: 1e9, walk: time.Second, write: 5 * time.Second}}
	out := (&report{datasets: []*datasetResult{d}}).markdown()
	for _, want := range []string{
		"| Initial backup | read every file + BLAKE3 + compress (auto) + AES-256-GCM, 1 MiB pieces | 10.000 s (100 MB/s) | 30.00 s | 3.00× | ≥ 2.5× faster | yes |",
		"| No-change re-backup | walk every folder + lstat every entry | 1.000 s | 2.00 s | 2.00× | ≥ 4.0× faster | no: out of reach |",
		"| Re-backup after 1% changed | walk + lstat, and read the 1 changed file(s) | — | 4.00 s | — | ≥ 3.0× faster | — |",
		"| Full restore | create folders and files, write non-zero data, truncate sparse, chmod, chtimes (no fsync) | 5.000 s (200 MB/s) | 20.00 s | 4.00× | ≥ 2.0× faster | yes |",
		"so restic's time ÷ the floor is the highest ratio",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
