package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newPoints(f *flags) *cobra.Command {
	var deleted bool
	c := &cobra.Command{
		Use:   "points VAULT MACHINE [--deleted]",
		Short: "List a machine's recovery points",
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			ps, err := s.cp.Points(ctx, vid, mid, deleted)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "TIME\tID\tSTATE\tPURGE AFTER\tJOB\tFLAG")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", tableWhen(&p.Time), shortID(p.ID), p.State,
						tableWhen(p.PurgeAfter), dash(p.JobID), pointFlag(p))
				}
			})
		},
	}
	c.Flags().BoolVar(&deleted, "deleted", false, "include soft-deleted points")
	return c
}

// pointFlag warns off restoring a point the ransomware alarm fired on.
func pointFlag(p wire.Point) string {
	switch {
	case p.Suspicious == "":
		return "-"
	case p.FalsePositive != "":
		return "false positive (" + p.FalsePositive + ")"
	}
	return "SUSPECT (possible ransomware): do not restore"
}
