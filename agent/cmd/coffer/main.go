// Command coffer is Coffer's backup agent: it backs up files and folders,
// deduplicated, compressed and encrypted on the machine, to a local folder
// or Azure Blob Storage, and restores them.
//
// Exit codes: 0 completed, 3 completed with warnings, 1 failed, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/version"
)

// Exit codes, documented in the README and `coffer --help`.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitWarnings = 3
)

// usageError is a mistake in how coffer was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errWarnings ends a command that completed with warnings it already printed.
var errWarnings = errors.New("completed with warnings")

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errWarnings):
		return exitWarnings
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailed
}

func main() {
	// Backups churn through large buffers that die young; collecting more
	// often keeps the peak near the live set; the heap is mostly pointer-free
	// byte slices, so a collection costs little.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil && !errors.Is(err, errWarnings) {
		fmt.Fprintln(os.Stderr, "coffer:", err)
	}
	os.Exit(exitCode(err))
}

func newRoot() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "coffer",
		Short: "Back up files and folders to Azure, deduplicated, compressed and encrypted",
		Long: `Coffer backs up files and folders, deduplicated, compressed and encrypted on
this machine, to a local folder or an Azure Blob container, and restores them.

The passphrase comes from COFFER_PASSPHRASE or --passphrase-file.

Exit codes: 0 completed, 3 completed with warnings, 1 failed, 2 usage error.`,
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
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
	})
	root.AddCommand(
		&cobra.Command{
			Use:   "version",
			Short: "Print Coffer's version",
			Args:  noArgs,
			Run: func(c *cobra.Command, _ []string) {
				fmt.Fprintln(c.OutOrStdout(), "coffer", version.String())
			},
		},
		newInit(), newBackup(), newPoints(), newLs(), newRestore(), newCheck(), newPassphrase(),
		newRegister(), newJobs(), newStatus(), newRun(), newService(), newAdmin(),
	)
	return root
}

// noArgs and friends turn cobra's argument errors into usage errors.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q (see `%s --help`)", c.Name(), args, c.CommandPath())
	}
	return nil
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("wrong number of arguments for %s: %s", c.Name(), c.Use)
		}
		return nil
	}
}
