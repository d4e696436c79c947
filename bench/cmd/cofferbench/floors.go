//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/bench/measure"
)

// Floors are the least work a step must do on a dataset, timed in the same
// run on the same disk with the page cache dropped first: restic's time ÷
// a floor is the highest speedup any tool could reach on that step here.

// floorTimes are a dataset's floors; zero when not measured or failed.
type floorTimes struct {
	walk        time.Duration // metaWalk: bounds the no-change re-backup
	changed     time.Duration // changedPass: bounds the re-backup after 1% changed
	backup      time.Duration // backupPass: bounds the initial backup
	backupBytes int64         // what backupPass read
	write       time.Duration // writeFloor: bounds the full restore
	// size is sizeFloor's compressed bytes, of sizeRead read: bounds the
	// repository size of any zstd-compressing repository.
	size, sizeRead int64
	// open is a Coffer command that opens the repository and does nothing
	// else: its peak RSS bounds every Coffer command's, since each derives
	// the key with Argon2id (64 MiB) first. Nil when not measured.
	open *measure.Result
}

// dropCaches empties the page cache before each probe; the tests replace
// it so they do not disturb what else runs on the machine.
var dropCaches = func() { _ = measure.DropCaches() }

// metaWalk is the least any backup must do to see that nothing changed:
// list every folder and lstat every entry, on passWorkers goroutines. It
// returns the number of entries lstat-ed.
func metaWalk(root string) (entries int64, elapsed time.Duration, err error) {
	dropCaches()
	start := time.Now()
	entries, _, err = walkAndRead(root, nil)
	return entries, time.Since(start), err
}

// changedPass is the least a backup must do after a few files changed:
// metaWalk's walk, plus reading every changed file (paths relative to
// root) in full, on the same workers at the same time. It returns the
// bytes read from the changed files.
func changedPass(root string, changed []string) (read int64, elapsed time.Duration, err error) {
	files := make([]string, len(changed))
	for i, rel := range changed {
		files[i] = filepath.Join(root, rel)
	}
	dropCaches()
	start := time.Now()
	_, read, err = walkAndRead(root, files)
	return read, time.Since(start), err
}

// walkAndRead lists root's tree on passWorkers goroutines: each takes a
// folder and reads its entries, or a batch of up to lstatBatch entries of a
// folder and lstats them, queueing the folders it finds. A folder's first
// batch is lstat-ed by the worker that listed it; the rest are shared out,
// so a folder of 100,000 files is not left to one worker, as a backup's
// walk does not leave it (Coffer's file workers take a folder's files in
// batches). The workers also read each of files in full, taking a file or
// other work in turn so the reads overlap the walk. It returns the entries
// lstat-ed and the bytes read.
func walkAndRead(root string, files []string) (entries, read int64, err error) {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		jobs    = []walkJob{{dir: root}}
		pending = 1 + len(files) // queued or in progress
		errs    []error
		wg      sync.WaitGroup
	)
	files = slices.Clone(files)
	for w := range passWorkers() {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			var ents, got int64
			preferFile := w%2 == 1
			for {
				mu.Lock()
				for len(jobs) == 0 && len(files) == 0 && pending > 0 {
					cond.Wait()
				}
				if pending == 0 {
					mu.Unlock()
					break
				}
				var job walkJob
				var file string
				if len(files) > 0 && (preferFile || len(jobs) == 0) {
					file, files = files[len(files)-1], files[:len(files)-1]
				} else {
					job, jobs = jobs[len(jobs)-1], jobs[:len(jobs)-1]
				}
				mu.Unlock()

				var more []walkJob
				var err error
				if file != "" {
					var n int64
					n, err = readAll(file, buf)
					got += n
				} else {
					var n int64
					more, n, err = job.run()
					ents += n
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				jobs = append(jobs, more...)
				pending += len(more) - 1
				cond.Broadcast()
				mu.Unlock()
			}
			mu.Lock()
			entries += ents
			read += got
			mu.Unlock()
		})
	}
	wg.Wait()
	return entries, read, errors.Join(errs...)
}

// lstatBatch is how many of a folder's entries one walkAndRead job lstats.
const lstatBatch = 256

// walkJob is a folder to list (names nil) or some of its entries to lstat.
type walkJob struct {
	dir   string
	names []string
}

