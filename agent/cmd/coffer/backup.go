package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
)

// backupSummary is `coffer backup --json`.
type backupSummary struct {
	ID          string             `json:"id"`
	Parent      string             `json:"parent,omitempty"`
	Time        time.Time          `json:"time"`
	Files       int64              `json:"files"`
	Dirs        int64              `json:"dirs"`
	Bytes       int64              `json:"bytes"`
	BytesRead   int64              `json:"bytesRead"`
	BytesNew    int64              `json:"bytesNew"`
	BytesStored int64              `json:"bytesStored"`
	Duration    float64            `json:"durationSeconds"`
	Status      string             `json:"status"`
	Warnings    []archiver.Warning `json:"warnings"`
	// On a registered machine: the vault's job and whether its report
	// waits for the control plane.
	JobID  string `json:"jobId,omitempty"`
	Queued *bool  `json:"reportQueued,omitempty"`
}

// printBackup prints a finished backup, standalone or as a vault's job:
// the warnings and a summary on standard error and the point's ID alone on
// standard output, or everything as JSON. It returns cli.ErrWarnings when
// the backup completed with warnings, for exit code 3.
func printBackup(c *cobra.Command, res *archiver.Result, asJSON bool, job *vault.BackupResult) error {
	p, s := res.Point, res.Point.Summary
	status := "completed"
	if len(res.Warnings) > 0 {
		status = "completed with warnings"
	}
	if asJSON {
		sum := backupSummary{ID: p.ID, Parent: p.Parent, Time: p.Time, Files: s.Files, Dirs: s.Dirs, Bytes: s.Bytes,
			BytesRead: s.BytesRead, BytesNew: s.BytesNew, BytesStored: s.BytesStored, Duration: s.Duration.Seconds(),
			Status: status, Warnings: append([]archiver.Warning{}, res.Warnings...)}
		if job != nil {
			sum.JobID, sum.Queued = job.JobID, &job.Queued
		}
		if err := writeJSON(c.OutOrStdout(), sum); err != nil {
			return err
		}
	} else {
		errw := c.ErrOrStderr()
		for _, w := range res.Warnings {
			fmt.Fprintf(errw, "warning: %s: %s\n", w.Path, w.Err)
		}
		fmt.Fprintf(errw, "Backup %s: %d files, %d folders, %s in all; read %s, new %s, stored %s, in %s.\n",
			status, s.Files, s.Dirs, cli.HumanBytes(s.Bytes), cli.HumanBytes(s.BytesRead), cli.HumanBytes(s.BytesNew),
			cli.HumanBytes(s.BytesStored), s.Duration.Round(time.Millisecond))
		if job != nil {
			fmt.Fprintf(errw, "Reported to the vault as job %s.\n", job.JobID)
			if job.Queued {
				fmt.Fprintln(errw, "The control plane could not be reached; the point and outcome will be reported when it answers.")
			}
		}
		fmt.Fprintln(c.OutOrStdout(), p.ID)
	}
	if len(res.Warnings) > 0 {
		return cli.ErrWarnings
	}
	return nil
}

func newBackup() *cobra.Command {
	var (
		f           repoFlags
		asJSON      bool
		tags        []string
		host        string
		noParent    bool
		retainUntil string
		useVSS      bool
		bf          backupFilterFlags
	)
	c := &cobra.Command{
		Use:   "backup [--repo REPO] [PATH...]",
		Short: "Back up files and folders as a new recovery point",
		Long: `Back up files and folders as a new recovery point. Files unchanged since the
previous point of the same paths (same size, times and inode) are not read again.
Prints the new point's ID alone on the last line, or a summary with --json.

On a registered machine, without --repo, the backup runs as a job of the
vault: the paths default to the policy's, progress and outcome are reported,
and the point is registered with the control plane.`,
		RunE: func(c *cobra.Command, args []string) error {
			// A backup's live heap grows with the tree (the nodes of the
			// folders in progress, the index, the references), so 25% over
			// it is tens of MiB on a large tree. At 15% the backup of the
			// office set (106,000 files) peaked at 182 MiB instead of 214,
			// for 2-8% more time on the CPU-bound source set.
			setBackupGC(15)
			ctx := c.Context()
			paths, err := bf.paths(c, args)
			if err != nil {
				return err
			}
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				return vaultBackup(c, f.session, f.cacheDir, paths, tags, noParent, asJSON, retainUntil, useVSS, &bf)
			}
			if len(paths) == 0 {
				return cli.Usagef("name at least one file or folder to back up")
			}
			filter, err := bf.filter()
			if err != nil {
				return err
			}
			if f.upload, err = bf.uploadLimiter(); err != nil {
				return err
			}
			f.json = asJSON
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			tc, err := f.cache(r)
			if err != nil {
				return err
			}
			opts := archiver.Options{Trees: tc, Saved: tc, Tags: tags, Hostname: host, Progress: &archiver.Progress{}, ScanAhead: progressWatched(c, asJSON), Uploads: uploadsFor(f.repo), Workers: backupProcs(), SmallReads: smallReadProcs,
				Filter: filter, DryRun: bf.dryRun}
			var list dryRunList
			if bf.dryRun {
				opts.Reading = list.note
			}
			if !noParent {
				opts.Parent = findParent(ctx, r, paths, host)
			}
			defer tc.Close()
			var parent *crypto.ID
			if opts.Parent != nil {
				parent = &opts.Parent.Tree
			}
			tc.BeginBackup(parent, bf.dryRun)
			// A dry run is a look, not worth a snapshot of each volume.
			readFrom, vssDone, err := shadowCopies(useVSS && !bf.dryRun, paths)
			if err != nil {
				return err
			}
			defer vssDone()
			opts.ReadFrom = readFrom
			stop := startBackupProgress(c, asJSON, opts.Progress)
			res, err := archiver.Backup(ctx, r, paths, opts)
			stop()
			if err != nil {
				return backupInterrupted(ctx, c.ErrOrStderr(), opts.Progress, err)
			}
			if bf.dryRun {
				return printDryRun(c, res, &list, asJSON)
			}
			tc.EndBackup(&res.Point.Tree)
			return printBackup(c, res, asJSON, nil)
		},
	}
	f.add(c)
	bf.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary instead of the point ID")
	c.Flags().StringSliceVar(&tags, "tag", nil, "tag the point (repeatable)")
	c.Flags().StringVar(&host, "host", "", "record this host name (default: this machine's)")
	c.Flags().BoolVar(&noParent, "force", false, "read every file, ignoring the previous point")
	c.Flags().BoolVar(&useVSS, "use-vss", true, "on Windows, when elevated: read from a Volume Shadow Copy snapshot of each volume, removed afterwards")
	c.Flags().StringVar(&retainUntil, "retain-until", "", "on a registered machine: keep this point until DATE (2027-12-31 or RFC 3339), past the policy's retention")
	return c
}

