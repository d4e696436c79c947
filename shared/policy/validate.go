package policy

import (
	"fmt"
	"strings"

	"github.com/coffer-backup/coffer/shared/wire"
)

// ValidationError lists every rule a policy breaks, so a user fixes them
// all in one round trip. The control plane returns the Violations as the
// Details of an wire.CodeValidation error.
type ValidationError struct {
	Violations []wire.Violation
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		msgs[i] = v.Message
	}
	return "policy is not valid: " + strings.Join(msgs, "; ")
}

// checker collects violations.
type checker struct{ v []wire.Violation }

func (c *checker) add(field, rule, format string, args ...any) {
	c.v = append(c.v, wire.Violation{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.v) == 0 {
		return nil
	}
	return &ValidationError{Violations: c.v}
}

// Validate checks every rule and returns nil or a *ValidationError naming
// all violations. securityFeatures is the vault setting that raises the
// minimum retention (as MARS does), so that an attacker holding the portal
// cannot shorten retention to nothing.
//
// Rule names are stable; clients may match on them:
//
//	policy.required
//	schedule.frequency, schedule.days.required, schedule.days.forbidden,
//	schedule.days.value, schedule.days.unique, schedule.times.count,
//	schedule.times.format, schedule.times.granularity, schedule.times.unique,
//	schedule.timezone
//	retention.daily.min, retention.daily.max, retention.weekly.min,
//	retention.weekly.max, retention.monthly.min, retention.monthly.max,
//	retention.yearly.min, retention.yearly.max, retention.weekly_day,
//	retention.monthly_day, retention.yearly_month, retention.max_points,
//	retention.security_minimum.daily, retention.security_minimum.weekly,
//	retention.security_minimum.monthly, retention.security_minimum.yearly
//	include.required, include.max, include.empty, include.length,
//	include.absolute, include.clean
//	exclude.max, exclude.empty, exclude.length, exclude.pattern
//	throttle.workdays.required, throttle.workdays.value,
//	throttle.workdays.unique, throttle.hours.format,
//	throttle.hours.granularity, throttle.hours, throttle.rate.range
func (p *Policy) Validate(securityFeatures bool) error {
	var c checker
	if p == nil {
		c.add("", "policy.required", "the policy is missing; send a policy object")
		return c.err()
	}
	p.Schedule.check(&c)
	p.Retention.check(&c, p.Schedule, securityFeatures)
	checkInclude(&c, p.Include)
	checkExclude(&c, p.Exclude)
	p.Throttle.check(&c)
	return c.err()
}

// check validates the schedule alone; Next and Prev use it too.
func (s Schedule) check(c *checker) {
	switch s.Frequency {
	case FrequencyDaily:
		if len(s.Days) > 0 {
			c.add("schedule.days", "schedule.days.forbidden",
				"a daily schedule runs every day, so schedule.days must be empty; remove the days or set schedule.frequency to %q", FrequencyWeekly)
		}
	case FrequencyWeekly:
		if len(s.Days) == 0 {
			c.add("schedule.days", "schedule.days.required",
				"a weekly schedule needs at least one day in schedule.days, e.g. [\"saturday\"]")
		}
		checkDays(c, "schedule.days", "schedule.days", s.Days)
	default:
		c.add("schedule.frequency", "schedule.frequency",
			"schedule.frequency must be %q or %q; you gave %q", FrequencyDaily, FrequencyWeekly, s.Frequency)
	}

	switch n := len(s.Times); {
	case n == 0:
		c.add("schedule.times", "schedule.times.count", "schedule.times needs at least one backup time, e.g. [\"21:00\"]")
	case n > MaxTimesPerDay:
		c.add("schedule.times", "schedule.times.count",
			"schedule.times allows at most %d backups a day; you gave %d", MaxTimesPerDay, n)
	}
	seen := map[int]bool{}
	for i, t := range s.Times {
		field := fmt.Sprintf("schedule.times[%d]", i)
		m, ok := parseClock(t, false)
		switch {
		case !ok:
			c.add(field, "schedule.times.format", "%s is %q; write times as HH:MM on a 24-hour clock, e.g. \"21:00\"", field, t)
		case m%30 != 0:
			c.add(field, "schedule.times.granularity", "%s is %q; backups start on the hour or half hour, so use minutes 00 or 30", field, t)
		case seen[m]:
			c.add(field, "schedule.times.unique", "%s repeats %q; list each time once", field, t)
		}
		if ok {
			seen[m] = true
		}
	}

	if _, err := loadZone(s.TimeZone); err != nil {
		c.add("schedule.timeZone", "schedule.timezone", "schedule.timeZone: %v", err)
	}
}

// checkDays checks day names: lowercase English, no repeats.
func checkDays(c *checker, field, rule string, days []string) {
	seen := map[string]bool{}
	for i, d := range days {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !isWeekday(d):
			c.add(f, rule+".value", "%s is %q; use a lowercase day name, \"monday\" to \"sunday\"", f, d)
		case seen[d]:
			c.add(f, rule+".unique", "%s repeats %q; list each day once", f, d)
		}
		seen[d] = true
	}
}

