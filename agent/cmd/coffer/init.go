package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
)

func newInit() *cobra.Command {
	f := repoFlags{creating: true}
	c := &cobra.Command{
		Use:   "init --repo REPO",
		Short: "Create a repository in a folder or an Azure Blob container",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			pass, err := passphraseAs(f.passphraseFile, "COFFER_PASSPHRASE", "New passphrase", true)
			if err != nil {
				return err
			}
			be, err := f.backend(c.Context())
			if err != nil {
				return err
			}
			r, err := repository.Init(c.Context(), be, pass, repository.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Created repository %s at %s.\nKeep the passphrase safe: without it the backups cannot be read.\n", r.Config().ID[:12], be.Location())
			return nil
		},
	}
	f.add(c)
	return c
}
