package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
)

func newJobs() *cobra.Command {
	var (
		dir    string
		asJSON bool
		limit  int
	)
	c := &cobra.Command{
		Use:   "jobs",
		Short: "List this machine's jobs in its vault, newest first",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := vaultSession(dir)
			if err != nil {
				return err
			}
			js, err := s.Client.AgentJobs(c.Context(), cpclient.JobFilter{Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.OutOrStdout(), js)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tTYPE\tSTATUS\tSTARTED\tFILES\tMESSAGE")
			for _, j := range js {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", j.ID, j.Type, j.Status, j.StartedAt.Local().Format("2006-01-02 15:04"), j.Progress.FilesDone, oneLine(j.Message))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().IntVar(&limit, "limit", 20, "how many jobs")
	addConfigDir(c, &dir)
	return c
}
