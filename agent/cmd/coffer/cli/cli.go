// Package cli holds what every coffer command shares: exit codes, usage
// errors and argument checks, so the agent's commands and the admin
// commands (package admincmd) fail the same way.
package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/repository"
)

// Exit codes, documented in the README, docs/agent.md and `coffer --help`.
// 10, 12 and 130 are restic's, so scripts written for restic keep working.
const (
	ExitOK              = 0
	ExitFailed          = 1
	ExitUsage           = 2
	ExitWarnings        = 3
	ExitNoRepository    = 10
	ExitWrongPassphrase = 12
	ExitInterrupted     = 130
)

// ErrInterrupted ends a command stopped by Ctrl-C or SIGTERM; the command
// has already said what was kept.
var ErrInterrupted = errors.New("interrupted")

// UsageError is a mistake in how coffer was called.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a usage error with a message that says what to fix.
func Usagef(format string, a ...any) error { return UsageError{fmt.Errorf(format, a...)} }

// IsUsage reports whether err is, or wraps, a usage error.
func IsUsage(err error) bool {
	var ue UsageError
	return errors.As(err, &ue)
}

// ErrWarnings ends a command that completed with warnings it already printed.
var ErrWarnings = errors.New("completed with warnings")

// ExitCode is the process exit code for a command's error.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	case IsUsage(err):
		return ExitUsage
	case errors.Is(err, repository.ErrNotRepository):
		return ExitNoRepository
	case errors.Is(err, repository.ErrWrongPassphrase):
		return ExitWrongPassphrase
	case errors.Is(err, ErrWarnings):
		return ExitWarnings
	case errors.Is(err, context.Canceled):
		// A signal cancelled the command's context mid-way; whatever
		// error that surfaced as, the cause is the interruption.
		return ExitInterrupted
	}
	return ExitFailed
}

// FlagError makes cobra's flag parsing errors usage errors; set it with
// SetFlagErrorFunc on the root command.
func FlagError(c *cobra.Command, err error) error {
	return UsageError{fmt.Errorf("%w (see `%s --help`)", err, c.CommandPath())}
}

// NoArgs and RangeArgs turn cobra's argument errors into usage errors.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("%s takes no arguments, got %q (see `%s --help`)", c.Name(), args, c.CommandPath())
	}
	return nil
}

// RangeArgs accepts from lo to hi arguments.
func RangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return Usagef("wrong number of arguments for %s: %s", c.Name(), c.Use)
		}
		return nil
	}
}

// HumanBytes renders a byte count for people: 1.5 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
