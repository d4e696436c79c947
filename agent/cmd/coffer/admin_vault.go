package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newAdminVault(f *adminFlags) *cobra.Command {
	c := adminGroup("vault", "Create, list, show and change vaults")
	c.AddCommand(newAdminVaultCreate(f), newAdminVaultList(f), newAdminVaultShow(f), newAdminVaultSet(f))
	return c
}

func newAdminVaultCreate(f *adminFlags) *cobra.Command {
	var (
		recipients []string
		digest     bool
		noSecurity bool
	)
	c := &cobra.Command{
		Use:   "create NAME [--recipient EMAIL]... [--digest] [--no-security-features]",
		Short: "Create a vault (Contributor)",
		Long: `Create a vault. Alerts go to each --recipient, one email per alert or, with
--digest, one email an hour.

Security features (minimum retention, PINs for destructive operations) are on
unless --no-security-features; turning them off later needs a PIN.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := f.open(c)
			if err != nil {
				return err
			}
			nv := wire.NewVault{Name: args[0], AlertRecipients: adminNonEmpty(recipients), AlertDigest: digest}
			if noSecurity {
				off := false
				nv.SecurityFeatures = &off
			}
			v, raw, err := adminFetch[wire.Vault](s, http.MethodPost, adminPath("vaults"), nv)
			if err != nil {
				return err
			}
			if err := s.print(raw, func(w io.Writer) { adminVaultDetail(w, v) }); err != nil {
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
	return c
}

func newAdminVaultList(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the vaults",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := f.open(c)
			if err != nil {
				return err
			}
			vs, raw, err := adminFetch[[]wire.Vault](s, http.MethodGet, adminPath("vaults"), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tID\tSECURITY\tALERT EMAIL\tRECIPIENTS\tCREATED")
				for _, v := range vs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.ID, adminOnOff(v.SecurityFeatures), adminEmailMode(v),
						adminDash(strings.Join(v.AlertRecipients, ", ")), adminTableWhen(&v.CreatedAt))
				}
			})
		},
	}
}

func newAdminVaultShow(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show VAULT",
		Short: "Show a vault's settings",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			v, raw, err := adminFetch[wire.Vault](s, http.MethodGet, adminPath("vaults", id), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { adminVaultDetail(w, v) })
		},
	}
}

func newAdminVaultSet(f *adminFlags) *cobra.Command {
	var (
		recipients []string
		digest     bool
		security   bool
		pin        string
	)
	c := &cobra.Command{
		Use:   "set VAULT [--recipient EMAIL]... [--digest=true|false] [--security-features=true|false --pin PIN]",
		Short: "Change a vault's alert settings or security features (Contributor)",
		Long: `Change only the settings given. --recipient replaces the whole list;
--recipient '' clears it.

Turning security features off needs a PIN (` + "`coffer admin pin VAULT`" + `) and raises a
critical alert.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			var u wire.VaultUpdate
			if c.Flags().Changed("recipient") {
				rs := adminNonEmpty(recipients)
				u.AlertRecipients = &rs
			}
			if c.Flags().Changed("digest") {
				u.AlertDigest = &digest
			}
			if c.Flags().Changed("security-features") {
				u.SecurityFeatures = &security
			}
			if u == (wire.VaultUpdate{}) {
				return usagef("nothing to change: give --recipient, --digest or --security-features (see `%s --help`)", c.CommandPath())
			}
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			var extra []http.Header
			if pin != "" {
				extra = append(extra, cpclient.PIN(pin))
			}
			v, raw, err := adminFetch[wire.Vault](s, http.MethodPatch, adminPath("vaults", id), u, extra...)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { adminVaultDetail(w, v) })
		},
	}
	c.Flags().StringSliceVar(&recipients, "recipient", nil, "email address for alerts; replaces the list (repeat, or separate with commas)")
	c.Flags().BoolVar(&digest, "digest", false, "email one hourly digest (true) or one email per alert (false)")
	c.Flags().BoolVar(&security, "security-features", true, "security features on (true) or off (false, needs --pin)")
	c.Flags().StringVar(&pin, "pin", "", "security PIN from `coffer admin pin VAULT`")
	return c
}

