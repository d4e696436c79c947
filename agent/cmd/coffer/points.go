package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/shared/wire"
)

type pointJSON struct {
	ID      string             `json:"id"`
	Time    time.Time          `json:"time"`
	Host    string             `json:"host"`
	Paths   []string           `json:"paths"`
	Tags    []string           `json:"tags,omitempty"`
	Parent  string             `json:"parent,omitempty"`
	Summary repository.Summary `json:"summary"`
	// Suspicious and FalsePositive come from the vault (wire.Point): the
	// ransomware alarm fired on the point's backup, and who cleared it.
	Suspicious    string `json:"suspicious,omitempty"`
	FalsePositive string `json:"falsePositive,omitempty"`
}

// vaultFlags reads, in vault mode, which points the control plane flagged
// as possibly encrypted by ransomware. A vault that cannot be reached
// leaves the list unflagged, with a warning, rather than failing it.
func vaultFlags(c *cobra.Command, f *repoFlags) map[string]wire.Point {
	if f.session == nil || f.fromMachine != "" {
		return nil
	}
	ps, err := f.session.Client.AgentPoints(c.Context())
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "warning: could not ask the vault which points are flagged (%v); check the list with `coffer admin points` before restoring\n", err)
		return nil
	}
	out := map[string]wire.Point{}
	for _, p := range ps {
		if p.Suspicious != "" {
			out[p.ID] = p
		}
	}
	return out
}

// flagText is a point's FLAG column.
func flagText(p wire.Point, flagged bool) string {
	switch {
	case !flagged:
		return "-"
	case p.FalsePositive != "":
		return "false positive"
	}
	return "SUSPECT: do not restore"
}

func newPoints() *cobra.Command {
	var f repoFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "points --repo REPO",
		Short: "List the recovery points",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := f.open(c.Context())
			if err != nil {
				return err
			}
			points, loadErr := r.Points(c.Context())
			flags := vaultFlags(c, &f)
			out := c.OutOrStdout()
			if asJSON {
				list := []pointJSON{}
				for _, p := range points {
					vp := flags[p.ID]
					list = append(list, pointJSON{p.ID, p.Time, p.Hostname, p.Paths, p.Tags, p.Parent, p.Summary, vp.Suspicious, vp.FalsePositive})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tFILES\tSIZE\tPATHS\tFLAG")
				var suspects []wire.Point
				for _, p := range points {
					vp, flagged := flags[p.ID]
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.ID[:12], p.Time.Local().Format("2006-01-02 15:04:05"),
						p.Hostname, p.Summary.Files, cli.HumanBytes(p.Summary.Bytes), strings.Join(p.Paths, ", "), flagText(vp, flagged))
					if flagged && vp.FalsePositive == "" {
						suspects = append(suspects, vp)
					}
				}
				tw.Flush()
				for _, p := range suspects {
					fmt.Fprintf(out, "\n%s: %s\nRestore an earlier point: the vault keeps the ones before it.\n", p.ID[:12], p.Suspicious)
				}
			}
			if loadErr != nil {
				return fmt.Errorf("some points could not be read (run `coffer check`): %w", loadErr)
			}
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
