package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/restorer"
)

// progressLine describes the work so far in one line: files, bytes, rate, ETA.
type progressLine func(elapsed time.Duration) string

// startProgress shows a live line on a terminal, or a plain line every ten
// seconds otherwise (logs, CI). The returned function stops it.
func startProgress(w io.Writer, line progressLine) func() {
	tty := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	every := 10 * time.Second
	if tty {
		every = 250 * time.Millisecond
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				s := line(time.Since(start))
				if tty {
					fmt.Fprintf(w, "\r\033[K%s", s)
				} else {
					fmt.Fprintln(w, s)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func rateAndETA(done, total int64, elapsed time.Duration, totalKnown bool) string {
	secs := elapsed.Seconds()
	if secs <= 0 || done <= 0 {
		return ""
	}
	rate := float64(done) / secs
	s := fmt.Sprintf(", %s/s", cli.HumanBytes(int64(rate)))
	if totalKnown && total > done {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += ", about " + eta.Round(time.Second).String() + " left"
	}
	return s
}

func bar(done, total int64) string {
	const width = 20
	if total <= 0 {
		return ""
	}
	n := int(float64(width) * float64(min(done, total)) / float64(total))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
}

// backupTotals are the files and bytes the backup will go through: the
// scan ahead's once it is done (or the walk's, if that ended first), else
// the larger of the two counts so far; known says they are final.
func backupTotals(p *archiver.Progress) (files, bytes int64, known bool) {
	files, bytes = max(p.TotalFiles.Load(), p.FilesSeen.Load()), max(p.TotalBytes.Load(), p.BytesSeen.Load())
	return files, bytes, p.ScanDone.Load() || p.WalkDone.Load()
}

// uploadedDone is how far the backup is, following the upload: the bytes
// gone through less the new data among them still waiting to be uploaded.
// When the link is fast it is the bytes gone through; when uploads lag
// (throttled, slow link) it is what the upload has caught up with, so the
// bar and ETA follow the upload rather than the reading.
func uploadedDone(p *archiver.Progress) (done, waiting int64) {
	waiting = max(0, p.BytesNew.Load()-p.BytesNewStored.Load())
	return max(0, p.BytesDone.Load()-waiting), waiting
}

func backupProgress(p *archiver.Progress) progressLine {
	return func(el time.Duration) string {
		files := p.FilesDone.Load()
		bytes, waiting := uploadedDone(p)
		tfiles, tbytes, known := backupTotals(p)
		of := "+"
		if known {
			of = ""
		}
		// Read, new and uploaded are shown apart: on a slow or throttled
		// link the upload is what the backup waits for. Reading runs at
		// most a few packs ahead of the uploads (the pack buffers are
		// their back-pressure), so the bar and rate, drawn from the bytes
		// gone through, follow the upload once those buffers are full;
		// when everything is read, the line says the rest is uploading.
		line := fmt.Sprintf("%s%d/%d%s files, %s/%s%s; read %s, new %s, uploaded %s%s, %d warnings", bar(bytes, tbytes), files, tfiles, of,
			cli.HumanBytes(bytes), cli.HumanBytes(tbytes), of, cli.HumanBytes(p.BytesRead.Load()), cli.HumanBytes(p.BytesNew.Load()),
			cli.HumanBytes(p.BytesStored.Load()), rateAndETA(bytes, tbytes, el, known), p.Warnings.Load())
		if known && files >= tfiles && p.WalkDone.Load() {
			line += "; uploading the last packs"
		} else if waiting >= 32<<20 {
			line += fmt.Sprintf("; %s waiting for the upload", cli.HumanBytes(waiting))
		}
		return line
	}
}

// backupStatus is one line of `coffer backup --json`'s progress stream,
// written to standard error once a second; the summary follows on
// standard output, as one document, when the backup ends.
type backupStatus struct {
	MessageType      string  `json:"messageType"` // "status"
	SecondsElapsed   float64 `json:"secondsElapsed"`
	SecondsRemaining float64 `json:"secondsRemaining,omitempty"`
	PercentDone      float64 `json:"percentDone"` // 0 to 1, of the bytes
	TotalFiles       int64   `json:"totalFiles"`
	FilesDone        int64   `json:"filesDone"`
	TotalBytes       int64   `json:"totalBytes"`
	BytesDone        int64   `json:"bytesDone"`
	BytesRead        int64   `json:"bytesRead"`
	BytesNew         int64   `json:"bytesNew"`
	BytesUploaded    int64   `json:"bytesUploaded"`
	BytesWaiting     int64   `json:"bytesWaitingForUpload"` // new data read but not yet uploaded (plaintext)
	TotalsKnown      bool    `json:"totalsKnown"`
	Warnings         int64   `json:"warnings"`
}

func backupStatusOf(p *archiver.Progress, el time.Duration) backupStatus {
	tfiles, tbytes, known := backupTotals(p)
	st := backupStatus{MessageType: "status", SecondsElapsed: el.Seconds(), TotalFiles: tfiles, FilesDone: p.FilesDone.Load(),
		TotalBytes: tbytes, BytesDone: p.BytesDone.Load(), BytesRead: p.BytesRead.Load(), BytesNew: p.BytesNew.Load(),
		BytesUploaded: p.BytesStored.Load(), TotalsKnown: known, Warnings: p.Warnings.Load()}
	done, waiting := uploadedDone(p)
	st.BytesWaiting = waiting
	if tbytes > 0 {
		st.PercentDone = float64(min(done, tbytes)) / float64(tbytes)
	}
	if known && done > 0 && tbytes > done && el > 0 {
		st.SecondsRemaining = float64(tbytes-done) / (float64(done) / el.Seconds())
	}
	return st
}

// startBackupProgress shows a backup's progress: the live line, or with
// --json one status object a second on standard error (standard output
// keeps the single summary document scripts already parse).
// progressWatched reports whether anyone follows a command's progress: a
// terminal on standard error, or --json's status stream. Only then is a
// backup's scan ahead worth its second pass over the metadata.
func progressWatched(c *cobra.Command, asJSON bool) bool {
	if asJSON {
		return true
	}
	f, ok := c.ErrOrStderr().(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func startBackupProgress(c *cobra.Command, asJSON bool, p *archiver.Progress) func() {
	if !asJSON {
		return startProgress(c.ErrOrStderr(), backupProgress(p))
	}
	return startStatusStream(c.ErrOrStderr(), time.Second, func(el time.Duration) any { return backupStatusOf(p, el) })
}

// startStatusStream writes status(elapsed) as one JSON line every period,
// and once more when stopped so the last figures are always seen.
func startStatusStream(w io.Writer, period time.Duration, status func(time.Duration) any) func() {
	start := time.Now()
	enc := json.NewEncoder(w)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				_ = enc.Encode(status(time.Since(start)))
				return
			case <-t.C:
				_ = enc.Encode(status(time.Since(start)))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func restoreProgress(p *restorer.Progress) progressLine {
	return func(el time.Duration) string {
		bytes, total := p.BytesDone.Load(), p.BytesTotal.Load()
		return fmt.Sprintf("%s%d/%d files, %s/%s%s", bar(bytes, total), p.FilesDone.Load(), p.FilesTotal.Load(),
			cli.HumanBytes(bytes), cli.HumanBytes(total), rateAndETA(bytes, total, el, p.PlanDone.Load()))
	}
}
