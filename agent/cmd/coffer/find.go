package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/find"
	"github.com/coffer-backup/coffer/agent/repository"
)

func newFind() *cobra.Command {
	var (
		f        repoFlags
		pointIDs []string
		under    string
		fold     bool
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "find --repo REPO PATTERN [--point ID]… [--path PATH]",
		Short: "Find files and folders by name across recovery points, and which points hold which version",
		Long: `Search every recovery point (or those named with --point) for names matching PATTERN,
a shell pattern such as '*.docx' or 'report-202?.xlsx'; a pattern with a slash is matched
against the whole path from the root ('home/ann/*/report.docx'). For each path found, each
distinct version (type, size, time and content) is listed with the points holding it,
newest first.`,
		Args: cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			all, err := r.Points(ctx)
			if err != nil {
				return fmt.Errorf("some points could not be read (run `coffer check`): %w", err)
			}
			chosen := all
			if len(pointIDs) > 0 {
				chosen = nil
				for _, ref := range pointIDs {
					p, err := repository.FindPoint(all, ref)
					if errors.Is(err, repository.ErrNoPoint) {
						return err
					} else if err != nil {
						return cli.UsageError{Err: err}
					}
					chosen = append(chosen, p)
				}
			}
			var in []find.Point
			for _, p := range chosen {
				in = append(in, find.Point{ID: p.ID, Time: p.Time, Tree: p.Tree})
			}
			ms, err := find.Find(ctx, r, in, find.Options{Pattern: args[0], IgnoreCase: fold, Path: under})
			if err != nil {
				if strings.HasPrefix(err.Error(), "pattern ") {
					return cli.UsageError{Err: err}
				}
				return err
			}
			if asJSON {
				if ms == nil {
					ms = []find.Match{}
				}
				return writeJSON(c.OutOrStdout(), ms)
			}
			printFind(c.OutOrStdout(), ms, len(in))
			return nil
		},
	}
	f.add(c)
	c.Flags().StringSliceVar(&pointIDs, "point", nil, "search only this point (ID prefix or latest; repeatable)")
	c.Flags().StringVar(&under, "path", "", "search only this path and what is below it")
	c.Flags().BoolVarP(&fold, "ignore-case", "i", false, "match names without regard to case")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printFind(out io.Writer, ms []find.Match, points int) {
	for _, m := range ms {
		fmt.Fprintln(out, m.Path)
		for _, v := range m.Versions {
			ids := make([]string, len(v.Points))
			for i, p := range v.Points {
				ids[i] = p.ID[:12] + " (" + p.Time.Local().Format("2006-01-02 15:04") + ")"
			}
			fmt.Fprintf(out, "  %-8s %10s  %s  in %s\n", v.Type, cli.HumanBytes(v.Size), v.ModTime.Local().Format("2006-01-02 15:04:05"), strings.Join(ids, ", "))
		}
	}
	fmt.Fprintf(out, "%d paths found in %d points.\n", len(ms), points)
}
