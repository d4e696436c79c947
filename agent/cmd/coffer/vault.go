package main

import (
	"context"
	"encoding/json"
	"errors"

	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/agent/archiver"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/vault"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/version"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newRegister() *cobra.Command {
	var (
		credFile, name, passFile, dir string
		asJSON                        bool
	)
	c := &cobra.Command{
		Use:   "register --credentials FILE [--name NAME] [--passphrase-file F]",
		Short: "Register this machine with a vault",
		Long: `Register this machine with a vault, using a vault credentials file an admin
downloaded (valid 48 hours). Coffer makes a key pair for the machine, keeps
the private key in its config folder (owner-only), escrows the passphrase in
the vault's Key Vault (never sending it to the control plane), and creates the
machine's repository.

Without --passphrase-file, Coffer generates a strong passphrase and prints it
once: keep a copy outside this machine.

Config folder: /var/lib/coffer (Linux, as root), %ProgramData%\Coffer
(Windows), /Library/Application Support/Coffer (macOS, as root), otherwise the
user's config folder; $COFFER_CONFIG_DIR or --config-dir override it.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if credFile == "" {
				return usagef("give --credentials FILE (download it with `coffer admin credentials VAULT`)")
			}
			creds, err := os.ReadFile(credFile)
			if err != nil {
				return usagef("read the credentials file: %v", err)
			}
			var pass []byte
			if passFile != "" {
				if pass, err = passphrase(passFile, ""); err != nil {
					return err
				}
			}
			if dir == "" {
				if dir, err = vault.DefaultDir(); err != nil {
					return err
				}
			}
			s, used, err := vault.Register(c.Context(), vault.RegisterOptions{Dir: dir, Credentials: creds, Name: name,
				Passphrase: pass, OS: runtime.GOOS + "/" + runtime.GOARCH, Version: version.String()})
			if err != nil {
				return err
			}
			cfg := s.Config
			if asJSON {
				return writeJSON(c.OutOrStdout(), map[string]string{"machineId": cfg.MachineID, "machineName": cfg.MachineName,
					"vaultId": cfg.VaultID, "container": cfg.Container, "secretName": cfg.SecretName, "configDir": dir})
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "Registered %s with vault %s (machine %s).\n", cfg.MachineName, cfg.VaultName, cfg.MachineID)
			fmt.Fprintf(out, "Its passphrase is escrowed in Key Vault as %s.\n", cfg.SecretName)
			if passFile == "" {
				fmt.Fprintf(out, "Generated passphrase (shown once; keep a copy outside this machine): %s\n", used)
			}
			fmt.Fprintf(out, "Registration kept in %s.\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&credFile, "credentials", "", "the vault credentials file")
	c.Flags().StringVar(&name, "name", "", "machine name, unique in the vault (default: the host name)")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "use the passphrase in this file (at least 16 characters) instead of generating one")
	c.Flags().BoolVar(&asJSON, "json", false, "print the registration as JSON")
	addConfigDir(c, &dir)
	return c
}

// vaultBackup is `coffer backup` on a registered machine.
func vaultBackup(c *cobra.Command, s *vault.Session, paths, tags []string, force, asJSON bool, retainUntil string) error {
	ctx := c.Context()
	var until *time.Time
	if retainUntil != "" {
		t, err := time.ParseInLocation("2006-01-02", retainUntil, time.Local)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, retainUntil); err != nil {
				return usagef("--retain-until %q is not a date like 2027-12-31 or an RFC 3339 time", retainUntil)
			}
		}
		if !t.After(time.Now()) {
			return usagef("--retain-until %s is not in the future", retainUntil)
		}
		until = &t
	}
	pol, err := agentPolicy(ctx, s)
	if err != nil && (len(paths) == 0 || !isUsage(err)) {
		return err
	}
	if len(paths) == 0 {
		paths = pol.Include
	}
	if pol != nil {
		// An on-demand backup keeps to the policy's bandwidth too.
		loc, _ := time.LoadLocation(pol.Schedule.TimeZone)
		if bps, limited := pol.Throttle.RateAt(time.Now(), loc); limited {
			s.Upload = rate.NewLimiter(rate.Limit(bps), int(max(bps/4, 64<<10)))
		}
	}
	var exclude []string
	if pol != nil {
		exclude = pol.Exclude
	}
	o := vault.BackupOptions{Paths: paths, RetainUntil: until, Exclude: exclude, Archiver: archiver.Options{Tags: tags, Progress: &archiver.Progress{}, Uploads: 4}}
	if !force {
		o.Parent = func(r *repository.Repository) *repository.Point {
			return findParent(ctx, r, paths, s.Config.MachineName)
		}
	}
	stop := startProgress(c.ErrOrStderr(), backupProgress(o.Archiver.Progress))
	res, err := s.Backup(ctx, o)
	stop()
	if err != nil {
		return err
	}
	p := res.Result.Point
	status := "completed"
	if len(res.Result.Warnings) > 0 {
		status = "completed with warnings"
	}
	if asJSON {
		sum := p.Summary
		if err := writeJSON(c.OutOrStdout(), struct {
			backupSummary
			JobID  string `json:"jobId"`
			Queued bool   `json:"reportQueued"`
		}{backupSummary{ID: p.ID, Parent: p.Parent, Time: p.Time, Files: sum.Files, Dirs: sum.Dirs, Bytes: sum.Bytes,
			BytesRead: sum.BytesRead, BytesNew: sum.BytesNew, BytesStored: sum.BytesStored, Duration: sum.Duration.Seconds(),
			Status: status, Warnings: append([]archiver.Warning{}, res.Result.Warnings...)}, res.JobID, res.Queued}); err != nil {
			return err
		}
	} else {
		for _, w := range res.Result.Warnings {
			fmt.Fprintf(c.ErrOrStderr(), "warning: %s: %s\n", w.Path, w.Err)
		}
		fmt.Fprintf(c.ErrOrStderr(), "Backup %s as job %s.\n", status, res.JobID)
		if res.Queued {
			fmt.Fprintln(c.ErrOrStderr(), "The control plane could not be reached; the point and outcome will be reported when it answers.")
		}
		fmt.Fprintln(c.OutOrStdout(), p.ID)
	}
	if len(res.Result.Warnings) > 0 {
		return errWarnings
	}
	return nil
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func agentPolicy(ctx context.Context, s *vault.Session) (*policy.Policy, error) {
	var doc wire.PolicyDoc
	if _, err := s.Client.Do(ctx, "GET", wire.Version+"/agent/policy", nil, &doc); err != nil {
		if cpclient.Code(err) == wire.CodeNotFound {
			return nil, usagef("this machine has no policy yet: name the paths to back up, or ask an admin to assign one (coffer admin policy assign)")
		}
		return nil, err
	}
	return policy.Decode(doc.Policy)
}

func newJobs() *cobra.Command {
	var (
		dir    string
		asJSON bool
		limit  int
	)
	c := &cobra.Command{
		Use:   "jobs",
		Short: "List this machine's jobs in its vault, newest first",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := vaultSession(dir)
			if err != nil {
				return err
			}
			var js []wire.Job
			if _, err := s.Client.Do(c.Context(), "GET", fmt.Sprintf("%s/agent/jobs?limit=%d", wire.Version, limit), nil, &js); err != nil {
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
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			s, err := vaultSession(dir)
			if err != nil {
				return err
			}
			var st statusReport
			if _, err := s.Client.Do(ctx, "GET", wire.Version+"/agent/machine", nil, &st.Machine); err != nil {
				return err
			}
			var js []wire.Job
			if _, err := s.Client.Do(ctx, "GET", wire.Version+"/agent/jobs?type=backup&limit=1", nil, &js); err != nil {
				return err
			}
			if len(js) > 0 {
				st.LastBackup = &js[0]
			}
			var doc wire.PolicyDoc
			if _, err := s.Client.Do(ctx, "GET", wire.Version+"/agent/policy", nil, &doc); err == nil {
				st.Policy = &doc
				if p, err := policy.Decode(doc.Policy); err == nil {
					if next, err := p.Schedule.Next(time.Now()); err == nil {
						st.NextRun = &next
					}
				}
			} else if cpclient.Code(err) != wire.CodeNotFound {
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
