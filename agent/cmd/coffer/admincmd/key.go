package admincmd

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newKey(f *flags) *cobra.Command {
	c := group("key", "Undelete a retired key file")
	c.AddCommand(&cobra.Command{
		Use:   "undelete VAULT MACHINE KEY",
		Short: "Undelete a key file a passphrase change retired (Contributor)",
		Long: `Put back a key file a passphrase change retired, while it is soft-deleted
(` + "`coffer admin keys VAULT MACHINE`" + ` lists them): the passphrase it was written for
opens the machine's repository again, beside the current one. This is the
way back from a passphrase change whose new passphrase was lost or not the
machine owner's. It raises a critical alert, as the change did.

KEY is a key file's ID or a unique prefix of it.`,
		Args: cli.RangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, mid, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			key, err := s.resolveDeletedKey(c.Context(), vid, mid, args[1], args[2])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			k, err := s.cp.UndeleteKey(ctx, vid, mid, key)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintf(w, "Key file %s of %s is back: the passphrase it was written for opens the repository again.\n",
					shortID(k.KeyID), args[1])
			})
		},
	})
	return c
}

// resolveDeletedKey returns the full ID of the retired key file arg names
// by a unique prefix, as `coffer admin keys` shows 12 digits.
func (s *session) resolveDeletedKey(ctx context.Context, vaultID, machineID, machineArg, arg string) (string, error) {
	ks, err := s.cp.DeletedKeys(ctx, vaultID, machineID)
	if err != nil {
		return "", s.fail(ctx, err)
	}
	var ids []string
	for _, k := range ks {
		if strings.HasPrefix(k.KeyID, arg) {
			ids = append(ids, k.KeyID)
		}
	}
	switch len(ids) {
	case 0:
		return "", cli.Usagef("machine %s has no retired key file %s; `coffer admin keys %s %s` lists them",
			machineArg, arg, quote(s.vault), quote(machineArg))
	case 1:
		return ids[0], nil
	}
	return "", cli.Usagef("%d retired key files start with %s; give more digits", len(ids), arg)
}
