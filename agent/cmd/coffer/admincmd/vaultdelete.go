package admincmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newVaultDelete(f *flags) *cobra.Command {
	var pin string
	c := &cobra.Command{
		Use:   "delete VAULT --pin PIN",
		Short: "Delete a vault with no machine left (Contributor, PIN)",
		Long: `Delete a vault once nothing is left in it: every machine's protection
stopped with its data deleted (` + "`coffer admin stop VAULT MACHINE --delete-data`" + `)
and purged after the soft-delete period. A machine whose deleted data can
still be undeleted keeps the vault. The vault's policies go with it; its
jobs and alerts stay as history, and its name can be used again.

` + pinRules,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := f.needPIN(pin, args[0], "deleting a vault"); err != nil {
				return err
			}
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			if err := s.cp.DeleteVault(c.Context(), id, pin); err != nil {
				return s.fail(c.Context(), err)
			}
			if s.asJSON {
				// The control plane answers 204: nothing to pass on but the fact.
				return writeJSON(s.out, []byte(fmt.Sprintf(`{"deleted":%q}`, id)))
			}
			fmt.Fprintf(s.out, "Vault %s (%s) is deleted.\n", args[0], id)
			return nil
		},
	}
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\"")
	return c
}
