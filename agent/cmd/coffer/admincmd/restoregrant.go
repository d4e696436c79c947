package admincmd

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// restoreGrantTTL is how long the control plane lets a grant last
// (functions/api.RestoreGrantTTL), for the sentence that says so.
const restoreGrantTTL = 24 * time.Hour

func newRestoreGrant(f *flags) *cobra.Command {
	var from string
	c := &cobra.Command{
		Use:   "restore-grant VAULT TARGET --from SOURCE",
		Short: "Let one machine restore another machine's data for a day (Operator)",
		Long: `Let machine TARGET read machine SOURCE's recovery points for 24 hours, to
restore them onto TARGET, as MARS's "another server" recovery does. A new
grant replaces TARGET's previous one.

Then, on TARGET:
  coffer restore latest --from-machine SOURCE --target DIR [--source-passphrase-file F]

In Azure TARGET cannot read SOURCE's passphrase from Key Vault (each machine
reads only its own secret): hand it over in the --source-passphrase-file.`,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if from == "" {
				return cli.Usagef("name the machine whose data TARGET restores with --from SOURCE")
			}
			s, vid, target, err := f.openMachine(c, args)
			if err != nil {
				return err
			}
			source, err := s.resolveMachine(c.Context(), vid, from)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			m, err := s.cp.GrantRestore(ctx, vid, target, source)
			if err != nil {
				return s.fail(ctx, err)
			}
			until := time.Now().Add(restoreGrantTTL)
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintf(w, "%s may restore %s's data until about %s. On %s run:\n  coffer restore latest --from-machine %s --target DIR\n",
					m.Name, from, detailWhen(&until), m.Name, quote(from))
			})
		},
	}
	c.Flags().StringVar(&from, "from", "", "the `SOURCE` machine whose data is restored (ID or name)")
	return c
}
