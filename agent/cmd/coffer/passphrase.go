package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newPassphrase() *cobra.Command {
	p := &cobra.Command{Use: "passphrase", Short: "Manage the repository passphrase"}
	var f repoFlags
	var newFile, pin string
	change := &cobra.Command{
		Use:   "change --repo REPO",
		Short: "Change the passphrase; no data is re-encrypted",
		Long: `Change the passphrase. The master key is wrapped again with the new
passphrase (from COFFER_NEW_PASSPHRASE or --new-passphrase-file, or typed
twice on a terminal) and the old
key file is deleted; no data is re-encrypted.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if vm, err := f.vaultMode(); err != nil {
				return err
			} else if vm {
				return vaultPassphraseChange(c, f.session, pin, newFile)
			}
			// The current passphrase first: asked for on a terminal, it
			// is checked before the new one is typed twice.
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			newPass, err := passphraseAs(newFile, "COFFER_NEW_PASSPHRASE", "New passphrase", true)
			if err != nil {
				return err
			}
			if err := r.ChangePassphrase(c.Context(), newPass, repository.Options{}); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), "Passphrase changed. The old passphrase no longer opens the repository.")
			return nil
		},
	}
	f.add(change)
	change.Flags().StringVar(&newFile, "new-passphrase-file", "", "read the new passphrase from this file (default $COFFER_NEW_PASSPHRASE)")
	change.Flags().StringVar(&pin, "pin", "", "on a registered machine: the security PIN an admin generated (coffer admin pin VAULT)")
	p.AddCommand(change)
	return p
}

// vaultPassphraseChange changes a registered machine's passphrase; the new
// one is escrowed in Key Vault, and generated if none is given.
func vaultPassphraseChange(c *cobra.Command, s *vault.Session, pin, newFile string) error {
	// No --pin is asked for here: without multi-user authorization the
	// control plane answers pin_required (explained below); with it the
	// change is a request a Backup Security Admin approves, after which
	// the same command, run again within 15 minutes, goes through.
	var newPass []byte
	generated := false
	if newFile != "" || os.Getenv("COFFER_NEW_PASSPHRASE") != "" {
		p, err := passphrase(newFile, "COFFER_NEW_PASSPHRASE")
		if err != nil {
			return err
		}
		newPass = p
	} else {
		newPass, generated = vault.NewPassphrase(), true
	}
	if err := s.ChangePassphrase(c.Context(), pin, newPass); err != nil {
		switch cpclient.Code(err) {
		case wire.CodePINRequired, wire.CodePINInvalid, wire.CodePINLocked:
			return fmt.Errorf("%w; a PIN works once, for 5 minutes, and 5 wrong ones lock PINs for 15 minutes: ask an admin for a new one (`coffer admin pin VAULT`) and pass it with --pin", err)
		}
		if _, ok := cpclient.Pending(err); ok {
			return fmt.Errorf("%w; once it is approved, run this command again within 15 minutes", err)
		}
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "Passphrase changed and escrowed in Key Vault as a new version of %s. The old passphrase no longer opens the repository.\n", s.Config.SecretName)
	if generated {
		fmt.Fprintf(c.OutOrStdout(), "New passphrase (shown once; keep a copy outside this machine): %s\n", newPass)
	}
	return nil
}
