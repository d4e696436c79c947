package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

// rejectUnknownCommands makes every command that only groups others (coffer
// itself, coffer admin, coffer passphrase…) fail with a usage error, exit 2,
// when given a name it does not know. Left to cobra, the root's error is a
// plain one (exit 1) and a group's prints its help and exits 0, so a typo in
// a script would pass for success.
func rejectUnknownCommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownCommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default, set only when it suggests
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return cli.Usagef("%s (see `%s --help`)", msg, c.CommandPath())
	}
}
