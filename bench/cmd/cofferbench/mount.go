//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/bench/measure"
)

// The mount benchmark: one point holding a large file and a many-file
// tree, mounted by Coffer and by restic; each figure is taken on a fresh
// mount after dropping the page cache (when allowed), so nothing is read
// from a cache either tool kept.
const (
	mountFileSize = 256 << 20
	mountFiles    = 50_000
	// Each figure is the median of this many fresh mounts.
	mountReadRuns = 5
	mountListRuns = 3

	// Coffer's targets against restic's mount.
	targetMountReadSpeedup = 1.5 // sequential read at least this much faster
	targetMountLsRatio     = 1.0 // ls -lR at most this many times restic's time
	// From Azurite, at least 20× MARS's documented 6 MB/s mounted restore.
	targetMountAzuriteMBps = 20 * 6
	mountAzuriteRuns       = 3
)

// mountTool is one tool's mount figures.
type mountTool struct {
	name    string
	reads   []time.Duration // sequential read of the large file, per fresh mount
	lists   []time.Duration // ls -lR of the many-file tree, per fresh mount
	lsLines int
	err     error
}

// mountResult is the whole mount benchmark.
type mountResult struct {
	fileSize int64
	files    int
	root     bool // coffer mount could raise its read-ahead
	tools    []*mountTool
	azurite  *mountTool // coffer mount of a container in Azurite
	azNote   string     // why Azurite was not measured
	notes    []string
}

