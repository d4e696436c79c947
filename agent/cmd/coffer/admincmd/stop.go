package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newStop(f *flags) *cobra.Command {
	var deleteData bool
	var pin string
	c := &cobra.Command{
		Use:   "stop VAULT MACHINE [--delete-data --pin PIN]",
		Short: "Stop protecting a machine, keeping its data (Operator) or deleting it (Contributor, PIN)",
		Long: `Stop a machine's backups. Its recovery points are kept (Operator) and
retention no longer expires them; ` + "`coffer admin resume`" + ` starts backups again.

With --delete-data (Contributor and a PIN from ` + "`coffer admin pin VAULT`" + `) the data
is soft-deleted: ` + "`coffer admin undelete`" + ` brings it back for the vault's soft-delete
period (14 days by default), after which it is purged for good.

` + pinRules,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case deleteData:
				if err := f.needPIN(pin, args[0], "--delete-data"); err != nil {
					return err
				}
			case pin != "":
				return cli.Usagef("--pin is only for --delete-data; stopping protection and keeping the data needs none")
			}
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			m, err := s.cp.StopProtection(ctx, vid, mid, wire.StopProtection{DeleteData: deleteData}, pin)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				if m.State == wire.MachineDeleted {
					fmt.Fprintf(w, "Stopped protecting %s and deleted its backup data. `coffer admin undelete %s %s` brings it back until %s.\n",
						m.Name, quote(args[0]), quote(m.Name), detailWhen(m.PurgeAfter))
					return
				}
				fmt.Fprintf(w, "Stopped protecting %s; its recovery points are kept. `coffer admin resume %s %s` starts backups again.\n",
					m.Name, quote(args[0]), quote(m.Name))
			})
		},
	}
	c.Flags().BoolVar(&deleteData, "delete-data", false, "also soft-delete the machine's backup data (needs --pin)")
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\"")
	return c
}
