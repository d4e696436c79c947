//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/bench/measure"
)

// oneFileSize is the size of the file the single-file restore asks for:
// issue 13's "one 1 MiB file from the latest point".
const oneFileSize = 1 << 20

// oneFile is the file the single-file restore fetches.
type oneFile struct {
	rel  string // path relative to the dataset root, slash-separated
	size int64
	sum  [sha256.Size]byte
}

// pickOneFile chooses, deterministically, the regular file under root whose
// size is closest to want; a tie goes to the lexically first path, so the
// same dataset always gives the same file. Empty files are never chosen:
// there would be no first byte to time.
func pickOneFile(root string, want int64) (oneFile, error) {
	var best oneFile
	found := false
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size := info.Size()
		if size == 0 {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		dist, bestDist := absDiff(size, want), absDiff(best.size, want)
		if !found || dist < bestDist || (dist == bestDist && rel < best.rel) {
			best, found = oneFile{rel: rel, size: size}, true
		}
		return nil
	})
	if err != nil {
		return oneFile{}, fmt.Errorf("pick a file of about %d bytes: %w", want, err)
	}
	if !found {
		return oneFile{}, fmt.Errorf("pick a file of about %d bytes: no non-empty file under %s", want, root)
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(best.rel)))
	if err != nil {
		return oneFile{}, fmt.Errorf("read the picked file: %w", err)
	}
	best.sum = sha256.Sum256(b)
	return best, nil
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// dumpResult is one single-file restore: the tool writes the file to a
// pipe the harness reads.
type dumpResult struct {
	firstByte time.Duration // start to the first byte on the pipe
	total     time.Duration // start to the tool's exit
	maxRSS    int64
	bytes     int64
	verify    string // "ok" or what differs
}

// timeDump restores one file of the latest point to a pipe, with the page
// cache dropped first, and checks what arrives against the source. A tool
// without a dump command is skipped.
func (tg *target) timeDump(ctx context.Context, src string, f oneFile) {
	if tg.err != nil || tg.t.dump == nil || f.rel == "" {
		return
	}
	abs := filepath.Join(src, filepath.FromSlash(f.rel))
	_ = measure.DropCaches()
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	d, err := runDump(ctx, tg.t.bin, tg.t.dump(tg.repo, tg.cache, tg.backups, abs), tg.t.env(tg.cache), tg.log, f)
	if err != nil {
		tg.fail("single-file restore", err)
		return
	}
	tg.dump = &d
	progress("  %-18s %-28s %8.2f s  %7.1f MiB RSS, first byte %.3f s", tg.label, "Single-file restore", d.total.Seconds(), mib(d.maxRSS), d.firstByte.Seconds())
	if d.verify != "ok" {
		progress("  !!! %s SINGLE-FILE RESTORE %s", tg.label, d.verify)
	}
}

// runDump runs bin with args, its stdout a pipe read here, and times the
// first byte and the exit. stderr goes to the log; stdout is hashed, not
// logged, since it is the file. A content mismatch is a verify failure,
// not an error: the figures still stand and the report flags it.
func runDump(ctx context.Context, bin string, args, env []string, log io.Writer, f oneFile) (dumpResult, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = log
	cmd.WaitDelay = 5 * time.Second
	fmt.Fprintf(log, "$ %s %s  (stdout to the harness's pipe)\n", bin, strings.Join(args, " "))
	pr, pw, err := os.Pipe()
	if err != nil {
		return dumpResult{}, fmt.Errorf("pipe: %w", err)
	}
	defer pr.Close()
	cmd.Stdout = pw

	l, err := measure.ThroughLauncher(cmd)
	if err != nil {
		pw.Close()
		return dumpResult{}, err
	}
	var d dumpResult
	start := time.Now()
	err = cmd.Start()
	l.Started()
	if err != nil {
		pw.Close()
		return d, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	// Only the child holds the write end now, so EOF means it closed it.
	pw.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var readErr error
	var firstAt time.Time
	for {
		n, err := pr.Read(buf)
		if n > 0 {
			if d.bytes == 0 {
				firstAt = time.Now()
			}
			d.bytes += int64(n)
			h.Write(buf[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	waitErr := cmd.Wait()
	// From the harness's start, unless the launcher says when it started
	// the command (measure.Usage): its own start is not the command's.
	from := start
	d.total = time.Since(start)
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			d.maxRSS = measure.MaxRSSBytes(ru)
		}
		if u, ok := l.Usage(); ok {
			d.maxRSS = u.MaxRSS // the command's own, not the harness's (measure.Launch)
			if u.Wall > 0 {
				from, d.total = u.Start, u.Wall
			}
		}
		if d.bytes > 0 {
			d.firstByte = firstAt.Sub(from)
		}
		fmt.Fprintf(log, "# exit %d, wall %s, first byte %s, %d bytes, max RSS %d MiB\n",
			ps.ExitCode(), d.total.Round(time.Millisecond), d.firstByte.Round(time.Millisecond), d.bytes, d.maxRSS>>20)
	}
	if waitErr != nil {
		return d, fmt.Errorf("%s %s: %w", filepath.Base(bin), firstWord(args), waitErr)
	}
	if readErr != nil {
		return d, fmt.Errorf("read %s's output: %w", filepath.Base(bin), readErr)
	}
	switch {
	case d.bytes != f.size:
		d.verify = fmt.Sprintf("MISMATCH: %d bytes, source %d", d.bytes, f.size)
	case !bytes.Equal(h.Sum(nil), f.sum[:]):
		d.verify = "MISMATCH: content differs from the source"
	default:
		d.verify = "ok"
	}
	return d, nil
}

func firstWord(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}
