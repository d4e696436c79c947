package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/throttle"
	"github.com/coffer-backup/coffer/agent/vault"
)

// backupFilterFlags are restic's backup options: what to leave out, where
// the paths come from, a dry run and an upload limit.
type backupFilterFlags struct {
	exclude, iexclude         []string
	excludeFile, iexcludeFile []string
	ifPresent                 []string
	caches, oneFS             bool
	filesFrom                 []string
	dryRun                    bool
	limitUpload               int // KiB/s, as restic counts
}

func (b *backupFilterFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringArrayVarP(&b.exclude, "exclude", "e", nil, "leave out files and folders matching `PATTERN` (repeatable; syntax in docs/restic-to-coffer.md)")
	fl.StringArrayVar(&b.iexclude, "iexclude", nil, "like --exclude, ignoring case (`PATTERN`)")
	fl.StringArrayVar(&b.excludeFile, "exclude-file", nil, "read exclude patterns from `FILE`, one a line; # starts a comment")
	fl.StringArrayVar(&b.iexcludeFile, "iexclude-file", nil, "like --exclude-file, ignoring case (`FILE`)")
	fl.StringArrayVar(&b.ifPresent, "exclude-if-present", nil, "leave out folders holding a file `NAME[:HEADER]` (that starts with HEADER, if given)")
	fl.BoolVar(&b.caches, "exclude-caches", false, "leave out folders holding a CACHEDIR.TAG with the standard signature")
	fl.BoolVarP(&b.oneFS, "one-file-system", "x", false, "stay on the file systems of the paths given; mount points below them are kept as empty folders")
	fl.StringArrayVar(&b.filesFrom, "files-from", nil, "read the paths to back up from `FILE` (- for standard input), one a line; # starts a comment, globs are expanded")
	fl.BoolVarP(&b.dryRun, "dry-run", "n", false, "list what would be read and count what would be stored, writing nothing")
	fl.IntVar(&b.limitUpload, "limit-upload", 0, "limit uploads to `KIB` KiB/s (0: no limit; in a vault, the lower of this and the policy's)")
}

// filter builds the archiver's filter from the flags, with the policy's
// exclusions first in a vault.
func (b *backupFilterFlags) filter() (*archiver.Filter, error) {
	f := archiver.Filter{Exclude: slices.Clone(b.exclude), IExclude: slices.Clone(b.iexclude),
		IfPresent: b.ifPresent, Caches: b.caches, OneFileSystem: b.oneFS}
	for _, name := range b.excludeFile {
		lines, err := readLines(name)
		if err != nil {
			return nil, cli.Usagef("--exclude-file: %v", err)
		}
		f.Exclude = append(f.Exclude, lines...)
	}
	for _, name := range b.iexcludeFile {
		lines, err := readLines(name)
		if err != nil {
			return nil, cli.Usagef("--iexclude-file: %v", err)
		}
		f.IExclude = append(f.IExclude, lines...)
	}
	filter, err := archiver.NewFilter(f)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	return filter, nil
}

