package policy

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func valid() Policy {
	p := Default("Europe/London")
	p.Include = []string{"/srv/data", `C:\Data`, `\\server\share\x`}
	p.Exclude = []string{"*.tmp", "/srv/data/cache", `C:\Data\**\*.bak`}
	p.Throttle = officeHours
	return p
}

func rules(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var r []string
	for _, v := range ve.Violations {
		r = append(r, v.Rule)
	}
	slices.Sort(r)
	return r
}

func TestValidate(t *testing.T) {
	many := func(n int, s string) []string { return slices.Repeat([]string{s}, n) }
	tests := []struct {
		name   string
		edit   func(*Policy)
		secure bool
		want   []string // sorted rule names; nil = valid
	}{
		{"default with include", func(*Policy) {}, false, nil},
		{"default with include, secure", func(*Policy) {}, true, nil},
		{"weekly", func(p *Policy) {
			p.Schedule.Frequency, p.Schedule.Days = FrequencyWeekly, []string{"monday", "saturday"}
		}, false, nil},
		{"throttle off ignores its fields", func(p *Policy) { p.Throttle = Throttle{WorkStart: "late"} }, false, nil},
		{"work end 24:00", func(p *Policy) { p.Throttle.WorkEnd = "24:00" }, false, nil},

		{"frequency", func(p *Policy) { p.Schedule.Frequency = "hourly" }, false, []string{"schedule.frequency"}},
		{"weekly without days", func(p *Policy) { p.Schedule.Frequency = FrequencyWeekly }, false, []string{"schedule.days.required"}},
		{"daily with days", func(p *Policy) { p.Schedule.Days = []string{"monday"} }, false, []string{"schedule.days.forbidden"}},
		{"bad and repeated days", func(p *Policy) {
			p.Schedule.Frequency, p.Schedule.Days = FrequencyWeekly, []string{"Monday", "friday", "friday"}
		}, false, []string{"schedule.days.unique", "schedule.days.value"}},
		{"no times", func(p *Policy) { p.Schedule.Times = nil }, false, []string{"schedule.times.count"}},
		{"four times", func(p *Policy) {
			p.Schedule.Times = []string{"00:00", "06:00", "12:00", "18:00"}
		}, false, []string{"schedule.times.count"}},
		{"time format", func(p *Policy) { p.Schedule.Times = []string{"9:00", "24:00", "21:00:00"} }, false,
			[]string{"schedule.times.format", "schedule.times.format", "schedule.times.format"}},
		{"unreadable time is no repeat", func(p *Policy) { p.Schedule.Times = []string{"x", "00:00"} }, false, []string{"schedule.times.format"}},
		{"granularity", func(p *Policy) { p.Schedule.Times = []string{"21:15"} }, false, []string{"schedule.times.granularity"}},
		{"repeated time", func(p *Policy) { p.Schedule.Times = []string{"21:00", "21:00"} }, false, []string{"schedule.times.unique"}},
		{"empty zone", func(p *Policy) { p.Schedule.TimeZone = "" }, false, []string{"schedule.timezone"}},
		{"Local zone", func(p *Policy) { p.Schedule.TimeZone = "Local" }, false, []string{"schedule.timezone"}},
		{"unknown zone", func(p *Policy) { p.Schedule.TimeZone = "Mars/Olympus_Mons" }, false, []string{"schedule.timezone"}},
		{"path as zone", func(p *Policy) { p.Schedule.TimeZone = "../../etc/passwd" }, false, []string{"schedule.timezone"}},

		{"daily zero", func(p *Policy) { p.Retention.DailyDays = 0 }, false, []string{"retention.daily.min"}},
		{"daily over max", func(p *Policy) { p.Retention.DailyDays = 10000 }, false, []string{"retention.daily.max"}},
		{"negative long-term", func(p *Policy) {
			p.Retention.WeeklyWeeks, p.Retention.MonthlyMonths, p.Retention.YearlyYears = -1, -1, -1
		}, false, []string{"retention.monthly.min", "retention.weekly.min", "retention.yearly.min"}},
		{"long-term over max", func(p *Policy) {
			p.Retention.DailyDays = 1
			p.Retention.WeeklyWeeks, p.Retention.MonthlyMonths, p.Retention.YearlyYears = 5164, 1189, 100
		}, false, []string{"retention.monthly.max", "retention.weekly.max", "retention.yearly.max"}},
		{"long-term at max", func(p *Policy) {
			p.Retention.DailyDays = 1
			p.Retention.WeeklyWeeks, p.Retention.MonthlyMonths, p.Retention.YearlyYears = 5163, 1188, 99
		}, false, nil},
		{"anchors", func(p *Policy) {
			p.Retention.WeeklyDay, p.Retention.MonthlyDay, p.Retention.YearlyMonth = "sun", 29, 13
		}, false, []string{"retention.monthly_day", "retention.weekly_day", "retention.yearly_month"}},
		{"points: 3 a day for 3333 days is 9999 daily plus 12 weekly and 12 monthly", func(p *Policy) {
			p.Schedule.Times = []string{"00:00", "08:00", "16:00"}
			p.Retention.DailyDays = 3333
		}, false, []string{"retention.max_points"}},
		{"points: weekly schedule scales daily", func(p *Policy) {
			p.Schedule.Frequency, p.Schedule.Days = FrequencyWeekly, []string{"saturday"}
			p.Schedule.Times = []string{"00:00", "08:00", "16:00"}
			p.Retention.DailyDays = 9999 // ceil(9999/7)*3 = 4287, plus 24
		}, false, nil},
		{"points: exactly 9999", func(p *Policy) {
			p.Retention = Retention{DailyDays: 9900, WeeklyWeeks: 50, MonthlyMonths: 40, YearlyYears: 9}
		}, false, nil},
		{"points: 10000", func(p *Policy) {
			p.Retention = Retention{DailyDays: 9900, WeeklyWeeks: 50, MonthlyMonths: 40, YearlyYears: 10}
		}, false, []string{"retention.max_points"}},
		{"security minimums", func(p *Policy) {
			p.Retention = Retention{DailyDays: 6, WeeklyWeeks: 3, MonthlyMonths: 2, YearlyYears: 1}
		}, true, []string{"retention.security_minimum.daily", "retention.security_minimum.monthly", "retention.security_minimum.weekly"}},
		{"security minimums met, long-term off", func(p *Policy) {
			p.Retention = Retention{DailyDays: 7}
		}, true, nil},
		{"short retention without security features", func(p *Policy) {
			p.Retention = Retention{DailyDays: 1, WeeklyWeeks: 1, MonthlyMonths: 1}
		}, false, nil},

		{"no include", func(p *Policy) { p.Include = nil }, false, []string{"include.required"}},
		{"include entries", func(p *Policy) {
			p.Include = []string{"", "srv/data", "C:Data", `\\server`, "/srv/../etc", "/a\x00b", "/" + strings.Repeat("a", MaxPathLength)}
		}, false, []string{"include.absolute", "include.absolute", "include.absolute", "include.clean", "include.clean", "include.empty", "include.length"}},
		{"include max", func(p *Policy) { p.Include = many(MaxPaths+1, "/x") }, false, []string{"include.max"}},
		{"include at max", func(p *Policy) { p.Include = many(MaxPaths, "/x") }, false, nil},
		{"exclude entries", func(p *Policy) {
			p.Exclude = []string{"", "cache/tmp", "/srv/[a-", "[]"}
		}, false, []string{"exclude.empty", "exclude.pattern", "exclude.pattern", "exclude.pattern"}},
		{"exclude max", func(p *Policy) { p.Exclude = many(MaxPaths+1, "*.tmp") }, false, []string{"exclude.max"}},

		{"throttle days", func(p *Policy) { p.Throttle.WorkDays = nil }, false, []string{"throttle.workdays.required"}},
		{"throttle day names", func(p *Policy) { p.Throttle.WorkDays = []string{"mon", "friday", "friday"} }, false,
			[]string{"throttle.workdays.unique", "throttle.workdays.value"}},
		{"throttle hour format", func(p *Policy) { p.Throttle.WorkStart, p.Throttle.WorkEnd = "9", "24:30" }, false,
			[]string{"throttle.hours.format", "throttle.hours.format"}},
		{"throttle granularity", func(p *Policy) { p.Throttle.WorkStart = "09:15" }, false, []string{"throttle.hours.granularity"}},
		{"throttle start after end", func(p *Policy) { p.Throttle.WorkStart, p.Throttle.WorkEnd = "18:00", "09:00" }, false, []string{"throttle.hours"}},
		{"throttle empty window", func(p *Policy) { p.Throttle.WorkStart, p.Throttle.WorkEnd = "09:00", "09:00" }, false, []string{"throttle.hours"}},
		{"throttle rates", func(p *Policy) { p.Throttle.WorkKbps, p.Throttle.NonWorkKbps = 511, MaxKbps+1 }, false,
			[]string{"throttle.rate.range", "throttle.rate.range"}},
		{"throttle rates at limits", func(p *Policy) { p.Throttle.WorkKbps, p.Throttle.NonWorkKbps = MinKbps, MaxKbps }, false, nil},

		{"everything at once", func(p *Policy) {
			*p = Policy{Throttle: Throttle{Enabled: true}}
		}, true, []string{
			"include.required", "retention.daily.min", "schedule.frequency", "schedule.times.count", "schedule.timezone",
			"throttle.hours.format", "throttle.hours.format", "throttle.rate.range", "throttle.rate.range", "throttle.workdays.required",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.edit(&p)
			err := p.Validate(tc.secure)
			if got := rules(err); !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v (error: %v)", got, tc.want, err)
			}
			if err != nil && rules(err) == nil {
				t.Errorf("error %T is not a *ValidationError", err)
			}
		})
	}
}

