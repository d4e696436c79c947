package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/version"
)

func newRegister() *cobra.Command {
	var (
		credFile, name, passFile, dir string
		asJSON                        bool
	)
	c := &cobra.Command{
		Use:   "register --credentials FILE [--name NAME] [--passphrase-file F]",
		Short: "Register this machine with a vault",
		Long: `Register this machine with a vault, using a vault credentials file an admin
downloaded (valid 48 hours). Coffer makes a key pair for the machine, keeps
the private key in its config folder (owner-only), escrows the passphrase in
the vault's Key Vault (never sending it to the control plane), and creates the
machine's repository.

Without --passphrase-file, Coffer generates a strong passphrase and prints it
once: keep a copy outside this machine.

Config folder: /var/lib/coffer (Linux, as root), %ProgramData%\Coffer
(Windows), /Library/Application Support/Coffer (macOS, as root), otherwise the
user's config folder; $COFFER_CONFIG_DIR or --config-dir override it.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if credFile == "" {
				return cli.Usagef("give --credentials FILE (download it with `coffer admin credentials VAULT`)")
			}
			creds, err := os.ReadFile(credFile)
			if err != nil {
				return cli.Usagef("read the credentials file: %v", err)
			}
			var pass []byte
			if passFile != "" {
				if pass, err = passphrase(passFile, ""); err != nil {
					return err
				}
			}
			if dir == "" {
				if dir, err = vault.DefaultDir(); err != nil {
					return err
				}
			}
			s, used, err := vault.Register(c.Context(), vault.RegisterOptions{Dir: dir, Credentials: creds, Name: name,
				Passphrase: pass, OS: runtime.GOOS + "/" + runtime.GOARCH, Version: version.String()})
			if errors.Is(err, vault.ErrNoMachineName) {
				return cli.Usagef("%v; give the machine a name with --name", err)
			}
			if err != nil {
				return err
			}
			cfg := s.Config
			if asJSON {
				return writeJSON(c.OutOrStdout(), map[string]string{"machineId": cfg.MachineID, "machineName": cfg.MachineName,
					"vaultId": cfg.VaultID, "container": cfg.Container, "secretName": cfg.SecretName, "configDir": dir})
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "Registered %s with vault %s (machine %s).\n", cfg.MachineName, cfg.VaultName, cfg.MachineID)
			fmt.Fprintf(out, "Its passphrase is escrowed in Key Vault as %s.\n", cfg.SecretName)
			if passFile == "" {
				fmt.Fprintf(out, "Generated passphrase (shown once; keep a copy outside this machine): %s\n", used)
			}
			fmt.Fprintf(out, "Registration kept in %s.\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&credFile, "credentials", "", "the vault credentials file")
	c.Flags().StringVar(&name, "name", "", "machine name, unique in the vault (default: the host name)")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "use the passphrase in this file (at least 16 characters) instead of generating one")
	c.Flags().BoolVar(&asJSON, "json", false, "print the registration as JSON")
	addConfigDir(c, &dir)
	return c
}
