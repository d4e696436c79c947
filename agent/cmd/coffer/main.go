// Command coffer is Coffer's backup agent: it backs up files and folders,
// deduplicated, compressed and encrypted on the machine, to a local folder
// or Azure Blob Storage, and restores them.
//
// Exit codes: 0 completed, 3 completed with warnings, 1 failed, 2 usage
// error, 10 no repository at the location, 12 wrong passphrase, 130
// interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/admincmd"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/version"
)

func main() {
	setGCPercent(25)
	stopProfile := startCPUProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stopProfile()
	interrupted := ctx.Err() != nil // before stop, which cancels ctx too
	stop()
	switch {
	case err == nil, errors.Is(err, cli.ErrWarnings), errors.Is(err, cli.ErrInterrupted):
		// Already reported by the command.
	case interrupted:
		// Interrupted where no command said what was kept: one line, not
		// whichever internal error the cancellation surfaced as.
		fmt.Fprintln(os.Stderr, "coffer: interrupted")
		err = cli.ErrInterrupted
	default:
		fmt.Fprintln(os.Stderr, "coffer:", err)
	}
	os.Exit(cli.ExitCode(err))
}

func newRoot() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "coffer",
		Short: "Back up files and folders to Azure, deduplicated, compressed and encrypted",
		Long: `Coffer backs up files and folders, deduplicated, compressed and encrypted on
this machine, to a local folder or an Azure Blob container, and restores them.

The passphrase comes from COFFER_PASSPHRASE or --passphrase-file, or is asked
for when standard input is a terminal.

Exit codes: 0 completed, 3 completed with warnings, 1 failed, 2 usage error,
10 no repository at the location, 12 wrong passphrase, 130 interrupted.`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log details to standard error")
	root.SetFlagErrorFunc(cli.FlagError)
	root.SetVersionTemplate("coffer {{.Version}}\n")
	root.AddCommand(
		&cobra.Command{
			Use:   "version",
			Short: "Print Coffer's version",
			Args:  cli.NoArgs,
			Run: func(c *cobra.Command, _ []string) {
				fmt.Fprintln(c.OutOrStdout(), "coffer", version.String())
			},
		},
		newInit(), newBackup(), newPoints(), newLs(), newRestore(), newCheck(), newPassphrase(),
		newRegister(), newJobs(), newStatus(), newRun(), newService(), admincmd.New(),
		newMount(), newDump(),
		newForget(), newPrune(), newDiff(), newStats(), newFind(), newConfig(),
	)
	rejectUnknownCommands(root)
	registerCompletions(root)
	return root
}
