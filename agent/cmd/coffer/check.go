package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/checker"
	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
)

func newCheck() *cobra.Command {
	var f repoFlags
	var readData, asJSON bool
	c := &cobra.Command{
		Use:   "check --repo REPO [--read-data]",
		Short: "Verify the repository's structure, and with --read-data every stored byte",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			rep, err := checker.Check(c.Context(), r, checker.Options{ReadData: readData})
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			if asJSON {
				// Empty lists are [] for scripts, never null.
				js := *rep
				js.Problems = append([]checker.Problem{}, rep.Problems...)
				for i := range js.Problems {
					js.Problems[i].Points = append([]string{}, js.Problems[i].Points...)
					js.Problems[i].Files = append([]string{}, js.Problems[i].Files...)
				}
				if err := writeJSON(out, js); err != nil {
					return err
				}
			} else {
				what := "structure"
				if readData {
					what = fmt.Sprintf("structure and every byte (%s read)", cli.HumanBytes(rep.BytesRead))
				}
				fmt.Fprintf(out, "Checked the %s of %d points, %d packs, %d blobs.\n", what, rep.Points, rep.Packs, rep.Blobs)
				for _, p := range rep.Problems {
					fmt.Fprintf(out, "DAMAGED %s: %s\n", p.Object, p.Err)
					if len(p.Points) > 0 {
						fmt.Fprintf(out, "  affects points: %s\n", strings.Join(short(p.Points), ", "))
					}
					for _, f := range p.Files {
						fmt.Fprintf(out, "  affects file: %s\n", f)
					}
				}
				if len(rep.Problems) == 0 {
					fmt.Fprintln(out, "No problems found.")
				}
			}
			if len(rep.Problems) > 0 {
				return fmt.Errorf("%d problems found", len(rep.Problems))
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&readData, "read-data", false, "read and authenticate every object")
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable report")
	return c
}

func short(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(12, len(id))]
	}
	return out
}
