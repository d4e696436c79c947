package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newMachines(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "machines VAULT",
		Short: "List a vault's machines and their backup items",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			ms, err := s.cp.Machines(ctx, id)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSTATE\tPOLICY\tLAST BACKUP\tLAST BACKUP AT\tLATEST POINT\tPOINTS\tSTORAGE\tID")
				for _, m := range ms {
					it := m.Item
					if it == nil {
						it = &wire.Item{}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.State, dash(m.Policy),
						dash(it.LastBackupStatus), tableWhen(it.LastBackupAt), tableWhen(it.LatestPoint),
						it.Points, cli.HumanBytes(it.StorageBytes), m.ID)
				}
			})
		},
	}
}