// findParent picks the latest point of this host with the same paths.
// Points that fail to load are passed over: the parent only saves work.
func findParent(ctx context.Context, r *repository.Repository, paths []string, host string) *repository.Point {
	points, _ := r.Points(ctx)
	want, err := archiver.CleanPaths(paths)
	if err != nil {
		return nil
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	for i := len(points) - 1; i >= 0; i-- {
		if p := points[i]; p.Hostname == host && slices.Equal(p.Paths, want) {
			return p
		}
	}
	return nil
}

// uploadsFor picks how many packs upload at once: a local folder takes a
// pack in milliseconds, so one at a time keeps memory low; a remote store
// needs several in flight to hide its latency.
func uploadsFor(repo string) int {
	if strings.HasPrefix(repo, "http://") || strings.HasPrefix(repo, "https://") {
		return 4
	}
	return 1
}

// vaultBackup is `coffer backup` on a registered machine.
func vaultBackup(c *cobra.Command, s *vault.Session, cacheDir string, paths, tags []string, force, asJSON bool, retainUntil string, useVSS bool, bf *backupFilterFlags) error {
	ctx := c.Context()
	// The flags' exclusions add to the policy's, which vault.Backup applies.
	filter, err := bf.filter()
	if err != nil {
		return err
	}
	userLimit, err := bf.uploadLimiter()
	if err != nil {
		return err
	}
	var until *time.Time
	if retainUntil != "" {
		t, err := time.ParseInLocation("2006-01-02", retainUntil, time.Local)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, retainUntil); err != nil {
				return cli.Usagef("--retain-until %q is not a date like 2027-12-31 or an RFC 3339 time", retainUntil)
			}
		}
		if !t.After(time.Now()) {
			return cli.Usagef("--retain-until %s is not in the future", retainUntil)
		}
		until = &t
	}
	pol, err := s.Policy(ctx, "")
	switch {
	case errors.Is(err, vault.ErrNoPolicy) && len(paths) == 0:
		return cli.Usagef("this machine has no policy yet: name the paths to back up, or ask an admin to assign one (coffer admin policy assign)")
	case errors.Is(err, vault.ErrNoPolicy):
		pol = nil // back up the paths given, with no policy's exclusions or throttle
	case err != nil:
		return err
	}
	if len(paths) == 0 {
		paths = pol.Include
	}
	if pol != nil {
		// An on-demand backup keeps to the policy's bandwidth too.
		loc, _ := time.LoadLocation(pol.Schedule.TimeZone)
		if bps, limited := pol.Throttle.RateAt(time.Now(), loc); limited {
			s.Upload = rate.NewLimiter(rate.Limit(bps), int(max(bps/4, 64<<10)))
		}
	}
	// --limit-upload can only lower the policy's rate, never raise it.
	if userLimit != nil && (s.Upload == nil || userLimit.Limit() < s.Upload.Limit()) {
		s.Upload = userLimit
	}
	var exclude []string
	if pol != nil {
		exclude = pol.Exclude
	}
	o := vault.BackupOptions{Paths: paths, RetainUntil: until, Exclude: exclude, CacheDir: cacheDir, Archiver: archiver.Options{Tags: tags, Progress: &archiver.Progress{}, ScanAhead: progressWatched(c, asJSON), Uploads: 4, Workers: backupProcs(), SmallReads: smallReadProcs, Filter: filter}}
	if bf.dryRun {
		return vaultDryRun(c, s, o, force, asJSON)
	}
	readFrom, vssDone, err := shadowCopies(useVSS, paths)
	if err != nil {
		return err
	}
	defer vssDone()
	o.Archiver.ReadFrom = readFrom
	if !force {
		o.Parent = func(r *repository.Repository) *repository.Point {
			return findParent(ctx, r, paths, s.Config.MachineName)
		}
	}
	stop := startBackupProgress(c, asJSON, o.Archiver.Progress)
	res, err := s.Backup(ctx, o)
	stop()
	if err != nil {
		return backupInterrupted(ctx, c.ErrOrStderr(), o.Archiver.Progress, err)
	}
	return printBackup(c, res.Result, asJSON, res)
}
