package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newAlert(f *flags) *cobra.Command {
	c := group("alert", "Acknowledge an alert")
	var falsePositive bool
	ack := &cobra.Command{
		Use:   "ack VAULT ALERT [--false-positive]",
		Short: "Acknowledge an alert (Operator; a ransomware alarm as a false positive: Contributor)",
		Args:  cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			ackf := s.cp.AckAlert
			if falsePositive {
				ackf = s.cp.AckFalsePositive
			}
			a, err := ackf(ctx, vid, args[1])
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintf(w, "Acknowledged alert %s: %s\n", a.ID, a.Title)
				if falsePositive {
					fmt.Fprintln(w, "Recorded as a false positive: the point is no longer flagged, and the alarm learns this machine's pattern.")
				}
			})
		},
	}
	ack.Flags().BoolVar(&falsePositive, "false-positive", false, "a ransomware alarm was wrong: clear its point's flag and let the baseline learn from it")
	c.AddCommand(ack)
	return c
}
