package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/repository"
)

func newInit() *cobra.Command {
	f := repoFlags{creating: true}
	var mode compress.Mode
	c := &cobra.Command{
		Use:   "init --repo REPO [--compression auto|fastest|default|max]",
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
			r, err := repository.Init(c.Context(), be, pass, repository.Options{Compression: mode})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "Created repository %s at %s, compression %s.\nKeep the passphrase safe: without it the backups cannot be read.\n", r.Config().ID[:12], be.Location(), r.Config().Compression)
			return nil
		},
	}
	f.add(c)
	c.Flags().Var(modeFlag{&mode}, "compression", "how hard new data is compressed: "+compressionHelp+"; \"coffer config set compression\" changes it later")
	return c
}
