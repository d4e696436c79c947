package retention

import (
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
)

// Rules are everything that decides how long a machine's points live: the
// retention of its policy, the zone its long-term points are designated in,
// and the vault's security minimum. A machine without a policy keeps every
// point (the retention timer skips it), which KeepAll says.
//
// The control plane compares a machine's Rules before and after any change
// (a policy edited, another policy assigned, a policy deleted, security
// features turned off) with Shorter, and asks for a PIN when anything gets
// shorter, whichever route made the change.
type Rules struct {
	KeepAll         bool
	Retention       policy.Retention
	TimeZone        string // IANA name of the schedule's zone; "" is UTC
	SecurityMinimum bool   // the vault's security features are on
}

// ForPolicy is the rules of a machine following p (nil: no policy) in a
// vault whose security features are secure.
func ForPolicy(p *policy.Policy, secure bool) Rules {
	if p == nil {
		return Rules{KeepAll: true, SecurityMinimum: secure}
	}
	return Rules{Retention: p.Retention, TimeZone: p.Schedule.TimeZone, SecurityMinimum: secure}
}

// Effective is the retention Apply should use: the policy's, raised to the
// security minimum while security features are on. A long-term category
// that is off (0) stays off, as policy.Validate allows with security on; a
// policy stored while the features were off is raised here rather than
// trusted.
func (r Rules) Effective() policy.Retention {
	e := r.Retention
	if !r.SecurityMinimum {
		return e
	}
	e.DailyDays = max(e.DailyDays, policy.SecureMinDailyDays)
	if e.WeeklyWeeks > 0 {
		e.WeeklyWeeks = max(e.WeeklyWeeks, policy.SecureMinWeeklyWeeks)
	}
	if e.MonthlyMonths > 0 {
		e.MonthlyMonths = max(e.MonthlyMonths, policy.SecureMinMonthlyMonths)
	}
	if e.YearlyYears > 0 {
		e.YearlyYears = max(e.YearlyYears, policy.SecureMinYearlyYears)
	}
	return e
}

// Reduction is one way new rules keep some points for less time.
type Reduction struct {
	Class  string // "all points", "daily", "weekly", "monthly", "yearly", "long-term", "security minimum", "retain until"
	Before string // in words, e.g. "180 days"
	After  string
}

func (r Reduction) String() string {
	return fmt.Sprintf("%s: %s → %s", r.Class, r.Before, r.After)
}

// Shorter lists every way after keeps some class of points for less time
// than before; none means no point can expire sooner. It compares effective
// retention, category by category:
//
//   - rules that applied to nothing (KeepAll) now applying;
//   - fewer days, weeks, months or years in any category, a category
//     turned off included;
//   - the day (or month) of an active long-term category moved: the points
//     chosen on the old day stop being long-term points and expire;
//   - the zone moved while any long-term category is on: designated
//     instants move with local midnight, so another point may be chosen;
//   - the security minimum turned off: even when today's numbers already
//     meet it, the floor under every later change is gone.
//
// More points kept in another category never make up for fewer in one.
func Shorter(before, after Rules) []Reduction {
	var out []Reduction
	if before.SecurityMinimum && !after.SecurityMinimum {
		out = append(out, Reduction{"security minimum", "on (daily 7 days, weekly 4 weeks, monthly 3 months, yearly 1 year)", "off"})
	}
	switch {
	case after.KeepAll:
		return out // nothing expires any more
	case before.KeepAll:
		return append(out, Reduction{"all points", "kept (no policy applied)", "expire by " + describe(after.Effective())})
	}
	b, a := before.Effective(), after.Effective()
	count := func(class, unit string, nb, na int) bool {
		if na < nb {
			out = append(out, Reduction{class, amount(nb, unit), amount(na, unit)})
			return true
		}
		return false
	}
	count("daily", "day", b.DailyDays, a.DailyDays)
	if !count("weekly", "week", b.WeeklyWeeks, a.WeeklyWeeks) && b.WeeklyWeeks > 0 && a.EffectiveWeeklyDay() != b.EffectiveWeeklyDay() {
		out = append(out, Reduction{"weekly", "points of " + b.EffectiveWeeklyDay().String(), "points of " + a.EffectiveWeeklyDay().String()})
	}
	if !count("monthly", "month", b.MonthlyMonths, a.MonthlyMonths) && b.MonthlyMonths > 0 && a.EffectiveMonthlyDay() != b.EffectiveMonthlyDay() {
		out = append(out, Reduction{"monthly", fmt.Sprintf("points of day %d", b.EffectiveMonthlyDay()), fmt.Sprintf("points of day %d", a.EffectiveMonthlyDay())})
	}
	if !count("yearly", "year", b.YearlyYears, a.YearlyYears) && b.YearlyYears > 0 &&
		(a.EffectiveMonthlyDay() != b.EffectiveMonthlyDay() || a.EffectiveYearlyMonth() != b.EffectiveYearlyMonth()) {
		out = append(out, Reduction{"yearly",
			fmt.Sprintf("points of %s %d", b.EffectiveYearlyMonth(), b.EffectiveMonthlyDay()),
			fmt.Sprintf("points of %s %d", a.EffectiveYearlyMonth(), a.EffectiveMonthlyDay())})
	}
	if longTerm(b) && zoneName(before.TimeZone) != zoneName(after.TimeZone) {
		out = append(out, Reduction{"long-term", "chosen at midnight " + zoneName(before.TimeZone), "chosen at midnight " + zoneName(after.TimeZone)})
	}
	return out
}

// ShorterHold reports whether changing a point's retainUntil from before to
// after (nil: none) lets it expire sooner than it could at now. A hold
// that has already passed protects nothing, so changing it shortens
// nothing.
func ShorterHold(before, after *time.Time, now time.Time) (Reduction, bool) {
	if before == nil || !before.After(now) {
		return Reduction{}, false
	}
	switch {
	case after == nil:
		return Reduction{"retain until", before.UTC().Format(time.RFC3339), "none (the policy decides)"}, true
	case after.Before(*before):
		return Reduction{"retain until", before.UTC().Format(time.RFC3339), after.UTC().Format(time.RFC3339)}, true
	}
	return Reduction{}, false
}

func longTerm(r policy.Retention) bool {
	return r.WeeklyWeeks > 0 || r.MonthlyMonths > 0 || r.YearlyYears > 0
}

func zoneName(name string) string {
	if name == "" {
		return "UTC"
	}
	return name
}

func amount(n int, unit string) string {
	switch n {
	case 0:
		return "none"
	case 1:
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func describe(r policy.Retention) string {
	s := "daily " + amount(r.DailyDays, "day")
	for _, c := range []struct {
		n          int
		class, unt string
	}{{r.WeeklyWeeks, "weekly", "week"}, {r.MonthlyMonths, "monthly", "month"}, {r.YearlyYears, "yearly", "year"}} {
		if c.n > 0 {
			s += ", " + c.class + " " + amount(c.n, c.unt)
		}
	}
	return s
}
