package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/wire"
)

// vaultPointStates is what the vault says of this machine's points, by ID,
// soft-deleted ones included: a point an admin deleted keeps its objects
// in the container until the purge, so the repository alone still lists
// it. Nil outside vault mode and for --from-machine (a machine asks only
// for its own list). A vault that cannot be reached gives nil and a
// warning saying what goes unchecked, rather than failing a command that
// works without it.
func vaultPointStates(c *cobra.Command, f *repoFlags, unchecked string) map[string]wire.Point {
	if f.session == nil || f.fromMachine != "" {
		return nil
	}
	ps, err := f.session.Client.AgentPointsWithDeleted(c.Context())
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "warning: could not ask the vault about this machine's points (%v): %s\n", err, unchecked)
		return nil
	}
	out := make(map[string]wire.Point, len(ps))
	for _, p := range ps {
		out[p.ID] = p
	}
	return out
}

func deletedInVault(vps map[string]wire.Point, id string) (wire.Point, bool) {
	vp, ok := vps[id]
	return vp, ok && vp.State == wire.PointDeleted
}

// restorePoint resolves "latest" or an ID prefix for a restore. In vault
// mode a soft-deleted point is one an admin meant to be gone: "latest"
// passes over it, and naming it needs allowDeleted, so nobody restores a
// deleted point without knowing.
func restorePoint(ctx context.Context, c *cobra.Command, f *repoFlags, r *repository.Repository, ref string, allowDeleted bool) (*repository.Point, error) {
	p, err := findPoint(ctx, r, ref)
	if err != nil {
		return nil, err
	}
	vps := vaultPointStates(c, f, "soft-deleted points are not told apart; check `coffer points` before trusting this restore")
	vp, del := deletedInVault(vps, p.ID)
	if del && ref == "latest" && !allowDeleted {
		// The newest point the vault has not deleted; points come oldest first.
		points, _ := r.Points(ctx)
		for i := len(points) - 1; i >= 0; i-- {
			if _, gone := deletedInVault(vps, points[i].ID); !gone {
				return points[i], nil
			}
		}
		return nil, cli.Usagef("every recovery point of this machine is deleted in the vault; an admin can undelete one (`coffer admin point undelete`), or name one and add --deleted (see `coffer points`)")
	}
	switch {
	case del && !allowDeleted:
		return nil, cli.Usagef("recovery point %s was deleted in the vault on %s and is purged after %s: an admin can undelete it with `coffer admin point undelete %s %s %s`, or restore it as it is with --deleted",
			p.ID[:12], when(vp.DeletedAt), when(vp.PurgeAfter), f.session.Config.VaultName, f.session.Config.MachineName, p.ID[:12])
	case del:
		fmt.Fprintf(c.ErrOrStderr(), "note: point %s was deleted in the vault on %s; restoring it as --deleted asks (it is purged after %s)\n",
			p.ID[:12], when(vp.DeletedAt), when(vp.PurgeAfter))
	}
	return p, nil
}

// when is a vault time for a sentence; "-" when the vault did not say.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}
