//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
)

// TestBackupProgressUsesTheScanAhead: with the scan's totals the bar and
// ETA are right from the start, while the walk's own counts still lag;
// read, new and uploaded bytes are shown apart, and when uploads lag the
// bar and ETA follow them.
func TestBackupProgressUsesTheScanAhead(t *testing.T) {
	for _, tc := range []struct {
		name      string
		set       func(p *archiver.Progress)
		want      []string
		wantNot   []string
		percent   float64
		remaining float64
	}{
		{
			name: "scan done, walk far behind",
			set: func(p *archiver.Progress) {
				p.TotalFiles.Store(1000)
				p.TotalBytes.Store(1000 << 20)
				p.ScanDone.Store(true)
				p.FilesSeen.Store(60)
				p.BytesSeen.Store(110 << 20)
				p.FilesDone.Store(50)
				p.BytesDone.Store(100 << 20)
				p.BytesRead.Store(100 << 20)
				p.BytesNew.Store(80 << 20)
				p.BytesNewStored.Store(80 << 20)
				p.BytesStored.Store(32 << 20)
			},
			want:      []string{"[##..................]", "50/1000 files", "100.0 MiB/1000.0 MiB", "read 100.0 MiB", "new 80.0 MiB", "uploaded 32.0 MiB", "about 1m30s left"},
			wantNot:   []string{"+", "uploading the last"},
			percent:   0.1,
			remaining: 90,
		},
		{
			// Half read, but the throttled upload has caught up with only
			// 100 of the 400 MiB of new data: the bar, rate and ETA follow
			// the upload.
			name: "uploads lag",
			set: func(p *archiver.Progress) {
				p.TotalFiles.Store(100)
				p.TotalBytes.Store(1000 << 20)
				p.ScanDone.Store(true)
				p.FilesDone.Store(50)
				p.BytesDone.Store(500 << 20)
				p.BytesRead.Store(500 << 20)
				p.BytesNew.Store(400 << 20)
				p.BytesNewStored.Store(100 << 20)
				p.BytesStored.Store(90 << 20)
			},
			want:      []string{"[####................]", "200.0 MiB/1000.0 MiB", "read 500.0 MiB", "uploaded 90.0 MiB", "20.0 MiB/s", "about 40s left", "300.0 MiB waiting for the upload"},
			percent:   0.2,
			remaining: 40,
		},
		{
			name: "scan still running",
			set: func(p *archiver.Progress) {
				p.TotalFiles.Store(300)
				p.TotalBytes.Store(500 << 20)
				p.FilesDone.Store(50)
				p.BytesDone.Store(100 << 20)
			},
			want:    []string{"50/300+ files", "100.0 MiB/500.0 MiB+"},
			wantNot: []string{"left"},
			percent: 0.2,
		},
		{
			name: "everything read, uploads remain",
			set: func(p *archiver.Progress) {
				p.TotalFiles.Store(10)
				p.TotalBytes.Store(100 << 20)
				p.ScanDone.Store(true)
				p.WalkDone.Store(true)
				p.FilesDone.Store(10)
				p.BytesDone.Store(100 << 20)
			},
			want:    []string{"10/10 files", "uploading the last packs"},
			percent: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &archiver.Progress{}
			tc.set(p)
			line := backupProgress(p)(10 * time.Second)
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("progress %q lacks %q", line, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(line, w) {
					t.Errorf("progress %q has %q", line, w)
				}
			}
			st := backupStatusOf(p, 10*time.Second)
			if st.PercentDone != tc.percent || st.SecondsRemaining != tc.remaining || st.MessageType != "status" {
				t.Errorf("status %+v: want percentDone %v, secondsRemaining %v", st, tc.percent, tc.remaining)
			}
		})
	}
}

// TestStatusStreamWritesOneJSONObjectPerLine: even a backup shorter than a
// period gets its last status line, and every line is one JSON object.
func TestStatusStreamWritesOneJSONObjectPerLine(t *testing.T) {
	p := &archiver.Progress{}
	p.TotalBytes.Store(10)
	p.BytesDone.Store(10)
	p.ScanDone.Store(true)
	var buf bytes.Buffer
	stop := startStatusStream(&buf, time.Hour, func(el time.Duration) any { return backupStatusOf(p, el) })
	stop()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one status line when stopped before a period, got %q", buf.String())
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &st); err != nil {
		t.Fatal(err)
	}
	if st["messageType"] != "status" || st["percentDone"] != 1.0 || st["totalsKnown"] != true {
		t.Fatalf("status line %s", lines[0])
	}
	if problems := jsonProblems(st, "status"); len(problems) > 0 {
		t.Fatal(problems)
	}
}

// The scan ahead costs a second pass over the metadata, so a backup whose
// progress nobody follows (output to a file or pipe, no --json) skips it.
func TestScanAheadOnlyWhenSomeoneWatches(t *testing.T) {
	c := newRoot()
	c.SetErr(&bytes.Buffer{})
	if progressWatched(c, false) {
		t.Error("a backup writing to a buffer scans ahead")
	}
	if !progressWatched(c, true) {
		t.Error("a backup with --json does not scan ahead for its status stream")
	}
}
