//go:build unix

package main

import (
	"bytes"
	"fmt"
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

// A folder of more entries than one job lstats is shared out in batches;
// every entry is still lstat-ed once, and folders found in any batch are
// walked too.
func TestMetaWalkSharesBigFolders(t *testing.T) {
	root := t.TempDir()
	big := filepath.Join(root, "mail")
	const files = 3*lstatBatch + 7
	if err := os.MkdirAll(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("m%05d.eml", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Subfolders whose names sort into different batches, each with a file.
	for _, sub := range []string{"a-first", "m00300-x", "zz-last"} {
		if err := os.MkdirAll(filepath.Join(big, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(big, sub, "inner.txt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := metaWalk(root)
	// mail, its files and 3 subfolders, and one file in each.
	if want := int64(1 + files + 3 + 3); err != nil || n != want {
		t.Fatalf("walk lstat-ed %d entries (%v), want %d", n, err, want)
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

func TestBackupPassReadsEveryDataByte(t *testing.T) {
	root, total := floorTree(t)
	out := filepath.Join(t.TempDir(), "floor-packs")
	// c/disk.img is 9 MiB with 1 MiB of data: its 8 MiB of holes are not read.
	n, d, err := backupPass(root, out)
	if err != nil || n != total-8<<20 || d <= 0 {
		t.Fatalf("backup pass read %d bytes in %v (%v), want %d", n, d, err, total-8<<20)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("backup pass left its output folder: %v", err)
	}
	if _, _, err := backupPass(filepath.Join(root, "missing"), out); err == nil {
		t.Error("a missing root passed without error")
	}
}

// TestBackupPassSkipsHolesAndWritesPacks runs the backup floor on a tree
// with a sparse file (a hole, then data at its end), a file larger than
// one output file and a duplicate: it must read exactly the data bytes,
// write every distinct chunk once, sealed, in files of at most 16 MiB, and
// remove them afterwards.
func TestBackupPassSkipsHolesAndWritesPacks(t *testing.T) {
	old := dropCaches
	dropCaches = func() {}
	t.Cleanup(func() { dropCaches = old })

	root := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	big, small, tail := random(20<<20), random(300<<10), random(256<<10)
	for name, b := range map[string][]byte{"big.bin": big, "small.bin": small, "copy.bin": small} {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(root, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	const sparseSize = 16 << 20
	if err := f.Truncate(sparseSize); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tail, sparseSize-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used >= sparseSize/2 {
		t.Skipf("the file system keeps no holes (%d bytes used of %d)", used, fi.Size())
	}

	out := filepath.Join(t.TempDir(), "floor-packs")
	n, d, err := backupRun(root, out)
	want := int64(len(big) + 2*len(small) + len(tail))
	if err != nil || n != want || d <= 0 {
		t.Fatalf("backup run read %d bytes in %v (%v), want %d (the holes unread)", n, d, err, want)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > floorPackSize {
			t.Errorf("%s: %d bytes, want at most %d", e.Name(), fi.Size(), floorPackSize)
		}
		written += fi.Size()
	}
	// Random data is stored as is, plus a 16-byte GCM tag per chunk; the
	// copy's chunk is not written again.
	unique := int64(len(big) + len(small) + len(tail))
	if len(ents) < 2 || written < unique || written > unique+4<<10 {
		t.Errorf("wrote %d bytes in %d files, want %d bytes and a tag per chunk, in 2 files or more", written, len(ents), unique)
	}
	for _, e := range ents {
		b := mustRead(t, filepath.Join(out, e.Name()))
		for _, plain := range [][]byte{big, small, tail} {
			if bytes.Contains(b, plain[:4096]) {
				t.Fatalf("%s holds plaintext: not sealed", e.Name())
			}
		}
	}

	n2, _, err := backupPass(root, out)
	if err != nil || n2 != want {
		t.Fatalf("backup pass read %d bytes (%v), want %d", n2, err, want)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("backup pass left its output folder: %v", err)
	}
}

// TestOpenFloorRunsConfigShow checks the memory floor runs `config show`
// on the target's repository and cache, measured through the launcher; a
// script stands in for coffer, which the test does not build.
func TestOpenFloorRunsConfigShow(t *testing.T) {
	old := dropCaches
	dropCaches = func() {}
	t.Cleanup(func() { dropCaches = old })
	dir := t.TempDir()
	bin := filepath.Join(dir, "coffer")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho \"$@\" > \"$0.args\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	tg := &target{t: cofferTool(bin, "test"), label: "coffer", repo: "/r", cache: "/c", log: log}
	d := &datasetResult{kind: dataset.Source}
	d.measureOpenFloor(t.Context(), tg)
	if d.floors.open == nil || d.floors.open.MaxRSS <= 0 || d.floors.open.Wall <= 0 || len(d.notes) > 0 {
		t.Fatalf("open floor %+v, notes %q", d.floors.open, d.notes)
	}
	if got := strings.TrimSpace(string(mustRead(t, bin+".args"))); got != "config show --repo /r --cache-dir /c" {
		t.Errorf("ran coffer %s", got)
	}

	// A failing command is a note, and leaves the floor unmeasured.
	d = &datasetResult{kind: dataset.Source}
	tg.t.bin = filepath.Join(dir, "missing")
	d.measureOpenFloor(t.Context(), tg)
	if d.floors.open != nil || len(d.notes) != 1 {
		t.Errorf("a failed open floor gave %+v, notes %q", d.floors.open, d.notes)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	d, _, err = writeFloor(root, dst, os.RemoveAll)
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
	_, skipped, err := writeFloor(root, filepath.Join(t.TempDir(), "dst"), os.RemoveAll)
	if err != nil || skipped != 1 {
		t.Fatalf("write floor skipped %d (%v), want the symlink", skipped, err)
	}
}

func TestFloorTableBoundsRestic(t *testing.T) {
	log, _ := os.CreateTemp(t.TempDir(), "log")
	sec := func(s float64, rss int64) *measure.Result {
		return &measure.Result{Wall: time.Duration(s * float64(time.Second)), MaxRSS: rss << 20}
	}
	rst := &target{t: &tool{name: "restic"}, label: "restic", log: log, verify: "ok",
		res: [numSteps]*measure.Result{sec(30, 150), sec(2, 200), sec(4, 180), sec(20, 100)}}
	d := &datasetResult{kind: dataset.Source, stats: dataset.Stats{Files: 1, Bytes: 1e9}, local: []*target{rst},
		changed: dataset.Changed{Files: []string{"x"}},
		floors: floorTimes{backup: 10 * time.Second, backupBytes: 5e8, walk: time.Second, write: 5 * time.Second,
			open: &measure.Result{MaxRSS: 80 << 20, Wall: time.Second / 10}}}
	out := (&report{datasets: []*datasetResult{d}}).markdown()
	if strings.Contains(out, "| Re-backup after 1% changed | open + walk") {
		t.Errorf("Coffer's floors show a step whose own floor was not measured:\n%s", out)
	}
	for _, want := range []string{
		"| Initial backup | read data extents + chunk (CDC) + BLAKE3 + compress (auto) + AES-256-GCM + write 16 MiB files | 10.000 s (100 MB/s) | 30.00 s | 3.00× | ≥ 2.5× faster | yes |",
		"| No-change re-backup | walk every folder + lstat every entry | 1.000 s | 2.00 s | 2.00× | ≥ 4.0× faster | no: out of reach |",
		"| Re-backup after 1% changed | walk + lstat, and read the 1 changed file(s) | — | 4.00 s | — | ≥ 3.0× faster | — |",
		"| Full restore | create folders and files, write non-zero data, truncate sparse, chmod, chtimes (no fsync) | 5.000 s (200 MB/s) | 20.00 s | 4.00× | ≥ 2.0× faster | yes |",
		"so restic's time ÷ the floor is the highest ratio",
		"The initial-backup floor read 476.8 MiB of the dataset's 953.7 MiB (holes are not read)",
		"| Peak RSS, largest backup command | `coffer config show`: open the repository (Argon2id key derivation, 64 MiB), nothing else | 80 MiB | 200 MiB | 0.40× (lowest possible) | ≤ 0.5× restic | yes |",
		"| Peak RSS: full restore | `coffer config show`: open the repository (Argon2id key derivation, 64 MiB), nothing else | 80 MiB | 100 MiB | 0.80× (lowest possible) | ≤ 0.5× restic | no: out of reach |",
		// Coffer's floors add the open (0.1 s) to each step's: a step with
		// no floor of its own is left out, and restic's dump time is missing.
		"opening the repository: 0.10 s in this run",
		"| No-change re-backup | open + walk + lstat | 1.100 s | 2.00 s | 1.82× | ≥ 4.0× faster | no: out of reach |",
		"| Single-file restore, total | open (the file's own read left out) | 0.100 s | — | — | ≥ 3.0× faster | — |",
		"| Full restore | open + create and write every file | 5.100 s | 20.00 s | 3.92× | ≥ 2.0× faster | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestSizeFloorStoresEachChunkOnceCompressed: a copy of a file adds
// nothing, text shrinks, random bytes do not, and holes are not read.
func TestSizeFloorStoresEachChunkOnceCompressed(t *testing.T) {
	root := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 3<<20)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	text := bytes.Repeat([]byte("a line of a log that repeats itself, as logs do\n"), 60000) // about 2.9 MB
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("noise", noise)
	write("text", text)
	stored, read, _, err := sizeFloor(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(noise) + len(text)); read != want {
		t.Errorf("read %d bytes, want %d", read, want)
	}
	if stored < int64(len(noise)) || stored > int64(len(noise))+int64(len(noise))/50+int64(len(text))/20 {
		t.Errorf("stored %d bytes for %d of noise and %d of text: noise cannot shrink, and the text should nearly vanish", stored, len(noise), len(text))
	}

	// A copy and a sparse file of holes around the same noise add almost nothing.
	write("noise-copy", noise)
	sparse, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sparse.WriteAt(noise, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(20 << 20); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	again, read2, _, err := sizeFloor(root)
	if err != nil {
		t.Fatal(err)
	}
	if again > stored+64<<10 {
		t.Errorf("with a copy of the noise and a sparse file around it the floor grew from %d to %d bytes", stored, again)
	}
	if read2 > read+int64(2*len(noise))+1<<20 {
		t.Errorf("read %d bytes: the sparse file's holes were read", read2)
	}
}

func TestSizeFloorTable(t *testing.T) {
	log, _ := os.CreateTemp(t.TempDir(), "log")
	rst := &target{t: &tool{name: "restic"}, label: "restic", log: log, verify: "ok", size: 1000 << 20}
	for _, tc := range []struct {
		floor int64
		want  string
	}{
		{990 << 20, "| 990.0 MiB | 1000.0 MiB | 0.990× (lowest possible) | ≤ 0.97× restic | no: out of reach for zstd |"},
		{900 << 20, "| 900.0 MiB | 1000.0 MiB | 0.900× (lowest possible) | ≤ 0.97× restic | yes |"},
	} {
		d := &datasetResult{kind: dataset.Office, stats: dataset.Stats{Files: 1, Bytes: 1e9}, local: []*target{rst},
			floors: floorTimes{size: tc.floor, sizeRead: 1200 << 20}}
		out := (&report{datasets: []*datasetResult{d}}).markdown()
		if !strings.Contains(out, tc.want) || !strings.Contains(out, "The floor read 1200.0 MiB.") {
			t.Errorf("report lacks %q:\n%s", tc.want, out)
		}
	}
}
