package admincmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newKeys(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "keys VAULT MACHINE",
		Short: "List a machine's key files retired by passphrase changes (soft-deleted)",
		Long: `List the key files a machine's passphrase changes retired. A retired key
file is soft-deleted, not gone: it is kept for the vault's soft-delete period
(14 days unless the control plane's COFFER_SOFT_DELETE_DAYS says more) and
` + "`coffer admin key undelete`" + ` brings it back until PURGE AFTER, so the passphrase it
was written for opens the repository again.`,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			ks, err := s.cp.DeletedKeys(ctx, vid, mid)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "RETIRED\tKEY\tREPLACED BY\tPURGE AFTER\tREASON")
				for _, k := range ks {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", tableWhen(&k.DeletedAt), shortID(k.KeyID), dash(shortID(k.ReplacedBy)),
						tableWhen(&k.PurgeAfter), dash(k.Reason))
				}
			})
		},
	}
}
