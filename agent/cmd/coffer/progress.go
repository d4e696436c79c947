package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

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

func backupProgress(p *archiver.Progress) progressLine {
	return func(el time.Duration) string {
		files, total := p.FilesDone.Load(), p.FilesSeen.Load()
		bytes, btotal := p.BytesDone.Load(), p.BytesSeen.Load()
		walked := p.WalkDone.Load()
		of := "+"
		if walked {
			of = ""
		}
		return fmt.Sprintf("%s%d/%d%s files, %s/%s%s%s, %d warnings", bar(bytes, btotal), files, total, of,
			cli.HumanBytes(bytes), cli.HumanBytes(btotal), of, rateAndETA(bytes, btotal, el, walked), p.Warnings.Load())
	}
}

func restoreProgress(p *restorer.Progress) progressLine {
	return func(el time.Duration) string {
		bytes, total := p.BytesDone.Load(), p.BytesTotal.Load()
		return fmt.Sprintf("%s%d/%d files, %s/%s%s", bar(bytes, total), p.FilesDone.Load(), p.FilesTotal.Load(),
			cli.HumanBytes(bytes), cli.HumanBytes(total), rateAndETA(bytes, total, el, p.PlanDone.Load()))
	}
}
