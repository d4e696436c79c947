package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newAdminPolicy(f *adminFlags) *cobra.Command {
	c := adminGroup("policy", "List, show, write and assign backup policies")
	c.AddCommand(newAdminPolicyList(f), newAdminPolicyShow(f), newAdminPolicySet(f), newAdminPolicyAssign(f))
	return c
}

func newAdminPolicyList(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list VAULT",
		Short: "List a vault's policies",
		Args:  rangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			docs, raw, err := adminFetch[[]wire.PolicyDoc](s, http.MethodGet, adminPath("vaults", id, "policies"), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSCHEDULE\tRETENTION\tPATHS\tUPDATED")
				for _, d := range docs {
					p, err := adminDecodePolicy(d)
					if err != nil {
						fmt.Fprintf(w, "%s\t%v\t\t\t%s\n", d.Name, err, adminTableWhen(&d.UpdatedAt))
						continue
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", d.Name, adminSchedule(p.Schedule), adminRetentionShort(p.Retention),
						len(p.Include), adminTableWhen(&d.UpdatedAt))
				}
			})
		},
	}
}

func newAdminPolicyShow(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show VAULT NAME",
		Short: "Show a policy",
		Long: `Show a policy. --json prints the stored document; its "policy" member is
what ` + "`coffer admin policy set -f`" + ` takes, e.g.:
  coffer admin policy show VAULT NAME --json | jq .policy > policy.json`,
		Args: rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			d, raw, err := adminFetch[wire.PolicyDoc](s, http.MethodGet, adminPath("vaults", id, "policies", args[1]), nil)
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { adminPolicyDetail(w, d) })
		},
	}
}

func newAdminPolicySet(f *adminFlags) *cobra.Command {
	var file, pin string
	c := &cobra.Command{
		Use:   "set VAULT NAME -f policy.json [--pin PIN]",
		Short: "Create or replace a policy (Contributor)",
		Long: `Create or replace a policy from a JSON file (- for standard input). The
control plane checks every rule and lists each one the policy breaks.
Reducing the retention of an existing policy needs a PIN.`,
		Args: rangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if file == "" {
				return usagef("give the policy with -f FILE (see `%s --help`)", c.CommandPath())
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(io.LimitReader(c.InOrStdin(), policy.MaxSize+1))
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return usagef("read the policy file: %v", err)
			}
			// Decoding here catches a misspelt field before any request; the
			// control plane applies the rules.
			p, err := policy.Decode(b)
			if err != nil {
				return usagef("policy file %s: %v", file, err)
			}
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			var extra []http.Header
			if pin != "" {
				extra = append(extra, cpclient.PIN(pin))
			}
			d, raw, err := adminFetch[wire.PolicyDoc](s, http.MethodPut, adminPath("vaults", id, "policies", args[1]), p, extra...)
			var ae *adminAPIError
			if errors.As(err, &ae) && ae.err.Body.Code == wire.CodeValidation && len(ae.err.Body.Details) > 0 {
				lines := make([]string, len(ae.err.Body.Details))
				for i, v := range ae.err.Body.Details {
					lines[i] = "  " + adminViolation(v)
				}
				ae.msg = fmt.Sprintf("policy %s breaks %d rule(s) (%s); fix them in %s and run this again:\n%s",
					args[1], len(lines), wire.CodeValidation, file, strings.Join(lines, "\n"))
			}
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { adminPolicyDetail(w, d) })
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "policy JSON file, or - for standard input")
	c.Flags().StringVar(&pin, "pin", "", "security PIN from `coffer admin pin VAULT`, to reduce retention")
	return c
}

func newAdminPolicyAssign(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "assign VAULT MACHINE POLICY",
		Short: "Make a machine follow a policy (Contributor)",
		Args:  rangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := f.open(c)
			if err != nil {
				return err
			}
			vid, err := s.resolveVault(args[0])
			if err != nil {
				return err
			}
			mid, err := s.resolveMachine(vid, args[1])
			if err != nil {
				return err
			}
			m, raw, err := adminFetch[wire.Machine](s, http.MethodPut, adminPath("vaults", vid, "machines", mid, "policy"), wire.AssignPolicy{Policy: args[2]})
			if err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintf(w, "Machine %s now follows policy %s.\n", m.Name, m.Policy)
			})
		},
	}
}

