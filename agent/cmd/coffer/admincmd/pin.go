package admincmd

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newPIN(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "pin VAULT",
		Short: "Generate a security PIN for a destructive operation (Contributor)",
		Long: `Generate a security PIN and pass it with --pin to an operation that needs it.

` + pinRules,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			p, err := s.cp.NewPIN(ctx, id)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				kv(w, [2]string{"PIN", p.PIN}, [2]string{"Valid until", detailWhen(&p.ExpiresAt) + " (works once)"})
			})
		},
	}
}
