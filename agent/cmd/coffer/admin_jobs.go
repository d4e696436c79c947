package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/wire"
)

var (
	adminJobTypes    = []string{wire.JobBackup, wire.JobRestore, wire.JobRegister, wire.JobConfigure, wire.JobDisable, wire.JobDeleteData}
	adminJobStatuses = []string{wire.StatusInProgress, wire.StatusCompleted, wire.StatusCompletedWithWarnings, wire.StatusFailed, wire.StatusCancelled}
)

func newAdminJobs(f *adminFlags) *cobra.Command {
	var machine, typ, status, since string
	var limit int
	c := &cobra.Command{
		Use:   "jobs VAULT [--machine M] [--type T] [--status S] [--since TIME|DURATION] [--limit N]",
		Short: "List a vault's jobs, newest first",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			q := url.Values{}
			if typ != "" {
				if !slices.Contains(adminJobTypes, typ) {
					return usagef("--type %q is not a job type; use one of %s", typ, strings.Join(adminJobTypes, ", "))
				}
				q.Set("type", typ)
			}
			if status != "" {
				if !slices.Contains(adminJobStatuses, status) {
					return usagef("--status %q is not a job status; use one of %s", status, strings.Join(adminJobStatuses, ", "))
				}
				q.Set("status", status)
			}
			if err := adminSinceLimit(q, since, limit, time.Now()); err != nil {
				return err
			}
			s, err := f.open(c)
			if err != nil {
				return err
			}
			vid, err := s.resolveVault(args[0])
			if err != nil {
				return err
			}
			if machine != "" {
				mid, err := s.resolveMachine(vid, machine)
				if err != nil {
					return err
				}
				q.Set("machine", mid)
			}
			path := adminPath("vaults", vid, "jobs")
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			js, raw, err := adminFetch[[]wire.Job](s, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "STARTED\tMACHINE\tTYPE\tSTATUS\tDURATION\tFILES\tSIZE\tID\tMESSAGE")
				for _, j := range js {
					name := j.MachineName
					if name == "" {
						name = j.MachineID
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", adminTableWhen(&j.StartedAt), name, j.Type, j.Status,
						adminJobDuration(j), j.Progress.FilesDone, humanBytes(j.Progress.BytesDone), j.ID, adminJobMessage(j))
				}
			})
		},
	}
	c.Flags().StringVar(&machine, "machine", "", "only this machine (ID or name)")
	c.Flags().StringVar(&typ, "type", "", "only this type: "+strings.Join(adminJobTypes, ", "))
	c.Flags().StringVar(&status, "status", "", "only this status: "+strings.Join(adminJobStatuses, ", "))
	c.Flags().StringVar(&since, "since", "", "only jobs started since an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h, 7d)")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000 (the control plane's default is 100)")
	return c
}

// adminSinceLimit puts --since and --limit on q, checked here so a typo is
// a usage error rather than the server's bad_request.
func adminSinceLimit(q url.Values, since string, limit int, now time.Time) error {
	if since != "" {
		t, err := adminParseSince(since, now)
		if err != nil {
			return err
		}
		q.Set("since", t.UTC().Format(time.RFC3339))
	}
	if limit != 0 {
		if limit < 1 || limit > 1000 {
			return usagef("--limit must be from 1 to 1000, not %d", limit)
		}
		q.Set("limit", strconv.Itoa(limit))
	}
	return nil
}

// adminParseSince reads an RFC 3339 time or a duration back from now; Go
// durations have no days, so "7d" is read here.
func adminParseSince(s string, now time.Time) (time.Time, error) {
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
		return time.Time{}, usagef("--since %q is neither an RFC 3339 time like 2026-01-02T15:04:05Z nor a positive duration like 24h or 7d", s)
	}
	return now.Add(-d), nil
}

func adminJobDuration(j wire.Job) string {
	end := j.UpdatedAt
	if j.EndedAt != nil {
		end = *j.EndedAt
	}
	if end.Before(j.StartedAt) {
		return "-"
	}
	return end.Sub(j.StartedAt).Round(time.Second).String()
}

func adminJobMessage(j wire.Job) string {
	msg := strings.Join(strings.Fields(j.Message), " ") // one table row per job
	if j.ErrorCode != "" {
		msg = strings.TrimSpace(j.ErrorCode + ": " + msg)
	}
	if len(j.Skipped) > 0 {
		msg = strings.TrimSpace(fmt.Sprintf("%s (%d skipped)", msg, len(j.Skipped)))
	}
	return msg
}

func newAdminAlerts(f *adminFlags) *cobra.Command {
	var open bool
	var limit int
	c := &cobra.Command{
		Use:   "alerts VAULT [--open]",
		Short: "List a vault's alerts, newest first",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			q := url.Values{}
			if open {
				q.Set("acknowledged", "false")
			}
			if err := adminSinceLimit(q, "", limit, time.Now()); err != nil {
				return err
			}
			s, err := f.open(c)
			if err != nil {
				return err
			}
			vid, err := s.resolveVault(args[0])
			if err != nil {
				return err
			}
			path := adminPath("vaults", vid, "alerts")
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			as, raw, err := adminFetch[[]wire.Alert](s, http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "RAISED\tSEVERITY\tKIND\tMACHINE\tACKNOWLEDGED\tID\tTITLE")
				for _, a := range as {
					ack := "no"
					if a.Acknowledged {
						ack = "yes"
						if a.AcknowledgedBy != "" {
							ack += ", " + a.AcknowledgedBy
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", adminTableWhen(&a.RaisedAt), a.Severity, a.Kind,
						adminDash(a.MachineName), ack, a.ID, a.Title)
				}
			})
		},
	}
	c.Flags().BoolVar(&open, "open", false, "only alerts not yet acknowledged")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000")
	return c
}

func newAdminAlert(f *adminFlags) *cobra.Command {
	c := adminGroup("alert", "Acknowledge an alert")
	c.AddCommand(&cobra.Command{
		Use:   "ack VAULT ALERT",
		Short: "Acknowledge an alert (Operator)",
		Args:  rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := f.open(c)
			if err != nil {
				return err
			}
			vid, err := s.resolveVault(args[0])
			if err != nil {
				return err
			}
			a, raw, err := adminFetch[wire.Alert](s, http.MethodPost, adminPath("vaults", vid, "alerts", args[1], "acknowledge"), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { fmt.Fprintf(w, "Acknowledged alert %s: %s\n", a.ID, a.Title) })
		},
	})
	return c
}
