package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/restorer"
)

func newRestore() *cobra.Command {
	var (
		f        repoFlags
		target   string
		include  []string
		conflict string
		asJSON   bool
		deleted  bool
	)
	c := &cobra.Command{
		Use:   "restore --repo REPO POINT|latest --target DIR",
		Short: "Restore a recovery point, or parts of it, into a folder",
		Long: `Restore a recovery point, or the parts named with --include, below --target.
A path that already exists is kept and the restored one is written beside it
as "name (restored DATE TIME).ext" (--conflict copy, the default), replaced
(--conflict overwrite) or left alone (--conflict skip).

On a machine registered with a vault, the restore is a job of the vault
that admins see with its outcome (` + "`coffer admin jobs VAULT --type restore`" + `),
and a point an admin deleted is restored only with --deleted.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			cf, err := restorer.ParseConflict(conflict)
			if err != nil {
				return cli.Usagef("--conflict: %v", err)
			}
			if target == "" {
				return cli.Usagef("give the folder to restore into with --target")
			}
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			p, err := restorePoint(ctx, c, &f, r, args[0], deleted)
			if err != nil {
				return err
			}
			tc, err := f.cache(r)
			if err != nil {
				return err
			}
			defer tc.Close()
			tc.UseBundle(p.Tree, len(include) == 0)
			prog := &restorer.Progress{}
			job := startRestoreJob(ctx, c.ErrOrStderr(), &f, prog)
			stop := startProgress(c.ErrOrStderr(), restoreProgress(prog))
			res, err := restorer.Restore(ctx, r, p, restorer.Options{Target: target, Include: include, Conflict: cf,
				Owner: fsmeta.IsRoot(), Trees: tc, Progress: prog})
			stop()
			job.finish(ctx, c.ErrOrStderr(), restoreOutcome{point: p, source: f.fromMachine, target: target, res: res, err: err})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"point": p.ID, "target": target, "files": res.Files, "dirs": res.Dirs,
					"links": res.Links, "skipped": res.Skipped, "copies": nonNil(res.Copies), "failed": nonNil(res.Failed), "warnings": nonNil(res.Warnings),
					"renamed": nonNil(res.Renamed)}); err != nil {
					return err
				}
			} else {
				w := c.ErrOrStderr()
				for _, fl := range res.Failed {
					fmt.Fprintf(w, "not restored: %s: %s\n", fl.Path, fl.Err)
				}
				for _, fl := range res.Warnings {
					fmt.Fprintf(w, "warning: %s: %s\n", fl.Path, fl.Err)
				}
				fmt.Fprintf(c.OutOrStdout(), "Restored point %s to %s: %d files, %d folders, %d links; %d copies beside existing files, %d renamed for this system, %d skipped, %d not restored.\n",
					p.ID[:12], target, res.Files, res.Dirs, res.Links, len(res.Copies), len(res.Renamed), res.Skipped, len(res.Failed))
			}
			if len(res.Failed) > 0 {
				return fmt.Errorf("%d paths could not be restored (listed above)", len(res.Failed))
			}
			if len(res.Warnings) > 0 {
				return cli.ErrWarnings
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().StringVar(&f.fromMachine, "from-machine", "", "restore another machine of the vault (name or ID); an Operator must allow it first")
	c.Flags().StringVar(&f.sourcePassFile, "source-passphrase-file", "", "that machine's passphrase (default: fetched from Key Vault, if this machine may read it)")
	c.Flags().StringVarP(&target, "target", "t", "", "folder to restore into (created if missing)")
	c.Flags().StringArrayVarP(&include, "include", "i", nil, "restore only this path of the point (repeatable)")
	c.Flags().StringVar(&conflict, "conflict", "copy", "when a path exists: copy, overwrite or skip")
	c.Flags().BoolVar(&deleted, "deleted", false, "restore a point an admin soft-deleted in the vault (until its purge); \"latest\" then counts them too")
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary")
	return c
}