func TestValidationMessages(t *testing.T) {
	p := valid()
	p.Schedule.Times = []string{"00:00", "06:00", "12:00", "18:00"}
	p.Include = append(p.Include, "data")
	err := p.Validate(false)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 2 {
		t.Fatalf("got %v, want two violations", err)
	}
	want := []struct{ field, msg string }{
		{"schedule.times", "schedule.times allows at most 3 backups a day; you gave 4"},
		{"include[3]", `include[3] is "data", which is not absolute`},
	}
	for i, w := range want {
		v := ve.Violations[i]
		if v.Field != w.field || !strings.Contains(v.Message, w.msg) {
			t.Errorf("violation %d = %+v, want field %q and message containing %q", i, v, w.field, w.msg)
		}
		if !strings.Contains(err.Error(), w.msg) {
			t.Errorf("Error() = %q lacks %q", err.Error(), w.msg)
		}
	}
	if err := (*Policy)(nil).Validate(false); !slices.Equal(rules(err), []string{"policy.required"}) {
		t.Errorf("nil policy: %v", err)
	}
}

func TestDefault(t *testing.T) {
	p := Default("America/New_York")
	if err := p.Validate(true); !slices.Equal(rules(err), []string{"include.required"}) {
		t.Errorf("Default must be valid but for its include: %v", err)
	}
	next, err := p.Schedule.Next(utc("2026-06-01T00:00:00Z"))
	if err != nil || !next.Equal(utc("2026-06-01T01:00:00Z")) { // 21:00 EDT on 31 May
		t.Errorf("Next = %s, %v", next, err)
	}
}

