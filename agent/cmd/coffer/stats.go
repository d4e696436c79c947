package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repostats"
)

func newStats() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "stats --repo REPO [POINT]",
		Short: "Show sizes: what points restore, what they take in storage, deduplication and compression",
		Long: `For each recovery point (or only POINT: an ID prefix or latest): the size a restore
writes, the deduplicated data it uses, what that takes in storage, the part of it no other
point uses (about what forgetting only that point would free), and the deduplication and
compression ratios. Then the same for the whole repository, with the stored space no point
uses, which prune can free.`,
		Args: cli.RangeArgs(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			r, err := f.openIndexed(ctx)
			if err != nil {
				return err
			}
			points, err := r.Points(ctx)
			if err != nil {
				return fmt.Errorf("some points could not be read (run `coffer check`): %w", err)
			}
			st, err := repostats.Measure(ctx, r, points)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				p, err := findPoint(ctx, r, args[0])
				if err != nil {
					return err
				}
				for _, ps := range st.Points {
					if ps.ID == p.ID {
						st.Points = []repostats.Point{ps}
					}
				}
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), st)
			}
			printStats(c.OutOrStdout(), st, len(args) == 0)
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printStats(out io.Writer, st *repostats.Stats, repo bool) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POINT\tFILES\tRESTORE SIZE\tDATA\tSTORED\tUNIQUE STORED\tDEDUP\tCOMPRESSION\t")
	for _, p := range st.Points {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t\n", p.ID[:12], p.Files, cli.HumanBytes(p.RestoreSize), cli.HumanBytes(p.RawSize),
			cli.HumanBytes(p.StoredSize), cli.HumanBytes(p.UniqueStoredSize), p.DedupRatio, p.CompressionRatio)
	}
	tw.Flush()
	if !repo {
		return
	}
	s := st.Repository
	fmt.Fprintf(out, "\nRepository: %d points restore %s from %s of deduplicated data (%.2fx), stored in %s (compression %.2fx).\n",
		s.Points, cli.HumanBytes(s.RestoreSize), cli.HumanBytes(s.RawSize), s.DedupRatio, cli.HumanBytes(s.StoredSize), s.CompressionRatio)
	fmt.Fprintf(out, "Packs: %d holding %s, of which %s no point uses (pack headers included; `coffer prune` frees unused data).\n",
		s.Packs, cli.HumanBytes(s.PackSize), cli.HumanBytes(s.UnusedSize))
	fmt.Fprintf(out, "New data is compressed with mode %s (`coffer config set compression MODE` changes it).\n", s.Compression)
}