// run does the job: a listing lstats its first batch itself and returns
// the others as jobs; a batch returns the folders among its entries. n
// counts the entries lstat-ed.
func (j walkJob) run() (more []walkJob, n int64, err error) {
	names := j.names
	if names == nil {
		if names, err = readNames(j.dir); err != nil {
			return nil, 0, err
		}
		for rest := names[min(len(names), lstatBatch):]; len(rest) > 0; rest = rest[min(len(rest), lstatBatch):] {
			more = append(more, walkJob{dir: j.dir, names: rest[:min(len(rest), lstatBatch)]})
		}
		names = names[:min(len(names), lstatBatch)]
	}
	for _, name := range names {
		p := filepath.Join(j.dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			return more, n, fmt.Errorf("walk: %w", err)
		}
		n++
		if fi.IsDir() {
			more = append(more, walkJob{dir: p})
		}
	}
	return more, n, nil
}

// readNames returns dir's entry names, never nil.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("walk: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("walk: read %s: %w", dir, err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// readAll reads path to its end through buf and returns the bytes read.
func readAll(path string, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read changed file: %w", err)
	}
	defer f.Close()
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read changed file %s: %w", path, err)
		}
	}
}

// pieceSize is writeFloor's unit: all-zero pieces are left as holes.
const pieceSize = 1 << 20

var zeroPiece [pieceSize]byte

// heldFile is a file writeFloor recreates: its non-zero pieces in memory.
type heldFile struct {
	rel          string
	mode         fs.FileMode
	atime, mtime time.Time
	size         int64
	pieces       []heldPiece
	holes        bool // some piece was all zeros and is not written
}

type heldPiece struct {
	off  int64
	data []byte
}

// writeFloor is the restore's own write pattern with nothing else. Not
// timed: it reads every regular file under src into memory (non-zero
// 1 MiB pieces only, so sparse files keep their holes) and notes every
// folder. Then, with the page cache dropped, it times creating the folders
// under dst and, on passWorkers goroutines, each file: create (O_EXCL,
// 0600), write its pieces, set its size if it has holes, close, chmod and
// chtimes. No fsync: neither restic nor Coffer syncs a restore. dst is
// disposed of afterwards with discard. skipped counts entries that are
// neither regular files nor folders; they are left out.
func writeFloor(src, dst string, discard func(string) error) (elapsed time.Duration, skipped int, err error) {
	elapsed, skipped, err = recreate(src, dst)
	if rmErr := discard(dst); rmErr != nil && err == nil {
		err = fmt.Errorf("write floor: %w", rmErr)
	}
	if err != nil {
		return 0, skipped, err
	}
	return elapsed, skipped, nil
}

// recreate is writeFloor without removing dst.
func recreate(src, dst string) (elapsed time.Duration, skipped int, err error) {
	if err := os.RemoveAll(dst); err != nil {
		return 0, 0, fmt.Errorf("write floor: %w", err)
	}
	var dirs []string
	var files []*heldFile
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, rel)
		case d.Type().IsRegular():
			files = append(files, &heldFile{rel: rel})
		default:
			skipped++
		}
		return nil
	})
	if err != nil {
		return 0, skipped, fmt.Errorf("write floor: list %s: %w", src, err)
	}
	defer func() {
		// Up to the dataset's size in memory: give it back before the
		// next dataset.
		for _, f := range files {
			f.pieces = nil
		}
		files = nil
		debug.FreeOSMemory()
	}()
	if _, err := onWorkers(len(files), func(int) func(int) (int64, error) {
		buf := make([]byte, pieceSize)
		return func(i int) (int64, error) { return 0, files[i].load(src, buf) }
	}); err != nil {
		return 0, skipped, fmt.Errorf("write floor: %w", err)
	}

	dropCaches()
	start := time.Now()
	for _, rel := range dirs {
		if err := os.MkdirAll(filepath.Join(dst, rel), 0o755); err != nil {
			return 0, skipped, fmt.Errorf("write floor: %w", err)
		}
	}
	_, err = onWorkers(len(files), func(int) func(int) (int64, error) {
		return func(i int) (int64, error) { return 0, files[i].write(dst) }
	})
	elapsed = time.Since(start)
	if err != nil {
		return 0, skipped, fmt.Errorf("write floor: %w", err)
	}
	return elapsed, skipped, nil
}

