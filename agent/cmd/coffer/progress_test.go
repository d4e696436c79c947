package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/agent/archiver"
)

func TestBackupProgressShowsFilesBytesRateAndETA(t *testing.T) {
	p := &archiver.Progress{}
	p.FilesSeen.Store(200)
	p.FilesDone.Store(50)
	p.BytesSeen.Store(400 << 20)
	p.BytesDone.Store(100 << 20)
	line := backupProgress(p)
	// Still walking: totals are lower bounds and no ETA is promised.
	walking := line(10 * time.Second)
	if !strings.Contains(walking, "50/200+ files") || !strings.Contains(walking, "10.0 MiB/s") || strings.Contains(walking, "left") {
		t.Errorf("while walking: %q", walking)
	}
	p.WalkDone.Store(true)
	done := line(10 * time.Second)
	for _, want := range []string{"[#####...............]", "50/200 files", "100.0 MiB/400.0 MiB", "10.0 MiB/s", "about 30s left"} {
		if !strings.Contains(done, want) {
			t.Errorf("progress %q lacks %q", done, want)
		}
	}
}

func TestProgressOffATerminalPrintsPlainLines(t *testing.T) {
	var buf bytes.Buffer
	stop := startProgress(&buf, func(time.Duration) string { return "tick" })
	stop()
	if strings.Contains(buf.String(), "\r") || strings.Contains(buf.String(), "\033[") {
		t.Fatalf("terminal control codes written to a non-terminal: %q", buf.String())
	}
}
