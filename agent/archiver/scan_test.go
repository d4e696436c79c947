package archiver_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
)

// TestScanKnowsTheTotalsBeforeAFileIsRead holds every file read until the
// scan ahead says it is done: the totals a progress bar needs are known
// before any content is read, and they equal what the point holds, with
// the same exclusions as the backup.
func TestScanKnowsTheTotalsBeforeAFileIsRead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter *archiver.Filter
	}{
		{"everything", nil},
		{"with exclusions", &archiver.Filter{Exclude: []string{"*.bin", "dir001"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			src := sourceTree(t, 7)
			os.WriteFile(filepath.Join(src, "left-out.bin"), []byte("excluded when *.bin is"), 0o644)
			var filter *archiver.Filter
			if tc.filter != nil {
				f, err := archiver.NewFilter(*tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				filter = f
			}
			prog := &archiver.Progress{}
			// ScanDone is an atomic flag with no event to wait on: the first
			// read polls it, holding every reader until the scan is over.
			var once sync.Once
			waitScan := func() {
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for !prog.ScanDone.Load() {
					select {
					case <-t.Context().Done():
						return
					case <-tick.C:
					}
				}
			}
			res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Progress: prog, ScanAhead: true, Filter: filter,
				ReadFrom: func(p string) string { once.Do(waitScan); return p }})
			if err != nil {
				t.Fatal(err)
			}
			s := res.Point.Summary
			if !prog.ScanDone.Load() || prog.TotalFiles.Load() != s.Files || prog.TotalBytes.Load() != s.Bytes {
				t.Fatalf("scan found %d files, %d bytes (done %v); the point holds %d files, %d bytes",
					prog.TotalFiles.Load(), prog.TotalBytes.Load(), prog.ScanDone.Load(), s.Files, s.Bytes)
			}
			// Once the backup returns, every new byte is uploaded: nothing
			// is left waiting for the upload in the progress display.
			if prog.BytesNew.Load() == 0 || prog.BytesNewStored.Load() != prog.BytesNew.Load() {
				t.Fatalf("%d new bytes, %d of them reported uploaded", prog.BytesNew.Load(), prog.BytesNewStored.Load())
			}
		})
	}
}

// TestProgressCountsHolesAsDone backs up a sparse file: its holes are not
// read, yet the progress must reach the file's size, or a bar drawn from
// it stops short (it stopped at 24% on the office set, whose 4 GiB disk
// image is mostly holes) and the ETA never reaches zero.
func TestProgressCountsHolesAsDone(t *testing.T) {
	r := newRepo(t)
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	block := make([]byte, 256<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for _, off := range []int64{0, 24 << 20} { // data, a hole, data, a hole to the end
		if _, err := f.WriteAt(block, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	prog := &archiver.Progress{}
	res, err := archiver.Backup(t.Context(), r, []string{src}, archiver.Options{Progress: prog, ScanAhead: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Point.Summary.Bytes != size {
		t.Fatalf("the point holds %d bytes, want %d", res.Point.Summary.Bytes, size)
	}
	if got := prog.BytesDone.Load(); got != size || prog.TotalBytes.Load() != size {
		t.Fatalf("progress: %d of %d bytes done at the end, want %d of %d", got, prog.TotalBytes.Load(), size, size)
	}
	if prog.BytesRead.Load() == size {
		t.Skip("this file system reports no holes, so every byte was read")
	}
	if prog.BytesRead.Load() != 2*int64(len(block)) {
		t.Fatalf("read %d bytes, want only the %d bytes of data", prog.BytesRead.Load(), 2*len(block))
	}
}

// TestSmallReadsFollowsTheBackup backs up many small files, then one
// large one: the first says true while it reads and false at the end; the
// second never says true. A re-backup of the large one, unchanged, says
// true from its start and false at its end.
func TestSmallReadsFollowsTheBackup(t *testing.T) {
	defer func(d time.Duration) { *archiver.ReadMixInterval = d }(*archiver.ReadMixInterval)
	*archiver.ReadMixInterval = time.Millisecond
	small := t.TempDir()
	for i := range 3000 {
		if err := os.WriteFile(filepath.Join(small, fmt.Sprintf("mail-%05d.eml", i)), []byte(fmt.Sprintf("message %d %s", i, strings.Repeat("x", 1000))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	large := t.TempDir()
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i*31 + i>>11)
	}
	if err := os.WriteFile(filepath.Join(large, "disk.img"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir       string
		wantSmall bool
	}{{small, true}, {large, false}} {
		var mu sync.Mutex
		var calls []bool
		_, err := archiver.Backup(t.Context(), newRepo(t), []string{tc.dir}, archiver.Options{SmallReads: func(s bool) {
			mu.Lock()
			calls = append(calls, s)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		if saidSmall := slices.Contains(calls, true); saidSmall != tc.wantSmall {
			t.Fatalf("%s: told %v, want a true: %v", filepath.Base(tc.dir), calls, tc.wantSmall)
		}
		if len(calls) > 0 && calls[len(calls)-1] {
			t.Fatalf("the backup ended with its readers marked small: %v", calls)
		}
	}
	repo := newRepo(t)
	first, err := archiver.Backup(t.Context(), repo, []string{large}, archiver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var calls []bool // the watcher has stopped when Backup returns
	if _, err := archiver.Backup(t.Context(), repo, []string{large}, archiver.Options{Parent: first.Point, SmallReads: func(s bool) { calls = append(calls, s) }}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []bool{true, false}) {
		t.Fatalf("re-backup of an unchanged file: told %v, want [true false]", calls)
	}
}