func adminEmailMode(v wire.Vault) string {
	if v.AlertDigest {
		return "hourly digest"
	}
	return "per alert"
}

func adminVaultDetail(w io.Writer, v wire.Vault) {
	adminKV(w,
		[2]string{"Name", v.Name},
		[2]string{"ID", v.ID},
		[2]string{"Created", adminDetailWhen(&v.CreatedAt)},
		[2]string{"Security features", adminOnOff(v.SecurityFeatures)},
		[2]string{"Alert email", adminEmailMode(v)},
		[2]string{"Recipients", adminDash(strings.Join(v.AlertRecipients, "\n"))},
	)
}

func newAdminCredentials(f *adminFlags) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "credentials VAULT [-o FILE]",
		Short: "Download a vault credentials file to register machines (Operator)",
		Long: `Generate a new vault credentials file and write it, readable by you only.
It is valid 48 hours, and generating one makes every older file stop working.
Machines register with ` + "`coffer register --credentials FILE`" + `.

The file holds a secret: --json prints where it was written and until when
it is valid, not its contents.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			creds, raw, err := adminFetch[wire.Credentials](s, http.MethodPost, adminPath("vaults", id, "credentials"), nil)
			if err != nil {
				return err
			}
			path := file
			if path == "" {
				path = adminCredentialsName(creds)
			}
			if err := adminWritePrivate(path, raw); err != nil {
				return err
			}
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			if s.asJSON {
				b, err := json.Marshal(struct {
					File      string    `json:"file"`
					VaultID   string    `json:"vaultId"`
					VaultName string    `json:"vaultName"`
					ExpiresAt time.Time `json:"expiresAt"`
				}{path, creds.VaultID, creds.VaultName, creds.ExpiresAt})
				if err != nil {
					return err
				}
				return adminWriteJSON(s.out, b)
			}
			fmt.Fprintf(s.out, "Wrote the credentials file for vault %s to %s.\n", creds.VaultName, path)
			fmt.Fprintf(s.out, "It is valid until %s (48 hours); older credentials files no longer work.\n", adminDetailWhen(&creds.ExpiresAt))
			fmt.Fprintf(s.out, "Register a machine with `coffer register --credentials %s`.\n", adminQuote(path))
			return nil
		},
	}
	c.Flags().StringVarP(&file, "output", "o", "", "file to write (default <vault name>.credentials.json here)")
	return c
}

// adminCredentialsName is a file name from the vault's name, which may hold
// any printable character.
func adminCredentialsName(creds wire.Credentials) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, creds.VaultName)
	if strings.Trim(name, "-.") == "" {
		name = creds.VaultID
	}
	return name + ".credentials.json"
}

// adminWritePrivate writes b to path, owner-only from the first byte:
// os.CreateTemp makes the file 0600 and it is renamed over path, so no
// reader sees a wider mode or half a file, even where path existed.
func adminWritePrivate(path string, b []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("write the credentials file %s: %w; choose another place with -o", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".coffer-credentials-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	return nil
}

func newAdminPIN(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "pin VAULT",
		Short: "Generate a security PIN for a destructive operation (Contributor)",
		Long: `Generate a security PIN. It is valid 5 minutes and works once; pass it with
--pin to an operation that needs it: deleting data or a recovery point,
reducing a policy's retention, turning security features off.`,
		Args: rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			p, raw, err := adminFetch[wire.PIN](s, http.MethodPost, adminPath("vaults", id, "pin"), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				adminKV(w, [2]string{"PIN", p.PIN}, [2]string{"Valid until", adminDetailWhen(&p.ExpiresAt) + " (works once)"})
			})
		},
	}
}