func (m *mountResult) byName(name string) *mountTool {
	for _, t := range m.tools {
		if t.name == name {
			return t
		}
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// mountSkip says why this machine cannot run the mount benchmark, or "".
func mountSkip() string {
	if runtime.GOOS != "linux" {
		return "mount benchmark skipped: it runs on Linux only"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "mount benchmark skipped: /dev/fuse is missing"
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err := exec.LookPath("fusermount"); err != nil {
			return "mount benchmark skipped: fusermount is missing (`apt-get install fuse3`)"
		}
	}
	return ""
}

// runMount measures coffer mount and restic mount on the same data.
func runMount(ctx context.Context, cfg config, work string, tools []*tool) *mountResult {
	res := &mountResult{fileSize: max(int64(float64(mountFileSize)*cfg.scale), 16<<20), files: max(int(float64(mountFiles)*cfg.scale), 1000),
		root: os.Geteuid() == 0}
	if note := mountSkip(); note != "" {
		res.notes = append(res.notes, note)
		progress("%s", note)
		return res
	}
	base := filepath.Join(work, "mount")
	if err := os.RemoveAll(base); err != nil {
		res.notes = append(res.notes, fmt.Sprintf("mount benchmark aborted: clear %s: %v", base, err))
		return res
	}
	if !cfg.keep {
		defer os.RemoveAll(base)
	}
	src := filepath.Join(base, "data")
	progress("[mount] generating a %.0f MiB file and %d small files", mib(res.fileSize), res.files)
	sum, err := genMountData(src, res.fileSize, res.files, cfg.seed)
	if err != nil {
		res.notes = append(res.notes, fmt.Sprintf("mount benchmark aborted: generate data: %v", err))
		return res
	}
	type setup struct {
		mt *mountTool
		t  *tool
		tg *target
	}
	var ready []setup
	for _, t := range tools {
		if t.name != "coffer" && t.name != "restic" {
			continue // borg mount needs llfuse, which Debian's borg lacks by default
		}
		mt := &mountTool{name: t.name}
		res.tools = append(res.tools, mt)
		tg, err := newTarget(t, t.name, base, "mount")
		if err != nil {
			mt.err = err
			continue
		}
		defer tg.log.Close()
		tg.initRepo(ctx)
		tg.timeBackup(ctx, stepBackup, src)
		if tg.err != nil {
			mt.err = tg.err
			continue
		}
		ready = append(ready, setup{mt, t, tg})
	}
	// The tools take turns, run by run, so a change in the machine's load
	// during the benchmark falls on both alike.
	for _, phase := range []struct {
		name string
		runs int
		fn   func(mt *mountTool, root string, log io.Writer) error
	}{
		{"sequential read", mountReadRuns, func(mt *mountTool, root string, _ io.Writer) error { return mt.read(root, sum) }},
		{"ls -lR", mountListRuns, func(mt *mountTool, root string, log io.Writer) error { return mt.list(ctx, root, log) }},
	} {
		for i := range phase.runs {
			for _, s := range ready {
				if s.mt.err != nil || ctx.Err() != nil {
					continue
				}
				progress("  %s mount: %s %d of %d", s.t.name, phase.name, i+1, phase.runs)
				mnt := filepath.Join(base, "mnt-"+s.t.name)
				if err := os.MkdirAll(mnt, 0o755); err != nil {
					s.mt.err = err
					continue
				}
				if err := withMount(ctx, s.t, s.tg, mnt, src, func(root string) error { return phase.fn(s.mt, root, s.tg.log) }); err != nil {
					s.mt.err = fmt.Errorf("%s: %w", phase.name, err)
					progress("  %s mount: FAILED %v (log: %s)", s.t.name, s.mt.err, s.tg.log.Name())
				}
			}
		}
	}
	res.measureAzurite(ctx, cfg, base, src, sum, tools)
	return res
}

// measureAzurite times coffer mount's sequential read from a container in
// Azurite, against the 20× MARS target.
func (res *mountResult) measureAzurite(ctx context.Context, cfg config, base, src string, sum [32]byte, tools []*tool) {
	if ctx.Err() != nil {
		return
	}
	tg, stop, note := startAzurite(ctx, cfg, base, "mount", tools)
	if tg == nil {
		res.azNote = note
		return
	}
	defer stop()
	defer tg.log.Close()
	mt := &mountTool{name: "coffer on Azurite"}
	res.azurite = mt
	tg.initRepo(ctx)
	tg.timeBackup(ctx, stepBackup, src)
	if tg.err != nil {
		mt.err = tg.err
		return
	}
	mnt := filepath.Join(base, "mnt-coffer-azurite")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		mt.err = err
		return
	}
	for i := range mountAzuriteRuns {
		progress("  coffer mount of Azurite: sequential read %d of %d", i+1, mountAzuriteRuns)
		if err := withMount(ctx, tg.t, tg, mnt, src, func(root string) error { return mt.read(root, sum) }); err != nil {
			mt.err = fmt.Errorf("sequential read: %w", err)
			progress("  coffer mount of Azurite: FAILED %v (log: %s)", mt.err, tg.log.Name())
			return
		}
	}
}

// genMountData writes src/big (incompressible, so every tool stores and
// decrypts every byte) and src/many (files in folders of 100, as a project
// or a mail store holds them). It returns the big file's SHA-256.
func genMountData(src string, size int64, files int, seed uint64) ([32]byte, error) {
	var sum [32]byte
	if err := os.MkdirAll(filepath.Join(src, "many"), 0o755); err != nil {
		return sum, err
	}
	f, err := os.Create(filepath.Join(src, "big"))
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'm', 'o', 'u', 'n', 't'})
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rng, size)); err != nil {
		f.Close()
		return sum, err
	}
	if err := f.Close(); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	text := bytes.Repeat([]byte("coffer mount benchmark line\n"), 64)
	for i := range files {
		dir := filepath.Join(src, "many", fmt.Sprintf("d%03d", i/5000), fmt.Sprintf("e%04d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return sum, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.txt", i)), text[:i%len(text)], 0o644); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// read times a sequential read of the large file and checks its bytes.
func (mt *mountTool) read(root string, want [32]byte) error {
	f, err := os.Open(filepath.Join(root, "big"))
	if err != nil {
		return err
	}
	defer f.Close()
	// Plain 1 MiB reads, as cp or dd bs=1M make them (io.Copy to
	// io.Discard would read 8 KiB at a time).
	buf := make([]byte, 1<<20)
	start := time.Now()
	for err == nil {
		_, err = f.Read(buf)
	}
	if err == io.EOF {
		err = nil
	}
	d := time.Since(start)
	if err != nil {
		return fmt.Errorf("read the large file: %w", err)
	}
	// The check reads the file again, untimed: hashing while timing would
	// add the same CPU time to every tool and blur the comparison. The
	// second read gets what the first left in the page cache (or, were it
	// evicted, what the mount serves again).
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return fmt.Errorf("read the large file again to check it: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return errors.New("the large file read through the mount differs from the source")
	}
	mt.reads = append(mt.reads, d)
	return nil
}

