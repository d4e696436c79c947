// Package policy is a machine's backup policy: when backups run, how long
// their recovery points are kept, what is backed up and how fast the agent
// may upload. The control plane validates and distributes it; the agent
// schedules and throttles from it. Both import this package, so they agree
// on every rule and on every scheduled instant (the control plane's
// missed-backup monitor must expect a run exactly when the agent starts one).
//
// # Wall-clock times and daylight saving time
//
// Schedule times and throttle hours are wall-clock times in the schedule's
// IANA time zone. MARS ignores daylight saving time; Coffer resolves every
// wall-clock time to one instant with [LocalTime]:
//
//   - a time that does not exist (the clocks go forward over it, e.g. 02:30
//     on the US spring-forward day) happens at the first instant after the
//     gap, which the new offset shows as the gap's end (03:00);
//   - a time that happens twice (the clocks go back, e.g. 01:30 on the US
//     fall-back day) happens once, at its first occurrence;
//   - so every scheduled day has one run per listed time. Two listed times
//     that fall in the same gap, or one in a gap and one at its end, resolve
//     to the same instant and run once.
//
// # Throttle units
//
// Rates are in Kbps, where 1 Kbps is 1000 bit/s, i.e. 125 bytes/s, as
// network rates are counted. The allowed range copies MARS, 512 Kbps to
// 1023 Mbps, with MARS's 1024 Kbps to the Mbps: 512 to 1,047,552 Kbps
// (64,000 to 130,944,000 bytes/s).
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	_ "time/tzdata" // Windows machines may have no zoneinfo; schedules must still resolve.
)

// Policy is what a machine backs up, when, for how long and how fast.
type Policy struct {
	Schedule  Schedule  `json:"schedule"`
	Retention Retention `json:"retention"`
	// Include lists the absolute paths to back up: POSIX ("/srv/data") or
	// Windows ("C:\Data", "\\server\share\x"). The caller must set it;
	// [Default] leaves it empty because no path suits every machine.
	Include []string `json:"include"`
	// Exclude lists absolute paths or glob patterns; see [MatchExclude].
	Exclude  []string `json:"exclude,omitempty"`
	Throttle Throttle `json:"throttle"`
	// UseVSS turns Volume Shadow Copy off for the scheduled backups of
	// Windows machines when false; absent means true. See [Policy.VSS].
	UseVSS *bool `json:"useVSS,omitempty"`
}

// VSS says whether scheduled backups on Windows read from a shadow copy of
// each volume: true unless the policy sets useVSS to false.
func (p *Policy) VSS() bool { return p.UseVSS == nil || *p.UseVSS }

// Schedule says when backups run.
type Schedule struct {
	Frequency string   `json:"frequency"`      // FrequencyDaily or FrequencyWeekly
	Days      []string `json:"days,omitempty"` // weekly only: "monday".."sunday", at least one, no repeats
	Times     []string `json:"times"`          // "HH:MM" wall-clock times, 1 to 3, minutes 00 or 30, no repeats
	TimeZone  string   `json:"timeZone"`       // IANA name, e.g. "Europe/London"
}

// Retention is grandfather-father-son retention of recovery points; package
// retention applies it.
type Retention struct {
	DailyDays     int    `json:"dailyDays"`             // keep every point this many days (>= 1)
	WeeklyWeeks   int    `json:"weeklyWeeks,omitempty"` // 0 = no weekly points
	WeeklyDay     string `json:"weeklyDay,omitempty"`   // day whose backup is the weekly point; "" = "sunday"
	MonthlyMonths int    `json:"monthlyMonths,omitempty"`
	MonthlyDay    int    `json:"monthlyDay,omitempty"` // 1..28; 0 = 1
	YearlyYears   int    `json:"yearlyYears,omitempty"`
	YearlyMonth   int    `json:"yearlyMonth,omitempty"` // 1..12; 0 = 1; the yearly point is MonthlyDay of this month
}

// Throttle limits the agent's upload rate during and outside work hours.
type Throttle struct {
	Enabled  bool     `json:"enabled"`            // false = unlimited
	WorkDays []string `json:"workDays,omitempty"` // e.g. "monday".."friday"
	// WorkStart and WorkEnd are "HH:MM" wall-clock times in the schedule's
	// zone on the 30-minute grid; WorkEnd may be "24:00" for the end of the day.
	WorkStart   string `json:"workStart,omitempty"`
	WorkEnd     string `json:"workEnd,omitempty"`
	WorkKbps    int    `json:"workKbps,omitempty"`    // MinKbps..MaxKbps; see the package comment for units
	NonWorkKbps int    `json:"nonWorkKbps,omitempty"` // MinKbps..MaxKbps
}

// Schedule frequencies.
const (
	FrequencyDaily  = "daily"
	FrequencyWeekly = "weekly"
)