// paths adds the paths of --files-from to those on the command line.
func (b *backupFilterFlags) paths(c *cobra.Command, args []string) ([]string, error) {
	out := slices.Clone(args)
	for _, name := range b.filesFrom {
		var lines []string
		var err error
		if name == "-" {
			lines, err = scanLines(c.InOrStdin())
		} else {
			lines, err = readLines(name)
		}
		if err != nil {
			return nil, cli.Usagef("--files-from: %v", err)
		}
		for _, l := range lines {
			// A glob that matches nothing is kept as written, so the backup
			// says which path is missing instead of silently skipping it.
			if strings.ContainsAny(l, "*?[") {
				if m, err := filepath.Glob(l); err == nil && len(m) > 0 {
					out = append(out, m...)
					continue
				}
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// uploadLimiter is the --limit-upload rate, or nil for none.
func (b *backupFilterFlags) uploadLimiter() (*rate.Limiter, error) {
	if b.limitUpload < 0 {
		return nil, cli.Usagef("--limit-upload %d: give a rate in KiB/s, or 0 for no limit", b.limitUpload)
	}
	if b.limitUpload == 0 {
		return nil, nil
	}
	bps := int64(b.limitUpload) * 1024
	return rate.NewLimiter(rate.Limit(bps), throttle.Burst(bps)), nil
}

// readLines reads a list file: one entry a line, blank lines and lines
// starting with # left out, surrounding spaces trimmed (as restic does).
func readLines(name string) ([]string, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	lines, err := scanLines(fh)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return lines, nil
}

func scanLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// dryRunList collects the files a dry run would read, for printing sorted
// once it is done: the readers find them in no set order.
type dryRunList struct {
	mu    sync.Mutex
	files []dryRunFile
}

type dryRunFile struct {
	Path   string `json:"path"`
	Status string `json:"status"` // "new" or "changed"
}

func (l *dryRunList) note(path string, isNew bool) {
	st := "changed"
	if isNew {
		st = "new"
	}
	l.mu.Lock()
	l.files = append(l.files, dryRunFile{path, st})
	l.mu.Unlock()
}

// dryRunSummary is `coffer backup --dry-run --json`.
type dryRunSummary struct {
	DryRun    bool               `json:"dryRun"`
	Parent    string             `json:"parent,omitempty"`
	Files     int64              `json:"files"`
	Dirs      int64              `json:"dirs"`
	Bytes     int64              `json:"bytes"`
	BytesRead int64              `json:"bytesRead"`
	BytesNew  int64              `json:"bytesNew"`
	Duration  float64            `json:"durationSeconds"`
	Read      []dryRunFile       `json:"read"`
	Warnings  []archiver.Warning `json:"warnings"`
}

// printDryRun prints what a dry run found: each file that would be read on
// standard output, and a summary on standard error; or all as JSON.
func printDryRun(c *cobra.Command, res *archiver.Result, list *dryRunList, asJSON bool) error {
	slices.SortFunc(list.files, func(x, y dryRunFile) int { return strings.Compare(x.Path, y.Path) })
	p, s := res.Point, res.Point.Summary
	if asJSON {
		if err := writeJSON(c.OutOrStdout(), dryRunSummary{DryRun: true, Parent: p.Parent, Files: s.Files, Dirs: s.Dirs, Bytes: s.Bytes,
			BytesRead: s.BytesRead, BytesNew: s.BytesNew, Duration: s.Duration.Seconds(),
			Read: append([]dryRunFile{}, list.files...), Warnings: append([]archiver.Warning{}, res.Warnings...)}); err != nil {
			return err
		}
	} else {
		out, errw := c.OutOrStdout(), c.ErrOrStderr()
		for _, f := range list.files {
			fmt.Fprintf(out, "%-7s %s\n", f.Status, f.Path)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(errw, "warning: %s: %s\n", w.Path, w.Err)
		}
		fmt.Fprintf(errw, "Dry run, nothing written: %d files, %d folders, %s in all; would read %s in %d files and add %s new (before compression), in %s.\n",
			s.Files, s.Dirs, cli.HumanBytes(s.Bytes), cli.HumanBytes(s.BytesRead), len(list.files), cli.HumanBytes(s.BytesNew),
			s.Duration.Round(time.Millisecond))
	}
	if len(res.Warnings) > 0 {
		return cli.ErrWarnings
	}
	return nil
}

// vaultDryRun is `coffer backup --dry-run` on a registered machine: the
// same walk as the vault's backup, with the policy's exclusions, but no job
// is started and nothing is written, so the vault records nothing.
func vaultDryRun(c *cobra.Command, s *vault.Session, o vault.BackupOptions, force, asJSON bool) error {
	ctx := c.Context()
	r, err := s.Repository(ctx)
	if err != nil {
		return err
	}
	if _, err := r.LoadIndex(ctx); err != nil {
		return err
	}
	opts := o.Archiver
	opts.DryRun, opts.Hostname = true, s.Config.MachineName
	filter := archiver.Filter{}
	if opts.Filter != nil {
		filter = *opts.Filter
	}
	filter.Exclude = append(slices.Clone(o.Exclude), filter.Exclude...)
	opts.Filter = &filter
	if !force {
		opts.Parent = findParent(ctx, r, o.Paths, s.Config.MachineName)
	}
	var list dryRunList
	opts.Reading = list.note
	res, err := archiver.Backup(ctx, r, o.Paths, opts)
	if err != nil {
		return err
	}
	return printDryRun(c, res, &list, asJSON)
}