func isWeekday(s string) bool { _, ok := parseWeekday(s); return ok }

func (r Retention) check(c *checker, s Schedule, secure bool) {
	type category struct {
		field, name, unit string
		n, max, secureMin int
		optional          bool
	}
	cats := []category{
		{"retention.dailyDays", "daily", "days", r.DailyDays, MaxDailyDays, SecureMinDailyDays, false},
		{"retention.weeklyWeeks", "weekly", "weeks", r.WeeklyWeeks, MaxWeeklyWeeks, SecureMinWeeklyWeeks, true},
		{"retention.monthlyMonths", "monthly", "months", r.MonthlyMonths, MaxMonthlyMonths, SecureMinMonthlyMonths, true},
		{"retention.yearlyYears", "yearly", "years", r.YearlyYears, MaxYearlyYears, SecureMinYearlyYears, true},
	}
	inRange := true
	for _, k := range cats {
		switch {
		case !k.optional && k.n < 1:
			inRange = false
			c.add(k.field, "retention."+k.name+".min",
				"%s must be at least 1: every point is kept that many %s; you gave %d", k.field, k.unit, k.n)
		case k.n < 0:
			inRange = false
			c.add(k.field, "retention."+k.name+".min",
				"%s must not be negative; use 0 for no %s points", k.field, k.name)
		case k.n > k.max:
			inRange = false
			c.add(k.field, "retention."+k.name+".max",
				"%s allows at most %d %s; you gave %d", k.field, k.max, k.unit, k.n)
		case secure && k.n < k.secureMin && (!k.optional || k.n > 0):
			or0 := ""
			if k.optional {
				or0 = fmt.Sprintf(" (or 0 for no %s points)", k.name)
			}
			c.add(k.field, "retention.security_minimum."+k.name,
				"with security features on, %s must be at least %d %s%s; you gave %d", k.field, k.secureMin, k.unit, or0, k.n)
		}
	}

	if r.WeeklyDay != "" && !isWeekday(r.WeeklyDay) {
		c.add("retention.weeklyDay", "retention.weekly_day",
			"retention.weeklyDay is %q; use a lowercase day name, \"monday\" to \"sunday\" (empty means \"sunday\")", r.WeeklyDay)
	}
	if r.MonthlyDay != 0 && (r.MonthlyDay < 1 || r.MonthlyDay > 28) {
		c.add("retention.monthlyDay", "retention.monthly_day",
			"retention.monthlyDay must be 1 to 28, a day every month has; you gave %d", r.MonthlyDay)
	}
	if r.YearlyMonth != 0 && (r.YearlyMonth < 1 || r.YearlyMonth > 12) {
		c.add("retention.yearlyMonth", "retention.yearly_month",
			"retention.yearlyMonth must be 1 (January) to 12 (December); you gave %d", r.YearlyMonth)
	}

	// The total needs every count in range, or it could overflow and would
	// only repeat what the range violations already say.
	if !inRange {
		return
	}
	perDay := min(len(s.Times), MaxTimesPerDay)
	daily := r.DailyDays * perDay
	if s.Frequency == FrequencyWeekly {
		days := min(len(s.Days), 7)
		daily = (r.DailyDays*days + 6) / 7 * perDay
	}
	total := daily + r.WeeklyWeeks + r.MonthlyMonths + r.YearlyYears
	if total > MaxPoints {
		c.add("retention", "retention.max_points",
			"this retention keeps up to %d recovery points (%d daily + %d weekly + %d monthly + %d yearly), more than the %d allowed; keep daily points for fewer days, back up less often or shorten a long-term category",
			total, daily, r.WeeklyWeeks, r.MonthlyMonths, r.YearlyYears, MaxPoints)
	}
}

