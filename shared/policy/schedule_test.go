package policy

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestLocalTime(t *testing.T) {
	tests := []struct {
		zone       string
		y          int
		m          time.Month
		d, h, min  int
		want, note string
	}{
		{"UTC", 2026, 6, 1, 21, 0, "2026-06-01T21:00:00Z", "no DST"},
		{"America/New_York", 2026, 3, 8, 1, 30, "2026-03-08T06:30:00Z", "before the gap, EST"},
		{"America/New_York", 2026, 3, 8, 2, 0, "2026-03-08T07:00:00Z", "gap start runs at 03:00 EDT"},
		{"America/New_York", 2026, 3, 8, 2, 30, "2026-03-08T07:00:00Z", "in the gap runs at 03:00 EDT (time.Date gives 01:30 EST)"},
		{"America/New_York", 2026, 3, 8, 3, 0, "2026-03-08T07:00:00Z", "gap end"},
		{"America/New_York", 2026, 11, 1, 1, 0, "2026-11-01T05:00:00Z", "repeated hour, first (EDT)"},
		{"America/New_York", 2026, 11, 1, 1, 30, "2026-11-01T05:30:00Z", "repeated hour, first (EDT)"},
		{"America/New_York", 2026, 11, 1, 2, 0, "2026-11-01T07:00:00Z", "after the repeat, EST"},
		{"Europe/London", 2026, 3, 29, 1, 0, "2026-03-29T01:00:00Z", "gap start runs at 02:00 BST"},
		{"Europe/London", 2026, 3, 29, 1, 30, "2026-03-29T01:00:00Z", "in the gap runs at 02:00 BST"},
		{"Europe/London", 2026, 10, 25, 1, 30, "2026-10-25T00:30:00Z", "repeated, first (BST)"},
		{"Australia/Lord_Howe", 2026, 10, 4, 2, 0, "2026-10-03T15:30:00Z", "30-minute gap runs at 02:30 +11"},
		{"Australia/Lord_Howe", 2026, 10, 4, 2, 30, "2026-10-03T15:30:00Z", "gap end"},
		{"Australia/Lord_Howe", 2026, 4, 5, 1, 30, "2026-04-04T14:30:00Z", "30-minute repeat, first (+11)"},
		{"Australia/Lord_Howe", 2026, 4, 5, 2, 0, "2026-04-04T15:30:00Z", "after the repeat, +10:30"},
		{"America/Santiago", 2026, 9, 6, 0, 0, "2026-09-06T04:00:00Z", "midnight in the gap runs at 01:00"},
		{"America/Santiago", 2026, 4, 4, 23, 30, "2026-04-05T02:30:00Z", "repeat before midnight, first"},
		{"Pacific/Apia", 2011, 12, 30, 12, 0, "2011-12-30T10:00:00Z", "a skipped day runs when the next begins"},
		{"Europe/London", 2026, 3, 28, 24, 0, "2026-03-29T00:00:00Z", "hour 24 normalises"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d-%02d-%02d %02d:%02d", tc.zone, tc.y, tc.m, tc.d, tc.h, tc.min), func(t *testing.T) {
			got := LocalTime(tc.y, tc.m, tc.d, tc.h, tc.min, mustZone(t, tc.zone))
			if !got.Equal(utc(tc.want)) {
				t.Errorf("got %s (%s), want %s: %s", got.UTC().Format(time.RFC3339), got, tc.want, tc.note)
			}
		})
	}
}

