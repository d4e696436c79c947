package admincmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newPoint(f *flags) *cobra.Command {
	c := group("point", "Delete or undelete one recovery point")
	var pin string
	del := &cobra.Command{
		Use:   "delete VAULT MACHINE POINT --pin PIN",
		Short: "Soft-delete a recovery point (Contributor and a PIN)",
		Long: `Soft-delete a recovery point. ` + "`coffer admin point undelete`" + ` brings it back
for the vault's soft-delete period (14 days by default); after that it is
purged. Needs a PIN (--pin).

` + pinRules,
		Args: cli.RangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			if err := f.needPIN(pin, args[0], "deleting a recovery point"); err != nil {
				return err
			}
			return pointAction(f, c, args, func(cp *cpclient.Client, ctx context.Context, vault, machine, point string) (wire.Point, error) {
				return cp.DeletePoint(ctx, vault, machine, point, pin)
			})
		},
	}
	del.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\"")
	undel := &cobra.Command{
		Use:   "undelete VAULT MACHINE POINT",
		Short: "Undelete a soft-deleted recovery point (Contributor)",
		Args:  cli.RangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			return pointAction(f, c, args, (*cpclient.Client).UndeletePoint)
		},
	}
	c.AddCommand(del, undel)
	return c
}

// pointAction resolves VAULT MACHINE POINT in args, calls action on the
// point and says what became of it.
func pointAction(f *flags, c *cobra.Command, args []string,
	action func(cp *cpclient.Client, ctx context.Context, vault, machine, point string) (wire.Point, error)) error {
	s, vid, mid, err := f.openMachine(c, args)
	if err != nil {
		return err
	}
	pid, err := s.resolvePoint(c.Context(), vid, mid, args[1], args[2])
	if err != nil {
		return err
	}
	ctx, raw := keep(c.Context())
	p, err := action(s.cp, ctx, vid, mid, pid)
	if err != nil {
		return s.fail(ctx, err)
	}
	return s.print(raw, func(w io.Writer) {
		if p.State == wire.PointDeleted {
			fmt.Fprintf(w, "Deleted the recovery point of %s (%s); `coffer admin point undelete %s` brings it back until %s.\n",
				detailWhen(&p.Time), shortID(p.ID), strings.Join([]string{quote(args[0]), quote(args[1]), shortID(p.ID)}, " "),
				detailWhen(p.PurgeAfter))
			return
		}
		fmt.Fprintf(w, "The recovery point of %s (%s) is %s.\n", detailWhen(&p.Time), shortID(p.ID), p.State)
	})
}
