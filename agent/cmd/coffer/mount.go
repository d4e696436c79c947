package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/mount"
	"github.com/coffer-backup/coffer/agent/repository"
)

func newMount() *cobra.Command {
	var (
		f          repoFlags
		cacheMiB   int64
		allowOther bool
	)
	c := &cobra.Command{
		Use:   "mount [--repo REPO] MOUNTPOINT",
		Short: "Show the recovery points as a read-only folder (FUSE), until unmounted or Ctrl-C",
		Long: `Mount the recovery points read-only on MOUNTPOINT, an empty folder:

  MOUNTPOINT/latest/            the newest point
  MOUNTPOINT/points/<ID>/       every point by its ID
  MOUNTPOINT/by-time/<TIME>/    every point by its time (local, 2006-01-02T15:04:05)

Each holds the tree ` + "`coffer restore`" + ` writes into its target, with sizes, modes,
times, owners, symlinks and extended attributes as backed up. Files are read
on demand, so copying one file out needs only its own chunks. In vault mode
the points are those the vault lists: soft-deleted points are left out.

It runs in the foreground; Ctrl-C (or fusermount -u MOUNTPOINT) unmounts.
Linux needs FUSE (the fuse3 package), macOS needs macFUSE; on Windows it is
not supported yet. See docs/mount.md.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if !mount.Supported {
				return mount.ErrNotSupported
			}
			if cacheMiB < 16 {
				return cli.Usagef("--cache-size: give at least 16 (MiB), not %d", cacheMiB)
			}
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			tc, err := f.cache(r)
			if err != nil {
				return err
			}
			list := mount.RepositoryPoints(r)
			if f.session != nil {
				list = vaultPoints(f, list)
			}
			dir := args[0]
			return mount.Serve(ctx, dir, mount.Options{Points: list, Trees: tc, Blobs: r, Packs: mount.RepositoryPacks(r),
				CacheBytes: cacheMiB << 20, AllowOther: allowOther}, func() {
				fmt.Fprintf(c.ErrOrStderr(), "Mounted the recovery points read-only on %s (latest/, points/, by-time/).\nPress Ctrl-C to unmount.\n", dir)
			})
		},
	}
	f.add(c)
	c.Flags().Int64Var(&cacheMiB, "cache-size", mount.DefaultCacheBytes>>20, "MiB of file chunks kept in memory, shared by every file read")
	c.Flags().BoolVar(&allowOther, "allow-other", false, "let other users read the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	return c
}

// vaultPoints lists the repository's points that the vault still lists:
// a soft-deleted point's objects stay in the container until the purge,
// but it is not shown.
func vaultPoints(f repoFlags, stored mount.PointLister) mount.PointLister {
	return func(ctx context.Context) ([]*repository.Point, error) {
		listed, err := f.session.Client.AgentPoints(ctx)
		if err != nil {
			return nil, fmt.Errorf("ask the vault for this machine's points: %w", err)
		}
		keep := make(map[string]bool, len(listed))
		for _, p := range listed {
			keep[p.ID] = true
		}
		points, loadErr := stored(ctx)
		out := points[:0]
		for _, p := range points {
			if keep[p.ID] {
				out = append(out, p)
			}
		}
		if loadErr != nil {
			fmt.Fprintln(os.Stderr, "warning: some points could not be read (run `coffer check`):", loadErr)
		}
		return out, nil
	}
}