func TestNextPrev(t *testing.T) {
	daily := func(zone string, times ...string) Schedule {
		return Schedule{Frequency: FrequencyDaily, Times: times, TimeZone: zone}
	}
	weekly := Schedule{Frequency: FrequencyWeekly, Days: []string{"monday", "friday"}, Times: []string{"21:30", "09:00"}, TimeZone: "UTC"}
	tests := []struct {
		name     string
		s        Schedule
		at       string
		next     string
		prev     string
		nextNote string
	}{
		{"NY spring gap", daily("America/New_York", "02:30"), "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z", "2026-03-07T07:30:00Z", "02:30 runs at 03:00 EDT"},
		{"NY spring gap, after the run", daily("America/New_York", "02:30"), "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-08T07:00:00Z", "next day 02:30 EDT"},
		{"NY fall back, first occurrence", daily("America/New_York", "01:30"), "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", "2026-10-31T05:30:00Z", "01:30 EDT"},
		{"NY fall back, no second run", daily("America/New_York", "01:30"), "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-01T05:30:00Z", "not 01:30 EST the same day"},
		{"NY fall back, in the repeat", daily("America/New_York", "01:30"), "2026-11-01T06:45:00Z", "2026-11-02T06:30:00Z", "2026-11-01T05:30:00Z", ""},
		{"London spring", daily("Europe/London", "01:30", "12:00"), "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z", "2026-03-28T12:00:00Z", "02:00 BST"},
		{"London fall", daily("Europe/London", "01:30"), "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-25T00:30:00Z", ""},
		{"Lord Howe spring", daily("Australia/Lord_Howe", "02:00"), "2026-10-03T13:00:00Z", "2026-10-03T15:30:00Z", "2026-10-02T15:30:00Z", "02:30 +11"},
		{"Lord Howe fall", daily("Australia/Lord_Howe", "01:30"), "2026-04-04T14:30:00Z", "2026-04-05T15:00:00Z", "2026-04-04T14:30:00Z", "01:30 +10:30 next day"},
		{"weekly, midweek", weekly, "2026-03-11T10:00:00Z", "2026-03-13T09:00:00Z", "2026-03-09T21:30:00Z", "Friday"},
		{"weekly, exactly on a run", weekly, "2026-03-13T09:00:00Z", "2026-03-13T21:30:00Z", "2026-03-13T09:00:00Z", "strictly after"},
		{"weekly, over the weekend", weekly, "2026-03-13T22:00:00Z", "2026-03-16T09:00:00Z", "2026-03-13T21:30:00Z", "Monday"},
		{"single weekly day", Schedule{Frequency: FrequencyWeekly, Days: []string{"sunday"}, Times: []string{"00:00"}, TimeZone: "UTC"},
			"2026-03-15T00:00:00Z", "2026-03-22T00:00:00Z", "2026-03-15T00:00:00Z", "a week on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The input zone must not matter.
			at := utc(tc.at).In(mustZone(t, "Asia/Tokyo"))
			next, err := tc.s.Next(at)
			if err != nil {
				t.Fatal(err)
			}
			if !next.Equal(utc(tc.next)) {
				t.Errorf("Next(%s) = %s, want %s (%s)", tc.at, next.UTC().Format(time.RFC3339), tc.next, tc.nextNote)
			}
			prev, err := tc.s.Prev(at)
			if err != nil {
				t.Fatal(err)
			}
			if !prev.Equal(utc(tc.prev)) {
				t.Errorf("Prev(%s) = %s, want %s", tc.at, prev.UTC().Format(time.RFC3339), tc.prev)
			}
		})
	}
}

// TestScheduleYear walks a year of runs through both DST changes and checks,
// without using LocalTime, that every scheduled day has one run per time at
// the right wall clock, and that Next and Prev agree.
func TestScheduleYear(t *testing.T) {
	tests := []struct {
		zone  string
		times []string // chosen to hit the gap and the repeat without two times merging
		days  []string
	}{
		{"America/New_York", []string{"01:30", "02:30", "12:00"}, nil},
		{"America/New_York", []string{"02:30", "01:30"}, []string{"sunday", "wednesday"}},
		{"Europe/London", []string{"01:30", "12:00", "23:30"}, nil},
		{"Europe/London", []string{"01:00"}, []string{"sunday"}},
		{"Australia/Lord_Howe", []string{"01:30", "02:00", "12:00"}, nil},
		{"Australia/Lord_Howe", []string{"02:00", "01:30"}, []string{"saturday", "sunday"}},
		{"UTC", []string{"00:00", "23:30"}, []string{"monday"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %v %v", tc.zone, tc.times, tc.days), func(t *testing.T) {
			s := Schedule{Frequency: FrequencyDaily, Times: tc.times, TimeZone: tc.zone}
			if tc.days != nil {
				s.Frequency, s.Days = FrequencyWeekly, tc.days
			}
			if err := s.validate(); err != nil {
				t.Fatal(err)
			}
			loc := mustZone(t, tc.zone)
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, loc).Add(-time.Nanosecond)
			end := time.Date(2027, 1, 1, 0, 0, 0, 0, loc)

			var runs []time.Time
			perDay := map[string]int{}
			for at := start; ; {
				n, err := s.Next(at)
				if err != nil {
					t.Fatal(err)
				}
				if !n.After(at) {
					t.Fatalf("Next(%s) = %s, not after", at, n)
				}
				if !n.Before(end) {
					break
				}
				checkWallClock(t, n.In(loc), tc.times)
				runs = append(runs, n)
				perDay[n.In(loc).Format(time.DateOnly)]++
				at = n
			}

			wantDays := map[string]bool{}
			for _, d := range tc.days {
				wantDays[d] = true
			}
			total := 0
			for d := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
				want := len(tc.times)
				if tc.days != nil && !wantDays[lower(d.Weekday())] {
					want = 0
				}
				total += want
				if got := perDay[d.Format(time.DateOnly)]; got != want {
					t.Errorf("%s (%s): %d runs, want %d", d.Format(time.DateOnly), d.Weekday(), got, want)
				}
			}
			if len(runs) != total {
				t.Errorf("%d runs in the year, want %d", len(runs), total)
			}

			for i, r := range runs {
				if p, _ := s.Prev(r); !p.Equal(r) {
					t.Fatalf("Prev(run %s) = %s, want the run", r, p)
				}
				if i > 0 {
					if p, _ := s.Prev(r.Add(-time.Nanosecond)); !p.Equal(runs[i-1]) {
						t.Fatalf("Prev(just before %s) = %s, want %s", r, p, runs[i-1])
					}
				}
			}
		})
	}
}

