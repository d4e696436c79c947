package admincmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newPolicy(f *flags) *cobra.Command {
	c := group("policy", "List, show, write, assign and delete backup policies; print a template")
	c.AddCommand(newPolicyList(f), newPolicyShow(f), newPolicySet(f), newPolicyAssign(f), newPolicyDelete(f), newPolicyTemplate())
	return c
}

func newPolicyList(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "list VAULT",
		Short: "List a vault's policies",
		Args:  cli.RangeArgs(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			docs, err := s.cp.Policies(ctx, id)
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tSCHEDULE\tRETENTION\tPATHS\tUPDATED")
				for _, d := range docs {
					p, err := decodePolicy(d)
					if err != nil {
						fmt.Fprintf(w, "%s\t%v\t\t\t%s\n", d.Name, err, tableWhen(&d.UpdatedAt))
						continue
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", d.Name, schedule(p.Schedule), retentionShort(p.Retention),
						len(p.Include), tableWhen(&d.UpdatedAt))
				}
			})
		},
	}
}

func newPolicyShow(f *flags) *cobra.Command {
	return &cobra.Command{
		Use:   "show VAULT NAME",
		Short: "Show a policy",
		Long: `Show a policy. --json prints the stored document; its "policy" member is
what ` + "`coffer admin policy set -f`" + ` takes, e.g.:
  coffer admin policy show VAULT NAME --json | jq .policy > policy.json`,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			d, err := s.cp.Policy(ctx, id, args[1])
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) { policyDetail(w, d) })
		},
	}
}

func newPolicySet(f *flags) *cobra.Command {
	var file, pin string
	c := &cobra.Command{
		Use:   "set VAULT NAME -f policy.json [--pin PIN]",
		Short: "Create or replace a policy (Contributor)",
		Long: `Create or replace a policy from a JSON file (- for standard input); lines
may carry // comments, as ` + "`coffer admin policy template`" + ` prints. The
control plane checks every rule and lists each one the policy breaks.
A change that shortens the effective retention of any machine following the
policy needs a PIN (--pin).

` + pinRules,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if file == "" {
				return cli.Usagef("give the policy with -f FILE (see `%s --help`)", c.CommandPath())
			}
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(io.LimitReader(c.InOrStdin(), policy.MaxSize+1))
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return cli.Usagef("read the policy file: %v", err)
			}
			// Decoding here catches a misspelt field before any request; the
			// control plane applies the rules. // comments, as in
			// `policy template`, go first.
			p, err := policy.Decode(stripComments(b))
			if err != nil {
				return cli.Usagef("policy file %s: %v", file, err)
			}
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			d, err := s.cp.PutPolicy(ctx, id, args[1], p, pin)
			if err != nil {
				err = s.fail(ctx, err)
				var ae *apiError
				if errors.As(err, &ae) && ae.err.Body.Code == wire.CodeValidation && len(ae.err.Body.Details) > 0 {
					lines := make([]string, len(ae.err.Body.Details))
					for i, v := range ae.err.Body.Details {
						lines[i] = "  " + violation(v)
					}
					ae.msg = fmt.Sprintf("policy %s breaks %d rule(s) (%s); fix them in %s and run this again:\n%s",
						args[1], len(lines), wire.CodeValidation, file, strings.Join(lines, "\n"))
				}
				return err
			}
			return s.print(raw, func(w io.Writer) { policyDetail(w, d) })
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "policy JSON file, or - for standard input")
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\", when the change shortens retention")
	return c
}

func newPolicyAssign(f *flags) *cobra.Command {
	var pin string
	c := &cobra.Command{
		Use:   "assign VAULT MACHINE POLICY [--pin PIN]",
		Short: "Make a machine follow a policy (Contributor)",
		Long: `Make a machine follow a policy. When the new policy keeps the machine's
points for less time than its current one (its effective retention gets
shorter), the assignment needs a PIN (--pin).

` + pinRules,
		Args: cli.RangeArgs(3, 3),
		RunE: func(c *cobra.Command, args []string) error {
			s, vid, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			mid, err := s.resolveMachine(c.Context(), vid, args[1])
			if err != nil {
				return err
			}
			ctx, raw := keep(c.Context())
			m, err := s.cp.AssignPolicy(ctx, vid, mid, wire.AssignPolicy{Policy: args[2], PIN: pin})
			if err != nil {
				return s.fail(ctx, err)
			}
			return s.print(raw, func(w io.Writer) {
				fmt.Fprintf(w, "Machine %s now follows policy %s.\n", m.Name, m.Policy)
			})
		},
	}
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\", when the assignment shortens retention")
	return c
}

func newPolicyDelete(f *flags) *cobra.Command {
	var pin string
	c := &cobra.Command{
		Use:   "delete VAULT NAME [--pin PIN]",
		Short: "Delete a policy no machine follows (Contributor)",
		Long: `Delete a policy. The control plane refuses while machines follow it: assign
them another policy first (` + "`coffer admin policy assign`" + `).

` + pinRules,
		Args: cli.RangeArgs(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			s, id, err := f.openVault(c, args[0])
			if err != nil {
				return err
			}
			ctx := c.Context()
			if err := s.cp.DeletePolicy(ctx, id, args[1], pin); err != nil {
				return s.fail(ctx, err)
			}
			// The answer has no body: --json gets what was deleted.
			raw, err := json.Marshal(map[string]string{"vaultId": id, "deleted": args[1]})
			if err != nil {
				return err
			}
			return s.print((*json.RawMessage)(&raw), func(w io.Writer) { fmt.Fprintf(w, "Deleted policy %s.\n", args[1]) })
		},
	}
	c.Flags().StringVar(&pin, "pin", "", "security `PIN` from \"coffer admin pin VAULT\", when the deletion shortens retention")
	return c
}

// decodePolicy reads a stored policy leniently: a field added by a
// newer control plane must not stop an older CLI from listing.
func decodePolicy(d wire.PolicyDoc) (policy.Policy, error) {
	var p policy.Policy
	if err := json.Unmarshal(d.Policy, &p); err != nil {
		return p, fmt.Errorf("unreadable policy: %v", err)
	}
	return p, nil
}

func schedule(s policy.Schedule) string {
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

// retentionShort is GFS retention at a glance: 30d 12w 12m 2y.
func retentionShort(r policy.Retention) string {
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

func retention(r policy.Retention) string {
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

func throttle(t policy.Throttle) string {
	if !t.Enabled {
		return "off"
	}
	return fmt.Sprintf("%d Kbps on %s %s-%s, %d Kbps otherwise", t.WorkKbps, strings.Join(t.WorkDays, ","), t.WorkStart, t.WorkEnd, t.NonWorkKbps)
}

func policyDetail(w io.Writer, d wire.PolicyDoc) {
	rows := [][2]string{{"Name", d.Name}, {"Updated", detailWhen(&d.UpdatedAt)}}
	if p, err := decodePolicy(d); err != nil {
		rows = append(rows, [2]string{"Policy", err.Error()})
	} else {
		rows = append(rows,
			[2]string{"Schedule", schedule(p.Schedule)},
			[2]string{"Retention", retention(p.Retention)},
			[2]string{"Include", dash(strings.Join(p.Include, "\n"))},
			[2]string{"Exclude", dash(strings.Join(p.Exclude, "\n"))},
			[2]string{"Throttle", throttle(p.Throttle)},
		)
	}
	kv(w, append(rows, [2]string{"ETag", d.ETag})...)
}
