package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
)

func newAlerts(f *flags) *cobra.Command {
	var open bool
	var limit int
	c := &cobra.Command{
		Use:   "alerts VAULT [--open]",
		Short: "List a vault's alerts, newest first",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			filter := cpclient.AlertFilter{Unacknowledged: open, Limit: limit}
			if err := checkLimit(limit); err != nil {
				return err
			}
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			as, err := s.cp.Alerts(ctx, vid, filter)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "RAISED\tSEVERITY\tKIND\tMACHINE\tACKNOWLEDGED\tID\tTITLE")
				for _, a := range as {
					ack := "no"
					if a.Acknowledged {
						ack = "yes"
						if a.AcknowledgedBy != "" {
							ack += ", " + a.AcknowledgedBy
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tableWhen(&a.RaisedAt), a.Severity, a.Kind,
						dash(a.MachineName), ack, a.ID, a.Title)
				}
			})
		},
	}
	c.Flags().BoolVar(&open, "open", false, "only alerts not yet acknowledged")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000")
	return c
}
