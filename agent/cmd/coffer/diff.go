package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/treediff"
)

type diffJSON struct {
	From    string            `json:"from"`
	To      string            `json:"to"`
	Changes []treediff.Change `json:"changes"`
	Summary treediff.Summary  `json:"summary"`
}

func newDiff() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff --repo REPO POINT1 POINT2",
		Short: "Show what changed between two recovery points (IDs, prefixes or latest)",
		Long: `List every path added (+), removed (-) or modified (M) from POINT1 to POINT2,
with sizes and, for a modified one, what changed: content, type, mode, owner,
mtime, target (symlinks and hard links), xattrs or attributes.`,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			a, err := findPoint(ctx, r, args[0])
			if err != nil {
				return err
			}
			b, err := findPoint(ctx, r, args[1])
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			res := diffJSON{From: a.ID, To: b.ID, Changes: []treediff.Change{}}
			res.Summary, err = treediff.Compare(ctx, r, a.Tree, b.Tree, func(ch treediff.Change) error {
				if asJSON {
					res.Changes = append(res.Changes, ch)
					return nil
				}
				return printChange(out, ch)
			})
			if err != nil {
				return fmt.Errorf("compare %s with %s: %w", a.ID[:12], b.ID[:12], err)
			}
			if asJSON {
				return writeJSON(out, res)
			}
			s := res.Summary
			fmt.Fprintf(out, "\n%d added, %d removed, %d modified; %s added, %s removed.\n",
				s.Added, s.Removed, s.Modified, cli.HumanBytes(s.BytesAdded), cli.HumanBytes(s.BytesRemoved))
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printChange(out io.Writer, ch treediff.Change) error {
	var err error
	switch ch.Kind {
	case treediff.Added:
		_, err = fmt.Fprintf(out, "+ %-8s %10s  %s\n", ch.Type, cli.HumanBytes(ch.NewSize), ch.Path)
	case treediff.Removed:
		_, err = fmt.Fprintf(out, "- %-8s %10s  %s\n", ch.Type, cli.HumanBytes(ch.OldSize), ch.Path)
	default:
		size := cli.HumanBytes(ch.NewSize)
		if ch.OldSize != ch.NewSize {
			size = cli.HumanBytes(ch.OldSize) + " → " + size
		}
		_, err = fmt.Fprintf(out, "M %-8s %10s  %s (%s)\n", ch.Type, size, ch.Path, strings.Join(ch.What, ", "))
	}
	return err
}