func checkInclude(c *checker, include []string) {
	if len(include) == 0 {
		c.add("include", "include.required", "include needs at least one absolute path to back up, e.g. \"/srv/data\" or \"C:\\\\Data\"")
	}
	if len(include) > MaxPaths {
		c.add("include", "include.max", "include allows at most %d paths; you gave %d: include a common parent folder instead", MaxPaths, len(include))
		return // don't report a thousand entries one by one
	}
	for i, p := range include {
		f := fmt.Sprintf("include[%d]", i)
		switch {
		case p == "":
			c.add(f, "include.empty", "%s is empty; give an absolute path or remove the entry", f)
		case len(p) > MaxPathLength:
			c.add(f, "include.length", "%s is %d bytes long; paths are limited to %d bytes", f, len(p), MaxPathLength)
		case !isAbs(p):
			c.add(f, "include.absolute",
				"%s is %q, which is not absolute; start it with / on Linux and macOS, or with a drive (C:\\) or share (\\\\server\\share) on Windows", f, p)
		case !isClean(p):
			c.add(f, "include.clean", "%s is %q; remove \".\" and \"..\" parts and NUL characters, and write the path it means", f, p)
		}
	}
}

func checkExclude(c *checker, exclude []string) {
	if len(exclude) > MaxPaths {
		c.add("exclude", "exclude.max", "exclude allows at most %d entries; you gave %d: use glob patterns to cover several", MaxPaths, len(exclude))
		return
	}
	for i, p := range exclude {
		f := fmt.Sprintf("exclude[%d]", i)
		switch {
		case p == "":
			c.add(f, "exclude.empty", "%s is empty; give an absolute path or a pattern such as \"*.tmp\", or remove the entry", f)
		case len(p) > MaxPathLength:
			c.add(f, "exclude.length", "%s is %d bytes long; entries are limited to %d bytes", f, len(p), MaxPathLength)
		default:
			if _, _, err := compilePattern(p); err != nil {
				c.add(f, "exclude.pattern", "%s: %v", f, err)
			}
		}
	}
}

func (t Throttle) check(c *checker) {
	if !t.Enabled {
		return // the other fields may be kept for when it is turned back on
	}
	if len(t.WorkDays) == 0 {
		c.add("throttle.workDays", "throttle.workdays.required",
			"throttle.workDays needs at least one day, e.g. \"monday\" to \"friday\"; to limit every hour alike, give any day and equal rates")
	}
	checkDays(c, "throttle.workDays", "throttle.workdays", t.WorkDays)

	start, okStart := t.checkClock(c, "throttle.workStart", t.WorkStart, false)
	end, okEnd := t.checkClock(c, "throttle.workEnd", t.WorkEnd, true)
	if okStart && okEnd && start >= end {
		c.add("throttle.workEnd", "throttle.hours",
			"throttle.workEnd (%s) must be after throttle.workStart (%s); work hours cannot cross midnight (use \"24:00\" for the end of the day)", t.WorkEnd, t.WorkStart)
	}

	for _, r := range []struct {
		field string
		kbps  int
	}{{"throttle.workKbps", t.WorkKbps}, {"throttle.nonWorkKbps", t.NonWorkKbps}} {
		if r.kbps < MinKbps || r.kbps > MaxKbps {
			c.add(r.field, "throttle.rate.range",
				"%s must be %d to %d Kbps (512 Kbps to 1023 Mbps); you gave %d", r.field, MinKbps, MaxKbps, r.kbps)
		}
	}
}

func (Throttle) checkClock(c *checker, field, v string, allow24 bool) (int, bool) {
	m, ok := parseClock(v, allow24)
	switch {
	case !ok:
		c.add(field, "throttle.hours.format", "%s is %q; write it as HH:MM on a 24-hour clock, e.g. \"09:00\"", field, v)
		return 0, false
	case m%30 != 0:
		c.add(field, "throttle.hours.granularity", "%s is %q; work hours start and end on the hour or half hour", field, v)
		return 0, false
	}
	return m, true
}