func TestDecode(t *testing.T) {
	good, err := json.Marshal(valid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"round trip", string(good), ""},
		{"trailing space", string(good) + " \n", ""},
		{"unknown field", `{"schedule":{"frequency":"daily","time":["21:00"]}}`, `unknown field "time"`},
		{"trailing data", string(good) + `{}`, "data after the policy"},
		{"trailing garbage", string(good) + `x`, "data after the policy"},
		{"wrong type", `{"include":"/srv"}`, "cannot unmarshal"},
		{"truncated", string(good[:len(good)/2]), "decode policy"},
		{"empty", ``, "decode policy"},
		{"too large", `"` + strings.Repeat("a", MaxSize) + `"`, "more than the"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				want := valid()
				if got, _ := json.Marshal(p); string(got) != string(good) {
					t.Errorf("decoded %s, want %+v", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := json.Marshal(valid())
	f.Add(good)
	f.Add([]byte(`{"schedule":{"frequency":"weekly","days":["sunday"],"times":["02:30"],"timeZone":"America/New_York"},"retention":{"dailyDays":7},"include":["/"]}`))
	f.Add([]byte(`{"schedule":{"timeZone":"Australia/Lord_Howe"},"exclude":["[","**/x/**"],"throttle":{"enabled":true,"workEnd":"24:00"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Decode(in)
		if err != nil {
			return
		}
		for _, secure := range []bool{false, true} {
			if err := p.Validate(secure); err != nil && len(rules(err)) == 0 {
				t.Fatalf("Validate returned %v without violations", err)
			}
		}
		// Whatever decodes must be safe to compute with, valid or not.
		at := utc("2026-03-08T06:00:00Z")
		next, errNext := p.Schedule.Next(at)
		prev, errPrev := p.Schedule.Prev(at)
		if (errNext == nil) != (errPrev == nil) {
			t.Fatalf("Next and Prev disagree on validity: %v, %v", errNext, errPrev)
		}
		if errNext == nil && (!next.After(at) || prev.After(at)) {
			t.Fatalf("Next %s, Prev %s around %s", next, prev, at)
		}
		loc := time.UTC
		p.Throttle.RateAt(at, loc)
		if c := p.Throttle.NextChange(at, loc); !c.IsZero() && !c.After(at) {
			t.Fatalf("NextChange %s is not after %s", c, at)
		}
		for _, e := range p.Exclude {
			MatchExclude(e, "/srv/data/x", false)
		}
		ReducesRetention(p.Retention, Retention{})
	})
}

func TestReducesRetention(t *testing.T) {
	base := Retention{DailyDays: 30, WeeklyWeeks: 12, MonthlyMonths: 12, MonthlyDay: 1, YearlyYears: 3}
	tests := []struct {
		name string
		edit func(*Retention)
		want bool
	}{
		{"same", func(*Retention) {}, false},
		{"longer everywhere", func(r *Retention) { r.DailyDays++; r.WeeklyWeeks++; r.MonthlyMonths++; r.YearlyYears++ }, false},
		{"defaults spelt out", func(r *Retention) { r.WeeklyDay, r.MonthlyDay, r.YearlyMonth = "sunday", 0, 1 }, false},
		{"fewer daily days", func(r *Retention) { r.DailyDays = 29 }, true},
		{"fewer weeks", func(r *Retention) { r.WeeklyWeeks = 11 }, true},
		{"weekly off", func(r *Retention) { r.WeeklyWeeks = 0 }, true},
		{"fewer months", func(r *Retention) { r.MonthlyMonths = 1 }, true},
		{"yearly off", func(r *Retention) { r.YearlyYears = 0 }, true},
		{"weekly day moved", func(r *Retention) { r.WeeklyDay = "friday" }, true},
		{"monthly day moved", func(r *Retention) { r.MonthlyDay = 15 }, true},
		{"yearly month moved", func(r *Retention) { r.YearlyMonth = 12 }, true},
		{"longer but weekly day moved", func(r *Retention) { r.WeeklyWeeks = 52; r.WeeklyDay = "monday" }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			tc.edit(&next)
			if got := ReducesRetention(base, next); got != tc.want {
				t.Errorf("ReducesRetention = %v, want %v", got, tc.want)
			}
		})
	}
	// Moving the day of a category that is off keeps nothing less.
	off := Retention{DailyDays: 30}
	if ReducesRetention(off, Retention{DailyDays: 30, WeeklyDay: "friday", MonthlyDay: 9, YearlyMonth: 5}) {
		t.Error("moving the days of inactive categories counts as a reduction")
	}
}

func TestMatchExclude(t *testing.T) {
	tests := []struct {
		pattern, name string
		fold, want    bool
	}{
		{"*.tmp", "/srv/data/a.tmp", false, true},
		{"*.tmp", "/a.tmp/inside", false, true}, // a matching folder excludes its contents
		{"*.tmp", "/srv/data/a.tmpx", false, false},
		{"*.TMP", "/srv/a.tmp", false, false},
		{"*.TMP", "/srv/a.tmp", true, true},
		{"node_modules", "/home/u/app/node_modules/x/y.js", false, true},
		{"/srv/data/cache", "/srv/data/cache", false, true},
		{"/srv/data/cache", "/srv/data/cache/a/b", false, true},
		{"/srv/data/cache/", "/srv/data/cache/a", false, true},
		{"/srv/data/cache", "/srv/data/cachet", false, false},
		{"/srv/data/cache", "/other/srv/data/cache", false, false},
		{"/srv/*/cache", "/srv/x/cache/f", false, true},
		{"/srv/*/cache", "/srv/x/y/cache", false, false},
		{"/srv/**/cache", "/srv/x/y/cache", false, true},
		{"/srv/**/cache", "/srv/cache", false, true},
		{"**/.git", "/a/b/.git/config", false, true},
		{"/home/*/.cache/**", "/home/u/.cache/x", false, true},
		{`/a\*b`, "/a*b", false, true},
		{`/a\*b`, "/axb", false, false},
		{`C:\Data\**\*.bak`, "C:/Data/x/y/old.BAK", false, true},
		{`C:\Data\Temp`, "c:/data/temp/f", false, true},
		{`C:\Data\Temp`, "D:/Data/Temp/f", false, false},
		{`\\server\share\tmp`, "//server/share/tmp/f", false, true},
		{`\\server\share\tmp`, "//other/share/tmp/f", false, false},
		{"/srv/[a-", "/srv/a", false, false}, // malformed excludes nothing
		{"cache/tmp", "/cache/tmp", false, false},
	}
	for _, tc := range tests {
		if got := MatchExclude(tc.pattern, tc.name, tc.fold); got != tc.want {
			t.Errorf("MatchExclude(%q, %q, %v) = %v, want %v", tc.pattern, tc.name, tc.fold, got, tc.want)
		}
	}
}
