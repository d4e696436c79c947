package admincmd

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/wire"
)

var (
	jobTypes    = []string{wire.JobBackup, wire.JobRestore, wire.JobRegister, wire.JobConfigure, wire.JobDisable, wire.JobDeleteData}
	jobStatuses = []string{wire.StatusInProgress, wire.StatusCompleted, wire.StatusCompletedWithWarnings, wire.StatusFailed, wire.StatusCancelled}
)

func newJobs(f *flags) *cobra.Command {
	var machine, typ, status, since string
	var limit int
	c := &cobra.Command{
		Use:   "jobs VAULT [--machine M] [--type T] [--status S] [--since TIME|DURATION] [--limit N]",
		Short: "List a vault's jobs, newest first",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			filter := cpclient.JobFilter{Type: typ, Status: status, Limit: limit}
			if typ != "" {
				if !slices.Contains(jobTypes, typ) {
					return cli.Usagef("--type %q is not a job type; use one of %s", typ, strings.Join(jobTypes, ", "))
				}
			}
			if status != "" {
				if !slices.Contains(jobStatuses, status) {
					return cli.Usagef("--status %q is not a job status; use one of %s", status, strings.Join(jobStatuses, ", "))
				}
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				filter.Since = t
			}
			if err := checkLimit(limit); err != nil {
				return err
			}
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			if machine != "" {
				mid, err := s.resolveMachine(c.Context(), vid, machine)
				if err != nil {
					return err
				}
				filter.Machine = mid
			}
			ctx, raw := keep(c.Context())
			js, err := s.cp.Jobs(ctx, vid, filter)
			if err != nil {
				return s.fail(ctx, err)
			}
			now := time.Now()
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "STARTED\tMACHINE\tTYPE\tSTATUS\tDURATION\tFILES\tSIZE\tID\tMESSAGE")
				for _, j := range js {
					name := j.MachineName
					if name == "" {
						name = j.MachineID
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", tableWhen(&j.StartedAt), name, j.Type, j.Status,
						jobDuration(j, now), j.Progress.FilesDone, cli.HumanBytes(j.Progress.BytesDone), j.ID, jobMessage(j))
				}
			})
		},
	}
	c.Flags().StringVar(&machine, "machine", "", "only this machine (ID or name)")
	c.Flags().StringVar(&typ, "type", "", "only this type: "+strings.Join(jobTypes, ", "))
	c.Flags().StringVar(&status, "status", "", "only this status: "+strings.Join(jobStatuses, ", "))
	c.Flags().StringVar(&since, "since", "", "only jobs started since an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h, 7d)")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000 (the control plane's default is 100)")
	return c
}

// checkLimit checks --limit here, so a typo is a usage error rather than
// the server's bad_request.
func checkLimit(limit int) error {
	if limit != 0 && (limit < 1 || limit > 1000) {
		return cli.Usagef("--limit must be from 1 to 1000, not %d", limit)
	}
	return nil
}

// parseSince reads an RFC 3339 time or a duration back from now; Go
// durations have no days, so "7d" is read here.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if n, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		if days, aerr := strconv.Atoi(n); aerr == nil {
			d, err = time.Duration(days)*24*time.Hour, nil
		}
	}
	if err != nil || d <= 0 {
		return time.Time{}, cli.Usagef("--since %q is neither an RFC 3339 time like 2026-01-02T15:04:05Z nor a positive duration like 24h or 7d", s)
	}
	return now.Add(-d), nil
}

// jobDuration is how long a job ran, or for a running one how long it
// has been running: now, not its last report, which comes only every 30
// seconds (and never from a silent agent). A clock behind the server's
// still shows at least the time up to the last report.
func jobDuration(j wire.Job, now time.Time) string {
	end := j.UpdatedAt
	switch {
	case j.EndedAt != nil:
		end = *j.EndedAt
	case j.Status == wire.StatusInProgress && now.After(end):
		end = now
	}
	if end.Before(j.StartedAt) {
		return "-"
	}
	return end.Sub(j.StartedAt).Round(time.Second).String()
}

func jobMessage(j wire.Job) string {
	msg := strings.Join(strings.Fields(j.Message), " ") // one table row per job
	if j.ErrorCode != "" {
		msg = strings.TrimSpace(j.ErrorCode + ": " + msg)
	}
	if len(j.Skipped) > 0 {
		msg = strings.TrimSpace(fmt.Sprintf("%s (%d skipped)", msg, len(j.Skipped)))
	}
	return msg
}
