package archiver_test

import (
	"os"
	"path/filepath"
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