// list times ls -lR of the many-file tree.
func (mt *mountTool) list(ctx context.Context, root string, log io.Writer) error {
	cmd := exec.CommandContext(ctx, "ls", "-lR", filepath.Join(root, "many"))
	var out lineCounter
	cmd.Stdout, cmd.Stderr = &out, log
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return fmt.Errorf("ls -lR: %w", err)
	}
	mt.lists = append(mt.lists, d)
	mt.lsLines = out.n
	return nil
}

type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// withMount mounts the tool's repository on mnt, drops the page cache once
// the backed-up folder shows, runs fn on that folder, then stops the mount
// with Ctrl-C as a user would and waits for it to be gone.
func withMount(ctx context.Context, t *tool, tg *target, mnt, src string, fn func(root string) error) error {
	var args []string
	switch t.name {
	case "coffer":
		args = []string{"mount", "--repo", tg.repo, "--cache-dir", tg.cache, mnt}
	case "restic":
		args = []string{"mount", "--repo", tg.repo, mnt}
	}
	cmd := exec.CommandContext(ctx, t.bin, args...)
	cmd.Env = append(os.Environ(), t.env(tg.cache)...)
	cmd.Stdout, cmd.Stderr = tg.log, tg.log
	fmt.Fprintf(tg.log, "$ %s %s\n", t.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			// restic reports an interruption with exit code 130.
			var ee *exec.ExitError
			if err != nil && !(t.name == "restic" && errors.As(err, &ee) && ee.ExitCode() == 130) {
				return fmt.Errorf("%s mount did not exit cleanly on Ctrl-C: %w", t.name, err)
			}
			if isMounted(mnt) {
				return fmt.Errorf("%s mount exited on Ctrl-C but left %s mounted", t.name, mnt)
			}
			return nil
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-exited
			exec.Command("fusermount", "-u", "-z", mnt).Run()
			return fmt.Errorf("%s mount still ran a minute after Ctrl-C", t.name)
		}
	}
	// Coffer shows the backed-up path in full below latest/; restic 0.14
	// keeps only its last element below snapshots/latest/, newer restic
	// the full path.
	candidates := []string{
		filepath.Join(mnt, "latest", src),
		filepath.Join(mnt, "snapshots", "latest", filepath.Base(src)),
		filepath.Join(mnt, "snapshots", "latest", src),
	}
	deadline := time.Now().Add(2 * time.Minute)
	var root string
	for root == "" {
		for _, c := range candidates {
			if _, err := os.Stat(filepath.Join(c, "big")); err == nil {
				root = c
				break
			}
		}
		if root != "" {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%s mount exited before serving: %v (see the log)", t.name, err)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s mount did not show the point within 2 minutes", t.name)
		}
	}
	_ = measure.DropCaches()
	err := fn(root)
	return errors.Join(err, stop())
}

