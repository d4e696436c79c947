package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newAlert(f *flags) *cobra.Command {
	c := group("alert", "Acknowledge an alert")
	c.AddCommand(&cobra.Command{
		Use:   "ack VAULT ALERT",
		Short: "Acknowledge an alert (Operator)",
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			a, err := s.cp.AckAlert(ctx, vid, args[1])
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { fmt.Fprintf(w, "Acknowledged alert %s: %s\n", a.ID, a.Title) })
		},
	})
	return c
}
