package admincmd

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newVault(f *flags) *cobra.Command {
	c := group("vault", "Create, list, show, change and delete vaults")
	c.AddCommand(newVaultCreate(f), newVaultList(f), newVaultShow(f), newVaultSet(f), newVaultDelete(f))
	return c
}

func newVaultCreate(f *flags) *cobra.Command {
	var (
		recipients []string
		digest     bool
		noSecurity bool
		noMUA      bool
	)
	c := &cobra.Command{
		Use:   "create NAME [--recipient EMAIL]... [--digest] [--no-security-features]",
		Short: "Create a vault (Contributor)",
		Long: `Create a vault. Alerts go to each --recipient, one email per alert or, with
--digest, one email an hour.

Security features (minimum retention, PINs for destructive operations) are on
unless --no-security-features; turning them off later needs a PIN.

Multi-user authorization is on unless --no-multi-user-auth: every operation
that needs a PIN becomes a request a Backup Security Admin approves, and
turning it off later needs an approval too.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := wire.CheckVaultName(args[0]); err != nil {
				return cli.Usagef("%v", err)
			}
			s, err := f.open(c)
			if err != nil {
				return err
			}
			nv := wire.NewVault{Name: args[0], AlertRecipients: nonEmpty(recipients), AlertDigest: digest}
			if noSecurity {
				off := false
				nv.SecurityFeatures = &off
			}
			if noMUA {
				off := false
				nv.MultiUserAuth = &off
			}
			ctx, raw := keep(c.Context())
			v, err := s.cp.CreateVault(ctx, nv)
			if err != nil {
				return s.fail(ctx, err)
			}
			if err := s.print(raw, func(w io.Writer) { vaultDetail(w, v) }); err != nil {
				return err
			}
			if !s.asJSON {
				fmt.Fprintf(s.out, "\nNext: download a credentials file for the machines with `coffer admin credentials %s`.\n", v.ID)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&recipients, "recipient", nil, "email address for alerts (repeat, or separate with commas)")
	c.Flags().BoolVar(&digest, "digest", false, "email one hourly digest instead of one email per alert")
	c.Flags().BoolVar(&noSecurity, "no-security-features", false, "turn security features off (not recommended)")
	c.Flags().BoolVar(&noMUA, "no-multi-user-auth", false, "turn multi-user authorization off: a Contributor's PIN alone then deletes data (not recommended)")
	return c
}

func newVaultList(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the vaults",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := f.open(c)
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			vs, err := s.cp.Vaults(ctx)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tID\tSECURITY\tALERT EMAIL\tRECIPIENTS\tCREATED")
				for _, v := range vs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.ID, onOff(v.SecurityFeatures), emailMode(v),
						dash(strings.Join(v.AlertRecipients, ", ")), tableWhen(&v.CreatedAt))
				}
			})
		},
	}
}

func newVaultShow(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "show VAULT",
		Short: "Show a vault's settings",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			v, err := s.cp.Vault(ctx, id)
			if err != nil {
				return s.fail(ctx, err)
			}
			// Requests waiting for a Security Admin, so whoever looks at
			// the vault sees them; a control plane without the route
			// (older) simply shows none.
			pending, _ := s.cp.Approvals(c.Context(), id, wire.ApprovalPending)
			return s.print(raw, func(w io.Writer) {
				vaultDetail(w, v)
				if len(pending) > 0 {
					fmt.Fprintf(w, "Pending approvals\t%d: `coffer admin approvals list %s --status pending`\n", len(pending), quote(args[0]))
				}
			})
		},
	}
}

func newVaultSet(f *flags) *cobra.Command {
	var (
		recipients []string
		digest     bool
		security   bool
		mua        bool
		pin        string
	)
	c := &cobra.Command{
		Use:   "set VAULT [--recipient EMAIL]... [--digest=true|false] [--security-features=true|false --pin PIN]",
		Short: "Change a vault's alert settings or security features (Contributor)",
		Long: `Change only the settings given. --recipient replaces the whole list;
--recipient '' clears it.

Turning security features off needs a PIN (` + "`coffer admin pin VAULT`" + `) and raises a
critical alert.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			var u wire.VaultUpdate
			if c.Flags().Changed("recipient") {
				rs := nonEmpty(recipients)
				u.AlertRecipients = &rs
			}
			if c.Flags().Changed("digest") {
				u.AlertDigest = &digest
			}
			if c.Flags().Changed("security-features") {
				u.SecurityFeatures = &security
			}
			if c.Flags().Changed("multi-user-auth") {
				u.MultiUserAuth = &mua
			}
			if u == (wire.VaultUpdate{}) {
				return cli.Usagef("nothing to change: give --recipient, --digest, --security-features or --multi-user-auth (see `%s --help`)", c.CommandPath())
			}
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			v, err := s.cp.UpdateVault(ctx, id, u, pin)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { vaultDetail(w, v) })
		},
	}
	c.Flags().StringSliceVar(&recipients, "recipient", nil, "email address for alerts; replaces the list (repeat, or separate with commas)")
	c.Flags().BoolVar(&digest, "digest", false, "email one hourly digest (true) or one email per alert (false)")
	c.Flags().BoolVar(&security, "security-features", true, "security features on (true) or off (false, needs --pin)")
	c.Flags().BoolVar(&mua, "multi-user-auth", true, "multi-user authorization on (true) or off (false: a request a Backup Security Admin approves)")
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\"")
	return c
}

func emailMode(v wire.Vault) string {
	if v.AlertDigest {
		return "hourly digest"
	}
	return "per alert"
}

func vaultDetail(w io.Writer, v wire.Vault) {
	kv(w,
		[2]string{"Name", v.Name},
		[2]string{"ID", v.ID},
		[2]string{"Created", detailWhen(&v.CreatedAt)},
		[2]string{"Security features", onOff(v.SecurityFeatures)},
		[2]string{"Multi-user authorization", onOff(v.MultiUserAuth)},
		[2]string{"Alert email", emailMode(v)},
		[2]string{"Recipients", dash(strings.Join(v.AlertRecipients, "\n"))},
	)
}
