package retention

import (
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
)

func TestShorterFindsEveryReduction(t *testing.T) {
	gfs := policy.Retention{DailyDays: 30, WeeklyWeeks: 12, WeeklyDay: "sunday", MonthlyMonths: 12, MonthlyDay: 1, YearlyYears: 5, YearlyMonth: 1}
	with := func(change func(r *policy.Retention)) policy.Retention {
		r := gfs
		change(&r)
		return r
	}
	rules := func(r policy.Retention) Rules { return Rules{Retention: r, TimeZone: "Europe/London"} }
	secure := func(r policy.Retention) Rules { x := rules(r); x.SecurityMinimum = true; return x }
	for _, tc := range []struct {
		name          string
		before, after Rules
		want          []string // classes, in order
	}{
		{"same", rules(gfs), rules(gfs), nil},
		{"longer everywhere", rules(gfs), rules(with(func(r *policy.Retention) { r.DailyDays, r.YearlyYears = 60, 10 })), nil},
		{"the attack: 180 days to 7", rules(policy.Retention{DailyDays: 180}), rules(policy.Retention{DailyDays: 7}), []string{"daily"}},
		{"fewer days, more weeks", rules(gfs), rules(with(func(r *policy.Retention) { r.DailyDays, r.WeeklyWeeks = 7, 52 })), []string{"daily"}},
		{"weekly off", rules(gfs), rules(with(func(r *policy.Retention) { r.WeeklyWeeks = 0 })), []string{"weekly"}},
		{"fewer months", rules(gfs), rules(with(func(r *policy.Retention) { r.MonthlyMonths = 6 })), []string{"monthly"}},
		{"fewer years", rules(gfs), rules(with(func(r *policy.Retention) { r.YearlyYears = 1 })), []string{"yearly"}},
		{"every category", rules(gfs), rules(policy.Retention{DailyDays: 1}), []string{"daily", "weekly", "monthly", "yearly"}},
		{"weekly day moved", rules(gfs), rules(with(func(r *policy.Retention) { r.WeeklyDay = "saturday" })), []string{"weekly"}},
		{"weekly day named as its default", rules(gfs), rules(with(func(r *policy.Retention) { r.WeeklyDay = "" })), nil},
		{"day of the month moved", rules(gfs), rules(with(func(r *policy.Retention) { r.MonthlyDay = 15 })), []string{"monthly", "yearly"}},
		{"month of the year moved", rules(gfs), rules(with(func(r *policy.Retention) { r.YearlyMonth = 6 })), []string{"yearly"}},
		{"day moved in a category that is off", rules(policy.Retention{DailyDays: 30}), rules(policy.Retention{DailyDays: 30, WeeklyDay: "monday", MonthlyDay: 9}), nil},
		{"turning a category on", rules(policy.Retention{DailyDays: 30}), rules(gfs), nil},
		{"zone moved with long-term points", rules(gfs), Rules{Retention: gfs, TimeZone: "America/New_York"}, []string{"long-term"}},
		{"zone moved, daily only", rules(policy.Retention{DailyDays: 30}), Rules{Retention: policy.Retention{DailyDays: 30}, TimeZone: "Asia/Tokyo"}, nil},
		{"empty zone is UTC", Rules{Retention: gfs, TimeZone: "UTC"}, Rules{Retention: gfs}, nil},
		{"no policy to a policy", Rules{KeepAll: true}, rules(gfs), []string{"all points"}},
		{"a policy to no policy", rules(gfs), Rules{KeepAll: true}, nil},
		{"no policy either side", Rules{KeepAll: true}, Rules{KeepAll: true}, nil},
		{"security minimum off", secure(gfs), rules(gfs), []string{"security minimum"}},
		{"security minimum off without a policy", Rules{KeepAll: true, SecurityMinimum: true}, Rules{KeepAll: true}, []string{"security minimum"}},
		{"security minimum on", rules(gfs), secure(gfs), nil},
		// The floor raised a stored 1-day policy to 7 days; with the floor
		// gone it keeps 1, which is shorter in daily too.
		{"security off under a short policy", secure(policy.Retention{DailyDays: 1, WeeklyWeeks: 1}), rules(policy.Retention{DailyDays: 1, WeeklyWeeks: 1}), []string{"security minimum", "daily", "weekly"}},
		{"below the floor is the floor", secure(policy.Retention{DailyDays: 7}), secure(policy.Retention{DailyDays: 3}), nil},
		{"to below the floor from above it", secure(policy.Retention{DailyDays: 30}), secure(policy.Retention{DailyDays: 3}), []string{"daily"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range Shorter(tc.before, tc.after) {
				got = append(got, r.Class)
				if r.Before == "" || r.After == "" || r.String() == "" {
					t.Errorf("reduction %+v does not say what changed", r)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Shorter = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEffectiveRaisesToTheSecurityMinimum(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     policy.Retention
		secure bool
		want   policy.Retention
	}{
		{"off: as stored", policy.Retention{DailyDays: 1, WeeklyWeeks: 1}, false, policy.Retention{DailyDays: 1, WeeklyWeeks: 1}},
		{"on: raised", policy.Retention{DailyDays: 1, WeeklyWeeks: 1, MonthlyMonths: 1, YearlyYears: 0}, true,
			policy.Retention{DailyDays: 7, WeeklyWeeks: 4, MonthlyMonths: 3}},
		{"on: above the floor", policy.Retention{DailyDays: 30, YearlyYears: 3}, true, policy.Retention{DailyDays: 30, YearlyYears: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Rules{Retention: tc.in, SecurityMinimum: tc.secure}).Effective(); got != tc.want {
				t.Fatalf("Effective = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestForPolicy(t *testing.T) {
	if r := ForPolicy(nil, true); !r.KeepAll || !r.SecurityMinimum {
		t.Fatalf("no policy: %+v", r)
	}
	p := policy.Default("Europe/Paris")
	if r := ForPolicy(&p, false); r.KeepAll || r.TimeZone != "Europe/Paris" || r.Retention != p.Retention {
		t.Fatalf("policy: %+v", r)
	}
}

func TestShorterHold(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		name          string
		before, after *time.Time
		want          bool
	}{
		{"none either side", nil, nil, false},
		{"set", nil, at(time.Hour), false},
		{"cleared", at(48 * time.Hour), nil, true},
		{"earlier", at(48 * time.Hour), at(24 * time.Hour), true},
		{"later", at(24 * time.Hour), at(48 * time.Hour), false},
		{"cleared after it passed", at(-time.Hour), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := ShorterHold(tc.before, tc.after, now); got != tc.want {
				t.Fatalf("ShorterHold = %v, want %v", got, tc.want)
			}
		})
	}
}
