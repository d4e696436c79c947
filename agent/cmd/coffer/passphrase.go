package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/repository"
)

func newPassphrase() *cobra.Command {
	p := &cobra.Command{Use: "passphrase", Short: "Manage the repository passphrase"}
	var f repoFlags
	var newFile string
	change := &cobra.Command{
		Use:   "change --repo REPO",
		Short: "Change the passphrase; no data is re-encrypted",
		Long: `Change the passphrase. The master key is wrapped again with the new
passphrase (from COFFER_NEW_PASSPHRASE or --new-passphrase-file) and the old
key file is deleted; no data is re-encrypted.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			newPass, err := passphrase(newFile, "COFFER_NEW_PASSPHRASE")
			if err != nil {
				return err
			}
			r, err := f.open(c.Context())
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
	p.AddCommand(change)
	return p
}
