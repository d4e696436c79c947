package admincmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coffer-backup/coffer/agent/cmd/coffer/cli"
	"github.com/coffer-backup/coffer/shared/policy"
)

// policyTemplate is the commented starting point: the values are
// policy.Default's, each field with the rule it must keep. Comments are
// // to the end of a line, which `policy set` removes (stripComments).
const policyTemplate = `// A Coffer backup policy. Edit it, then store it in a vault:
//   coffer admin policy set VAULT NAME -f policy.json
//   coffer admin policy assign VAULT MACHINE NAME
// "coffer admin policy set" removes these // comments; the API itself takes
// plain JSON. Every field and rule: docs/policy.schema.json.
{
  "schedule": {
    // "daily", or "weekly" with the days it runs: "days": ["saturday"]
    "frequency": %s,
    // 1 to 3 start times, HH:MM on the hour or half hour, in timeZone
    "times": %s,
    // an IANA zone such as "Europe/London"; a time the clocks skip runs
    // at the end of the gap, a time they repeat runs once
    "timeZone": %s
  },
  "retention": {
    // every recovery point is kept this many days (1 to 9999)
    "dailyDays": %d,
    // weekly, monthly and yearly points: 0 keeps none of that class
    "weeklyWeeks": %d,
    "weeklyDay": %s,
    "monthlyMonths": %d,
    "monthlyDay": %d, // 1 to 28
    "yearlyYears": 0,
    "yearlyMonth": 1 // the month whose monthly point is kept as the yearly one
    // With the vault's security features on (the default), dailyDays is at
    // least 7, and weekly, monthly and yearly, when not 0, at least 4, 3
    // and 1. At most 9999 points in all.
  },
  // absolute paths: /srv/data on Linux and macOS, C:\\Data or
  // \\\\server\\share on Windows (backslashes doubled in JSON)
  "include": %s,
  // absolute paths or glob patterns left out: *.tmp, /home/*/.cache
  "exclude": ["*.tmp"],
  "throttle": {
    // true: uploads keep to workKbps in work hours and nonWorkKbps outside
    // them, 512 to 1047552 Kbps (1 Kbps = 1000 bit/s)
    "enabled": false,
    "workDays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "workStart": "08:00",
    "workEnd": "18:00", // "24:00" for the end of the day
    "workKbps": 2048,
    "nonWorkKbps": 102400
  }
}
`

func newPolicyTemplate() *cobra.Command {
	var zone string
	var paths []string
	c := &cobra.Command{
		Use:   "template [--time-zone ZONE] [--path PATH]...",
		Short: "Print a commented policy to start from",
		Long: `Print a policy with a comment on every field, to edit and store with
` + "`coffer admin policy set VAULT NAME -f FILE`" + `. It is valid as printed
once --path names what to back up. Needs no control plane.
The whole format: docs/policy.schema.json, examples in docs/examples/.`,
		Args: cli.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(paths) == 0 {
				paths = []string{"/srv/data"}
				if runtime.GOOS == "windows" {
					paths = []string{`C:\Data`}
				}
			}
			text, err := renderPolicyTemplate(zone, paths)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.OutOrStdout(), text)
			return err
		},
	}
	c.Flags().StringVar(&zone, "time-zone", "UTC", "the schedule's IANA time `ZONE`, e.g. Europe/London")
	c.Flags().StringArrayVar(&paths, "path", nil, "an absolute `PATH` to back up (repeat; default /srv/data, or C:\\Data on Windows)")
	return c
}

// renderPolicyTemplate fills the template and checks the result is a
// policy the control plane accepts, so a bad --time-zone or --path is
// reported now rather than at `policy set`.
func renderPolicyTemplate(zone string, paths []string) (string, error) {
	d := policy.Default(zone)
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	text := fmt.Sprintf(policyTemplate, js(d.Schedule.Frequency), js(d.Schedule.Times), js(zone),
		d.Retention.DailyDays, d.Retention.WeeklyWeeks, js(d.Retention.WeeklyDay), d.Retention.MonthlyMonths, d.Retention.MonthlyDay,
		js(paths))
	p, err := policy.Decode(stripComments([]byte(text)))
	if err != nil {
		return "", fmt.Errorf("the template does not decode (a bug): %w", err)
	}
	if err := p.Validate(true); err != nil {
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			lines := make([]string, len(ve.Violations))
			for i, v := range ve.Violations {
				lines[i] = "  " + violation(v)
			}
			return "", cli.Usagef("fix --time-zone or --path:\n%s", strings.Join(lines, "\n"))
		}
		return "", err
	}
	return text, nil
}

// stripComments removes // comments, to the end of their line, outside
// JSON strings, so a commented policy file decodes. A "//" inside a string
// (a UNC path written with slashes) is kept.
func stripComments(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			if i < len(b) {
				out = append(out, '\n')
			}
			continue
		}
		out = append(out, ch)
	}
	return out
}