// markdown is the mount section of the report.
func (m *mountResult) markdown(b *bytes.Buffer) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Mount: one point with a %.0f MiB file and %d small files\n\n", mib(m.fileSize), m.files)
	for _, n := range m.notes {
		w("- **Note:** %s\n", n)
	}
	if len(m.tools) == 0 {
		w("\n")
		return
	}
	w("Each figure is the median of fresh mounts (`coffer mount`, `restic mount`; %d for reads, %d for `ls -lR`, the tools taking turns), the page cache dropped after mounting when allowed; after each timed read the file is read again, untimed, and its SHA-256 checked.\n\n", mountReadRuns, mountListRuns)
	readAhead := "as root, so it raised its mount's kernel read-ahead to 4 MiB (1 MiB requests); restic keeps the kernel's 128 KiB"
	if !m.root {
		readAhead = "not as root, so both mounts keep the kernel's 128 KiB read-ahead"
	}
	w("coffer mount ran %s.\n\n", readAhead)
	w("| Measure | coffer | restic | coffer vs restic | Target | Met |\n")
	w("|---|---:|---:|---:|---|---|\n")
	cof, res := m.byName("coffer"), m.byName("restic")
	cell := func(t *mountTool, ds []time.Duration, runs int, speed bool) string {
		switch {
		case t == nil:
			return "not run"
		case t.err != nil && len(ds) < runs:
			return "failed"
		case speed:
			return fmt.Sprintf("%.0f MB/s (%.2f s)", mbps(m.fileSize, median(ds)), median(ds).Seconds())
		}
		return fmt.Sprintf("%.2f s", median(ds).Seconds())
	}
	ok := func(t *mountTool, ds []time.Duration, runs int) bool { return t != nil && len(ds) == runs }
	reads := func(t *mountTool) []time.Duration {
		if t == nil {
			return nil
		}
		return t.reads
	}
	lists := func(t *mountTool) []time.Duration {
		if t == nil {
			return nil
		}
		return t.lists
	}
	ratio, tgtMet := "", ""
	if ok(cof, reads(cof), mountReadRuns) && ok(res, reads(res), mountReadRuns) {
		x := median(res.reads).Seconds() / median(cof.reads).Seconds()
		ratio, tgtMet = fmt.Sprintf("%.2f× faster", x), met(true, x >= targetMountReadSpeedup)
	}
	w("| Sequential read of the large file | %s | %s | %s | ≥ %.1f× faster | %s |\n",
		cell(cof, reads(cof), mountReadRuns, true), cell(res, reads(res), mountReadRuns, true), ratio, targetMountReadSpeedup, tgtMet)
	ratio, tgtMet = "", ""
	if ok(cof, lists(cof), mountListRuns) && ok(res, lists(res), mountListRuns) {
		x := median(cof.lists).Seconds() / median(res.lists).Seconds()
		ratio, tgtMet = fmt.Sprintf("%.2f× the time", x), met(true, x <= targetMountLsRatio)
	}
	w("| `ls -lR` of the small files | %s | %s | %s | no slower | %s |\n",
		cell(cof, lists(cof), mountListRuns, false), cell(res, lists(res), mountListRuns, false), ratio, tgtMet)
	if az := m.azurite; az != nil {
		c, tgtMet := "failed", ""
		if len(az.reads) == mountAzuriteRuns {
			speed := mbps(m.fileSize, median(az.reads))
			c, tgtMet = fmt.Sprintf("%.0f MB/s (%.2f s)", speed, median(az.reads).Seconds()), met(true, speed >= targetMountAzuriteMBps)
		}
		w("| Sequential read, repository in Azurite (median of %d) | %s | not run | | ≥ %d MB/s (20× MARS's 6 MB/s) | %s |\n", mountAzuriteRuns, c, targetMountAzuriteMBps, tgtMet)
	} else if m.azNote != "" {
		w("\nFrom Azurite: %s\n", m.azNote)
	}
	if cof != nil && res != nil && cof.lsLines != res.lsLines && cof.lsLines > 0 && res.lsLines > 0 {
		w("\n`ls -lR` printed %d lines through coffer's mount and %d through restic's.\n", cof.lsLines, res.lsLines)
	}
	for _, t := range append(m.tools[:len(m.tools):len(m.tools)], m.azurite) {
		if t != nil && t.err != nil {
			w("\n%s mount failed: %s\n", t.name, strings.Join(strings.Fields(t.err.Error()), " "))
		}
	}
	w("\n")
}

func (m *mountResult) failed() bool {
	if m.azurite != nil && m.azurite.err != nil {
		return true
	}
	for _, t := range m.tools {
		if t.err != nil {
			return true
		}
	}
	return false
}

// isMounted reports whether dir is a mount point now.
func isMounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}