// Limits, most of them MARS's.
const (
	MaxTimesPerDay   = 3
	MaxPoints        = 9999 // recovery points one machine may keep
	MaxDailyDays     = 9999
	MaxWeeklyWeeks   = 5163
	MaxMonthlyMonths = 1188
	MaxYearlyYears   = 99
	MaxPaths         = 1000 // entries in Include, and in Exclude
	MaxPathLength    = 4096 // bytes in one Include or Exclude entry
	MinKbps          = 512
	MaxKbps          = 1023 * 1024 // 1023 Mbps
	MaxSize          = 16 << 20    // bytes of JSON Decode accepts (2000 entries of MaxPathLength fit)
)

// Minimum retention when the vault's security features are on, as in MARS.
const (
	SecureMinDailyDays     = 7
	SecureMinWeeklyWeeks   = 4
	SecureMinMonthlyMonths = 3
	SecureMinYearlyYears   = 1
)

// Default is a sensible starting policy in timeZone: a daily backup at
// 21:00, every point kept 30 days, weekly (Sunday) points 12 weeks, monthly
// (1st) points 12 months, no yearly points, no throttling. Include is left
// empty on purpose: the caller must choose what to back up, and Validate
// fails until it does.
func Default(timeZone string) Policy {
	return Policy{
		Schedule: Schedule{Frequency: FrequencyDaily, Times: []string{"21:00"}, TimeZone: timeZone},
		Retention: Retention{
			DailyDays:     30,
			WeeklyWeeks:   12,
			WeeklyDay:     "sunday",
			MonthlyMonths: 12,
			MonthlyDay:    1,
		},
	}
}

// Decode parses a policy from JSON, rejecting unknown fields and anything
// after the object: a misspelt field must not silently fall back to a
// default. It does not validate; call Validate.
func Decode(b []byte) (*Policy, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("policy is %d bytes, more than the %d allowed; shorten the include and exclude lists", len(b), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode policy: %w; send one JSON object with only the documented fields", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode policy: data after the policy object; send exactly one JSON object")
	}
	return &p, nil
}

// EffectiveWeeklyDay is the day whose backup becomes the weekly point:
// WeeklyDay, or Sunday when it is empty or invalid.
func (r Retention) EffectiveWeeklyDay() time.Weekday {
	if d, ok := parseWeekday(r.WeeklyDay); ok {
		return d
	}
	return time.Sunday
}

// EffectiveMonthlyDay is the day of the month of monthly and yearly points:
// MonthlyDay, or 1 when it is unset or out of range.
func (r Retention) EffectiveMonthlyDay() int {
	if r.MonthlyDay >= 1 && r.MonthlyDay <= 28 {
		return r.MonthlyDay
	}
	return 1
}

// EffectiveYearlyMonth is the month of the yearly point: YearlyMonth, or
// January when it is unset or out of range.
func (r Retention) EffectiveYearlyMonth() time.Month {
	if r.YearlyMonth >= 1 && r.YearlyMonth <= 12 {
		return time.Month(r.YearlyMonth)
	}
	return time.January
}

// ReducesRetention reports whether next keeps any category of points for
// less than old does. A category turned off counts, and so does moving the
// day of an active long-term category: the points already chosen on the old
// day would stop being long-term points and expire. The control plane's
// PIN guard uses retention.Shorter, which also weighs the schedule's zone,
// the vault's security minimum and machines without a policy.
func ReducesRetention(old, next Retention) bool {
	switch {
	case next.DailyDays < old.DailyDays,
		next.WeeklyWeeks < old.WeeklyWeeks,
		next.MonthlyMonths < old.MonthlyMonths,
		next.YearlyYears < old.YearlyYears:
		return true
	case old.WeeklyWeeks > 0 && next.EffectiveWeeklyDay() != old.EffectiveWeeklyDay():
		return true
	case old.MonthlyMonths > 0 && next.EffectiveMonthlyDay() != old.EffectiveMonthlyDay():
		return true
	case old.YearlyYears > 0 && (next.EffectiveMonthlyDay() != old.EffectiveMonthlyDay() ||
		next.EffectiveYearlyMonth() != old.EffectiveYearlyMonth()):
		return true
	}
	return false
}

var weekdayNames = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday,
	"wednesday": time.Wednesday, "thursday": time.Thursday, "friday": time.Friday,
	"saturday": time.Saturday,
}

func parseWeekday(s string) (time.Weekday, bool) {
	d, ok := weekdayNames[s]
	return d, ok
}

// parseClock reads a strict "HH:MM" (24-hour clock) as minutes after
// midnight. "24:00" is accepted only when allow24 is set.
func parseClock(s string, allow24 bool) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if h == 24 && m == 0 && allow24 {
		return 24 * 60, true
	}
	if h > 23 || m > 59 {
		return 0, false
	}
	return h*60 + m, true
}

// zones caches loaded locations: LoadLocation reads and parses a file on
// every call, and the monitor resolves schedules for every machine. Only
// names that loaded are cached, so the cache is bounded by the tz database.
var zones sync.Map // string -> *time.Location

// loadZone loads an IANA zone, refusing "" and "Local", which mean UTC and
// the machine's own zone to time.LoadLocation: the control plane and the
// agent would disagree.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q is not an IANA name; give one such as \"Europe/London\"", name)
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q is not in the tz database; give an IANA name such as \"America/New_York\": %w", name, err)
	}
	zones.Store(name, l)
	return l, nil
}