func lower(d time.Weekday) string {
	for name, wd := range weekdayNames {
		if wd == d {
			return name
		}
	}
	return ""
}

// checkWallClock checks a run against the DST rule by looking at the wall
// clock around it: either it shows a listed time that it did not show
// earlier the same night, or the clock has just jumped over a listed time.
func checkWallClock(t *testing.T, run time.Time, times []string) {
	t.Helper()
	hm := run.Format("15:04")
	if slices.Contains(times, hm) {
		// A first occurrence: 30 or 60 minutes earlier (the DST shifts in the
		// test zones) the clock did not show the same time.
		for _, back := range []time.Duration{30 * time.Minute, time.Hour} {
			if run.Add(-back).Format("15:04") == hm {
				t.Errorf("run at %s is the second occurrence of %s", run, hm)
			}
		}
		return
	}
	before := run.Add(-time.Nanosecond).Format("15:04")
	for _, tt := range times {
		if before < tt && tt < hm {
			return // the clock jumped from before tt to after it: a gap
		}
	}
	t.Errorf("run at %s (%s local) is neither a listed time %v nor the end of a DST gap", run.UTC(), hm, times)
}

// TestScheduleMergedTimes: times that all fall in or at the end of one gap
// resolve to one instant and run once.
func TestScheduleMergedTimes(t *testing.T) {
	s := Schedule{Frequency: FrequencyDaily, Times: []string{"02:00", "02:30", "03:00"}, TimeZone: "America/New_York"}
	at := utc("2026-03-08T05:00:00Z") // midnight EST
	var got []string
	for range 4 {
		n, err := s.Next(at)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n.UTC().Format(time.RFC3339))
		at = n
	}
	want := []string{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z", "2026-03-09T07:00:00Z"}
	if !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
}

func TestNextInvalidSchedule(t *testing.T) {
	tests := []struct {
		name string
		s    Schedule
		rule string
	}{
		{"no zone", Schedule{Frequency: FrequencyDaily, Times: []string{"21:00"}}, "schedule.timezone"},
		{"Local", Schedule{Frequency: FrequencyDaily, Times: []string{"21:00"}, TimeZone: "Local"}, "schedule.timezone"},
		{"no times", Schedule{Frequency: FrequencyDaily, TimeZone: "UTC"}, "schedule.times.count"},
		{"weekly without days", Schedule{Frequency: FrequencyWeekly, Times: []string{"21:00"}, TimeZone: "UTC"}, "schedule.days.required"},
		{"bad time", Schedule{Frequency: FrequencyDaily, Times: []string{"9pm"}, TimeZone: "UTC"}, "schedule.times.format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for name, f := range map[string]func(time.Time) (time.Time, error){"Next": tc.s.Next, "Prev": tc.s.Prev} {
				_, err := f(utc("2026-01-01T00:00:00Z"))
				var ve *ValidationError
				if !errors.As(err, &ve) || !slices.ContainsFunc(ve.Violations, func(v wire.Violation) bool { return v.Rule == tc.rule }) {
					t.Errorf("%s: error %v, want one naming rule %s", name, err, tc.rule)
				}
			}
		})
	}
}

// validate is a test helper: the schedule's own rules.
func (s Schedule) validate() error {
	var c checker
	s.check(&c)
	return c.err()
}

func BenchmarkNext(b *testing.B) {
	s := Schedule{Frequency: FrequencyWeekly, Days: []string{"monday", "thursday"}, Times: []string{"01:30", "12:00", "21:00"}, TimeZone: "Europe/London"}
	at := utc("2026-03-28T23:00:00Z")
	for b.Loop() {
		if _, err := s.Next(at); err != nil {
			b.Fatal(err)
		}
	}
}