// adminDecodePolicy reads a stored policy leniently: a field added by a
// newer control plane must not stop an older CLI from listing.
func adminDecodePolicy(d wire.PolicyDoc) (policy.Policy, error) {
	var p policy.Policy
	if err := json.Unmarshal(d.Policy, &p); err != nil {
		return p, fmt.Errorf("unreadable policy: %v", err)
	}
	return p, nil
}

func adminSchedule(s policy.Schedule) string {
	var b strings.Builder
	b.WriteString(s.Frequency)
	if s.Frequency == policy.FrequencyWeekly && len(s.Days) > 0 {
		days := make([]string, len(s.Days))
		for i, d := range s.Days {
			days[i] = d[:min(3, len(d))]
		}
		b.WriteString(" " + strings.Join(days, ","))
	}
	fmt.Fprintf(&b, " %s %s", strings.Join(s.Times, ","), s.TimeZone)
	return b.String()
}

// adminRetentionShort is GFS retention at a glance: 30d 12w 12m 2y.
func adminRetentionShort(r policy.Retention) string {
	parts := []string{fmt.Sprintf("%dd", r.DailyDays)}
	if r.WeeklyWeeks > 0 {
		parts = append(parts, fmt.Sprintf("%dw", r.WeeklyWeeks))
	}
	if r.MonthlyMonths > 0 {
		parts = append(parts, fmt.Sprintf("%dm", r.MonthlyMonths))
	}
	if r.YearlyYears > 0 {
		parts = append(parts, fmt.Sprintf("%dy", r.YearlyYears))
	}
	return strings.Join(parts, " ")
}

func adminRetention(r policy.Retention) string {
	lines := []string{fmt.Sprintf("every point %d days", r.DailyDays)}
	if r.WeeklyWeeks > 0 {
		lines = append(lines, fmt.Sprintf("weekly (%s) %d weeks", r.EffectiveWeeklyDay(), r.WeeklyWeeks))
	}
	if r.MonthlyMonths > 0 {
		lines = append(lines, fmt.Sprintf("monthly (day %d) %d months", r.EffectiveMonthlyDay(), r.MonthlyMonths))
	}
	if r.YearlyYears > 0 {
		lines = append(lines, fmt.Sprintf("yearly (%s %d) %d years", r.EffectiveYearlyMonth(), r.EffectiveMonthlyDay(), r.YearlyYears))
	}
	return strings.Join(lines, "\n")
}

func adminThrottle(t policy.Throttle) string {
	if !t.Enabled {
		return "off"
	}
	return fmt.Sprintf("%d Kbps on %s %s-%s, %d Kbps otherwise", t.WorkKbps, strings.Join(t.WorkDays, ","), t.WorkStart, t.WorkEnd, t.NonWorkKbps)
}

func adminPolicyDetail(w io.Writer, d wire.PolicyDoc) {
	rows := [][2]string{{"Name", d.Name}, {"Updated", adminDetailWhen(&d.UpdatedAt)}}
	if p, err := adminDecodePolicy(d); err != nil {
		rows = append(rows, [2]string{"Policy", err.Error()})
	} else {
		rows = append(rows,
			[2]string{"Schedule", adminSchedule(p.Schedule)},
			[2]string{"Retention", adminRetention(p.Retention)},
			[2]string{"Include", adminDash(strings.Join(p.Include, "\n"))},
			[2]string{"Exclude", adminDash(strings.Join(p.Exclude, "\n"))},
			[2]string{"Throttle", adminThrottle(p.Throttle)},
		)
	}
	adminKV(w, append(rows, [2]string{"ETag", d.ETag})...)
}
