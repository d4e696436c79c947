// Command coffer is Coffer's backup agent: it backs up files and folders,
// deduplicated, compressed and encrypted on the machine, to Azure Blob
// Storage, and restores them.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/version"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "coffer:", err)
		os.Exit(exitCode(err))
	}
}

// Exit codes, documented for scripts.
const (
	exitFailed = 1
	exitUsage  = 2
)

type usageError struct{ error }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return exitUsage
	}
	return exitFailed
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "coffer",
		Short:         "Back up files and folders to Azure, deduplicated, compressed and encrypted",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
	})
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print Coffer's version",
		Args:  cobra.NoArgs,
		Run: func(c *cobra.Command, _ []string) {
			fmt.Fprintln(c.OutOrStdout(), "coffer", version.String())
		},
	})
	return root
}
