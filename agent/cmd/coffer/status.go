package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

// statusReport is `coffer status --json`.
type statusReport struct {
	Machine    wire.Machine    `json:"machine"`
	LastBackup *wire.Job       `json:"lastBackup,omitempty"`
	NextRun    *time.Time      `json:"nextRun,omitempty"`
	Policy     *wire.PolicyDoc `json:"policy,omitempty"`
	Pending    int             `json:"pendingReports"`
}

func newStatus() *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show this machine's registration, last backup, next scheduled run and policy",
		Args:  cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			s, err := vaultSession(dir)
			if err != nil {
				return err
			}
			var st statusReport
			if st.Machine, err = s.Client.AgentMachine(ctx); err != nil {
				return err
			}
			js, err := s.Client.AgentJobs(ctx, cpclient.JobFilter{Type: wire.JobBackup, Limit: 1})
			if err != nil {
				return err
			}
			if len(js) > 0 {
				st.LastBackup = &js[0]
			}
			// A policy this agent cannot decode is still shown by name; it
			// just has no next run.
			switch pol, err := s.Policy(ctx, ""); {
			case errors.Is(err, vault.ErrNoPolicy):
			case pol != nil:
				st.Policy = &pol.Doc
				if pol.Policy != nil {
					if next, err := pol.Schedule.Next(time.Now()); err == nil {
						st.NextRun = &next
					}
				}
			case err != nil:
				return err
			}
			st.Pending = countPending(s.Dir)
			if asJSON {
				return writeJSON(c.OutOrStdout(), st)
			}
			return printStatus(c.OutOrStdout(), s, st)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	addConfigDir(c, &dir)
	return c
}

func printStatus(w io.Writer, s *vault.Session, st statusReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Machine:\t%s (%s), %s\n", st.Machine.Name, st.Machine.ID, st.Machine.State)
	fmt.Fprintf(tw, "Vault:\t%s (%s)\n", s.Config.VaultName, s.Config.VaultID)
	if st.LastBackup != nil {
		fmt.Fprintf(tw, "Last backup:\t%s, %s\n", st.LastBackup.StartedAt.Local().Format(time.RFC1123), st.LastBackup.Status)
	} else {
		fmt.Fprintln(tw, "Last backup:\tnone yet")
	}
	if st.Policy != nil {
		fmt.Fprintf(tw, "Policy:\t%s\n", st.Policy.Name)
	} else {
		fmt.Fprintln(tw, "Policy:\tnone assigned")
	}
	if st.NextRun != nil {
		fmt.Fprintf(tw, "Next run:\t%s\n", st.NextRun.Local().Format(time.RFC1123))
	}
	if st.Pending > 0 {
		fmt.Fprintf(tw, "Waiting to report:\t%d (the control plane was unreachable)\n", st.Pending)
	}
	return tw.Flush()
}

func countPending(dir string) int {
	es, _ := os.ReadDir(dir + string(os.PathSeparator) + "pending")
	return len(es)
}
