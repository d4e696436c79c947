//go:build unix

// Command cofferbench measures Coffer against restic and borg on the same
// machine, disk and data: initial backup, no-change re-backup, re-backup
// after 1% of the files changed, full restore, restore of one file of
// about 1 MiB to a pipe, repository size and peak memory, on generated
// datasets, plus Coffer against Azurite. It prints a Markdown report that
// checks each figure against issue 13's targets; `make bench` runs it.
//
// Run it from the repository root (it builds ./agent/cmd/coffer and finds
// the Azurite npm package from there).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/bench/dataset"
	"github.com/coffer-backup/coffer/bench/measure"
)

type config struct {
	scale    float64
	dir      string
	tools    []string
	datasets []dataset.Kind
	azurite  bool
	keep     bool
	out      string
	seed     uint64
	coffer   string // prebuilt coffer binary; empty builds ./agent/cmd/coffer
	repeat   int
	mount    bool
	// sizeFloor also measures the repository size floor (sizefloor.go):
	// zstd's strongest level over the whole dataset takes minutes.
	sizeFloor bool
}

func main() {
	measure.MaybeLaunch() // when started as a launcher of a measured command
	var cfg config
	var tools, datasets string
	flag.Float64Var(&cfg.scale, "scale", 1.0, "dataset size: 1.0 is 50,000 files / 1 GiB plus 2 GiB of large files; 0.05 is a quick run")
	flag.StringVar(&cfg.dir, "dir", ".bench", "work folder for datasets, repositories and logs (on the disk to measure)")
	flag.StringVar(&tools, "tools", "coffer,restic,borg", "tools to measure, comma-separated")
	flag.StringVar(&datasets, "datasets", "source,large,office", "datasets to run, comma-separated: source, large, office")
	flag.BoolVar(&cfg.azurite, "azurite", true, "also measure Coffer against a repository in Azurite")
	flag.BoolVar(&cfg.keep, "keep", false, "keep datasets, repositories and restores after the run")
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.Uint64Var(&cfg.seed, "seed", 1, "dataset seed: the same seed and scale give the same data")
	flag.IntVar(&cfg.repeat, "repeat", 1, "run each dataset's whole sequence this many times (fresh data and repositories each time) and report the median of each figure")
	flag.BoolVar(&cfg.mount, "mount", true, "also measure coffer mount against restic mount (Linux with FUSE): sequential read of a 256 MiB file, ls -lR of 50,000 files")
	flag.BoolVar(&cfg.sizeFloor, "size-floor", false, "also measure the repository size floor: every distinct chunk as one zstd stream at the strongest level (minutes per dataset)")
	flag.StringVar(&cfg.coffer, "coffer-bin", "", "measure this coffer binary (a release, say) instead of building ./agent/cmd/coffer")
	flag.Parse()
	cfg.tools = splitList(tools)
	for _, d := range splitList(datasets) {
		cfg.datasets = append(cfg.datasets, dataset.Kind(d))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cofferbench:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// marker names the file that tells cofferbench a folder is its own, so it
// never clears a folder someone pointed -dir at by mistake.
const marker = ".cofferbench"

func prepareWorkDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("work folder: %w", err)
	}
	ents, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist), err == nil && len(ents) == 0:
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", fmt.Errorf("create work folder: %w", err)
		}
		if err := os.WriteFile(filepath.Join(abs, marker), []byte("cofferbench work folder: safe to delete\n"), 0o644); err != nil {
			return "", fmt.Errorf("mark work folder: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("work folder: %w", err)
	default:
		if _, err := os.Stat(filepath.Join(abs, marker)); err != nil {
			return "", fmt.Errorf("work folder %s is not empty and was not made by cofferbench (no %s); pick another -dir", abs, marker)
		}
	}
	return abs, nil
}

// run measures every dataset and prints the report. It returns exit code 1
// when a measured command failed or a restore did not match its source.
func run(ctx context.Context, cfg config) (int, error) {
	if cfg.scale <= 0 {
		return 0, fmt.Errorf("-scale %v: must be positive", cfg.scale)
	}
	if cfg.repeat < 1 {
		return 0, fmt.Errorf("-repeat %d: must be at least 1", cfg.repeat)
	}
	work, err := prepareWorkDir(cfg.dir)
	if err != nil {
		return 0, err
	}
	// Logs are appended to across repetitions; start each run with none.
	if err := os.RemoveAll(filepath.Join(work, "logs")); err != nil {
		return 0, fmt.Errorf("clear old logs: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(work, "logs"), 0o755); err != nil {
		return 0, fmt.Errorf("create log folder: %w", err)
	}
	progress("work folder %s (logs in %s)", work, filepath.Join(work, "logs"))
	bin, err := newTrash(work)
	if err != nil {
		return 0, err
	}
	// Emptied when nothing is timed anymore: see trash.
	defer func() {
		if bin.n > 0 {
			progress("emptying the trash (%d trees in %s)", bin.n, bin.dir)
		}
		if err := bin.empty(); err != nil {
			progress("%v", err)
		}
	}()

	tools, notes := findTools(ctx, cfg.tools, work, cfg.coffer)
	for _, n := range notes {
		progress("%s", n)
	}
	rep := &report{cfg: cfg, work: work, tools: tools, notes: notes, started: time.Now()}
	rep.cachesDropped, rep.cacheNote = probeDropCaches()
	progress("page cache: %s", rep.cacheNote)

	for _, kind := range cfg.datasets {
		if ctx.Err() != nil {
			break
		}
		var runs []*datasetResult
		for i := range cfg.repeat {
			if ctx.Err() != nil {
				break
			}
			if cfg.repeat > 1 {
				progress("[%s] repetition %d of %d", kind, i+1, cfg.repeat)
			}
			res, err := runDataset(ctx, cfg, work, kind, tools, i, bin)
			if err != nil {
				rep.notes = append(rep.notes, fmt.Sprintf("dataset %s aborted: %v", kind, err))
				progress("dataset %s aborted: %v", kind, err)
			}
			if res != nil {
				runs = append(runs, res)
			}
		}
		if len(runs) > 0 {
			rep.datasets = append(rep.datasets, medianOf(runs))
		}
	}
	if cfg.mount && ctx.Err() == nil {
		rep.mount = runMount(ctx, cfg, work, tools)
	}
	if ctx.Err() != nil {
		rep.notes = append(rep.notes, "run interrupted: figures are partial")
	}

	text := rep.markdown()
	fmt.Print(text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return 0, fmt.Errorf("write report: %w", err)
		}
		progress("report written to %s", cfg.out)
	}
	if !cfg.keep {
		progress("datasets and repositories removed; logs kept in %s (use -keep to keep everything)", filepath.Join(work, "logs"))
	}
	if rep.failed() {
		progress("!!! some commands failed or a restore did not match its source: see the report")
		return 1, nil
	}
	return 0, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
