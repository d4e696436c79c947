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
)

type pointJSON struct {
	ID      string             `json:"id"`
	Time    time.Time          `json:"time"`
	Host    string             `json:"host"`
	Paths   []string           `json:"paths"`
	Tags    []string           `json:"tags,omitempty"`
	Parent  string             `json:"parent,omitempty"`
	Summary repository.Summary `json:"summary"`
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
			out := c.OutOrStdout()
			if asJSON {
				list := []pointJSON{}
				for _, p := range points {
					list = append(list, pointJSON{p.ID, p.Time, p.Hostname, p.Paths, p.Tags, p.Parent, p.Summary})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tHOST\tFILES\tSIZE\tPATHS")
				for _, p := range points {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.ID[:12], p.Time.Local().Format("2006-01-02 15:04:05"),
						p.Hostname, p.Summary.Files, cli.HumanBytes(p.Summary.Bytes), strings.Join(p.Paths, ", "))
				}
				tw.Flush()
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
