package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/repository"
)

func newInit() *cobra.Command {
	var f repoFlags
	c := &cobra.Command{
		Use:   "init --repo REPO",
		Short: "Create a repository in a folder or an Azure Blob container",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pass, err := passphrase(f.passphraseFile, "COFFER_PASSPHRASE")
			if err != nil {
				return err
			}
			be, err := f.backend(c.Context())
			if err != nil {
				return err
			}
			r, err := repository.Init(c.Context(), be, pass, repository.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Created repository %s at %s.\nKeep the passphrase safe: without it the backups cannot be read.\n", r.Config().ID[:12], be.Location())
			return nil
		},
	}
	f.add(c)
	return c
}

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
}

func newBackup() *cobra.Command {
	var (
		f           repoFlags
		asJSON      bool
		tags        []string
		host        string
		noParent    bool
		retainUntil string
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
		RunE: func(c *cobra.Command, paths []string) error {
			ctx := c.Context()
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				return vaultBackup(c, f.session, paths, tags, noParent, asJSON, retainUntil)
			}
			if len(paths) == 0 {
				return usagef("name at least one file or folder to back up")
			}
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			tc, err := f.cache(r)
			if err != nil {
				return err
			}
			opts := archiver.Options{Trees: tc, Saved: tc, Tags: tags, Hostname: host, Progress: &archiver.Progress{}, Uploads: uploadsFor(f.repo)}
			if !noParent {
				opts.Parent = findParent(ctx, r, paths, host)
			}
			stop := startProgress(c.ErrOrStderr(), backupProgress(opts.Progress))
			res, err := archiver.Backup(ctx, r, paths, opts)
			stop()
			if err != nil {
				return err
			}
			_ = tc.Trim()
			p := res.Point
			out := c.OutOrStdout()
			status := "completed"
			if len(res.Warnings) > 0 {
				status = "completed with warnings"
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				s := p.Summary
				if err := enc.Encode(backupSummary{ID: p.ID, Parent: p.Parent, Time: p.Time, Files: s.Files, Dirs: s.Dirs, Bytes: s.Bytes,
					BytesRead: s.BytesRead, BytesNew: s.BytesNew, BytesStored: s.BytesStored, Duration: s.Duration.Seconds(),
					Status: status, Warnings: append([]archiver.Warning{}, res.Warnings...)}); err != nil {
					return err
				}
			} else {
				errw := c.ErrOrStderr()
				for _, w := range res.Warnings {
					fmt.Fprintf(errw, "warning: %s: %s\n", w.Path, w.Err)
				}
				s := p.Summary
				fmt.Fprintf(errw, "Backup %s: %d files, %d folders, %s in all; read %s, new %s, stored %s, in %s.\n",
					status, s.Files, s.Dirs, humanBytes(s.Bytes), humanBytes(s.BytesRead), humanBytes(s.BytesNew), humanBytes(s.BytesStored), s.Duration.Round(time.Millisecond))
				fmt.Fprintln(out, p.ID)
			}
			if len(res.Warnings) > 0 {
				return errWarnings
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary instead of the point ID")
	c.Flags().StringSliceVar(&tags, "tag", nil, "tag the point (repeatable)")
	c.Flags().StringVar(&host, "host", "", "record this host name (default: this machine's)")
	c.Flags().BoolVar(&noParent, "force", false, "read every file, ignoring the previous point")
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