func (h *heldFile) load(src string, buf []byte) error {
	f, err := os.Open(filepath.Join(src, h.rel))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h.mode, h.mtime, h.atime = fi.Mode(), fi.ModTime(), fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		h.atime = time.Unix(st.Atim.Unix())
	}
	for {
		k, err := io.ReadFull(f, buf)
		if k > 0 {
			if bytes.Equal(buf[:k], zeroPiece[:k]) {
				h.holes = true
			} else {
				h.pieces = append(h.pieces, heldPiece{off: h.size, data: bytes.Clone(buf[:k])})
			}
			h.size += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", h.rel, err)
		}
	}
}

func (h *heldFile) write(dst string) error {
	p := filepath.Join(dst, h.rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	for _, pc := range h.pieces {
		if _, err := f.WriteAt(pc.data, pc.off); err != nil {
			f.Close()
			return err
		}
	}
	if h.holes {
		if err := f.Truncate(h.size); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(p, h.mode.Perm()); err != nil {
		return err
	}
	return os.Chtimes(p, h.atime, h.mtime)
}

// The floors as runDataset measures them: a failure is a note, and leaves
// the floor at zero.

func (d *datasetResult) floorFailed(what string, err error) {
	n := fmt.Sprintf("%s floor not measured: %v", what, err)
	d.notes = append(d.notes, n)
	progress("[%s] %s", d.kind, n)
}

func (d *datasetResult) measureBackupFloor(src, out string) {
	n, t, err := backupPass(src, out)
	if err != nil {
		d.floorFailed("Initial backup", err)
		return
	}
	d.floors.backup, d.floors.backupBytes = t, n
	progress("[%s] floor, initial backup (read extents + CDC + BLAKE3 + compress + AES-GCM + write): %.3f s, %.0f MB/s of %.1f MiB read", d.kind, t.Seconds(), mbps(n, t), mib(n))
}

// measureOpenFloor runs `coffer config show` against tg's repository: the
// command opens the repository (reads its config and key file and derives
// the key with Argon2id) and prints a few settings, nothing else. Its peak
// RSS is the least any Coffer command takes.
func (d *datasetResult) measureOpenFloor(ctx context.Context, tg *target) {
	if tg == nil || tg.err != nil {
		return
	}
	dropCaches()
	r, err := tg.run(ctx, []string{"config", "show", "--repo", tg.repo, "--cache-dir", tg.cache}, "")
	if err != nil {
		d.floorFailed("Memory (open the repository)", err)
		return
	}
	d.floors.open = &r
	progress("[%s] floor, memory (coffer config show: open the repository only): %.1f MiB RSS, %.2f s", d.kind, mib(r.MaxRSS), r.Wall.Seconds())
}

func (d *datasetResult) measureWalkFloor(src string) {
	n, t, err := metaWalk(src)
	if err != nil {
		d.floorFailed("No-change re-backup", err)
		return
	}
	d.floors.walk = t
	progress("[%s] floor, no-change re-backup (walk + lstat %d entries): %.3f s", d.kind, n, t.Seconds())
}

func (d *datasetResult) measureChangedFloor(src string) {
	n, t, err := changedPass(src, d.changed.Files)
	if err != nil {
		d.floorFailed("Re-backup after 1% changed", err)
		return
	}
	d.floors.changed = t
	progress("[%s] floor, 1%% re-backup (walk + read %d changed file(s), %d bytes): %.3f s", d.kind, len(d.changed.Files), n, t.Seconds())
}

func (d *datasetResult) measureWriteFloor(src, dst string, discard func(string) error) {
	t, skipped, err := writeFloor(src, dst, discard)
	if skipped > 0 {
		d.notes = append(d.notes, fmt.Sprintf("Full restore floor: %d entries neither files nor folders left out", skipped))
	}
	if err != nil {
		d.floorFailed("Full restore", err)
		return
	}
	d.floors.write = t
	progress("[%s] floor, full restore (create + write + chmod + chtimes): %.3f s, %.0f MB/s", d.kind, t.Seconds(), mbps(d.stats.Bytes, t))
}
