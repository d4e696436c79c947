package retention

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pts names points after their times, so expectations read as times.
func pts(times ...string) []Point {
	out := make([]Point, len(times))
	for i, s := range times {
		out[i] = Point{ID: s, Time: utc(s)}
	}
	return out
}

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		zone   string
		r      policy.Retention
		now    string
		points []Point
		want   map[string][]string // ID -> reasons of kept points; the rest are deleted
	}{
		{
			name: "empty", zone: "UTC", r: policy.Retention{DailyDays: 1}, now: "2026-03-31T22:00:00Z",
			want: map[string][]string{},
		},
		{
			name: "newest kept though expired", zone: "UTC", r: policy.Retention{DailyDays: 1}, now: "2026-03-31T22:00:00Z",
			points: pts("2025-01-01T21:00:00Z", "2025-01-02T21:00:00Z"),
			want:   map[string][]string{"2025-01-02T21:00:00Z": {"newest"}},
		},
		{
			name: "daily window is (now-24h×days, now]", zone: "UTC", r: policy.Retention{DailyDays: 2}, now: "2026-03-31T22:00:00Z",
			points: pts("2026-03-29T22:00:00Z", "2026-03-29T22:00:00.000000001Z", "2026-03-31T22:00:00Z"),
			want: map[string][]string{
				"2026-03-29T22:00:00.000000001Z": {"daily"},
				"2026-03-31T22:00:00Z":           {"newest", "daily"},
			},
		},
		{
			name: "future points kept", zone: "UTC", r: policy.Retention{DailyDays: 1}, now: "2026-03-31T22:00:00Z",
			points: pts("2026-03-31T23:00:00Z", "2026-03-31T21:00:00Z", "2026-03-31T22:30:00Z"),
			want: map[string][]string{
				"2026-03-31T23:00:00Z": {"newest", "future"},
				"2026-03-31T22:30:00Z": {"future"},
				"2026-03-31T21:00:00Z": {"daily"},
			},
		},
		{
			name: "missed Sunday replaced by Monday", zone: "UTC", r: policy.Retention{DailyDays: 1, WeeklyWeeks: 3}, now: "2026-03-31T22:00:00Z",
			points: pts("2026-03-14T21:00:00Z", "2026-03-16T21:00:00Z", "2026-03-17T21:00:00Z", "2026-03-22T21:00:00Z",
				"2026-03-23T21:00:00Z", "2026-03-29T21:00:00Z", "2026-03-30T21:00:00Z", "2026-03-31T21:00:00Z"),
			want: map[string][]string{
				"2026-03-16T21:00:00Z": {"weekly 2026-W11"},
				"2026-03-22T21:00:00Z": {"weekly 2026-W12"},
				"2026-03-29T21:00:00Z": {"weekly 2026-W13"},
				"2026-03-31T21:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "one point serves weeks of outage", zone: "UTC", r: policy.Retention{DailyDays: 1, WeeklyWeeks: 8}, now: "2026-03-31T22:00:00Z",
			points: pts("2026-01-01T21:00:00Z", "2026-03-20T21:00:00Z", "2026-03-31T21:00:00Z"),
			want: map[string][]string{
				"2026-03-20T21:00:00Z": {"weekly 2026-W06", "weekly 2026-W07", "weekly 2026-W08", "weekly 2026-W09", "weekly 2026-W10", "weekly 2026-W11"},
				"2026-03-31T21:00:00Z": {"newest", "daily", "weekly 2026-W12", "weekly 2026-W13"},
			},
		},
		{
			name: "weekly day and exact instant", zone: "UTC", r: policy.Retention{DailyDays: 1, WeeklyWeeks: 2, WeeklyDay: "wednesday"}, now: "2026-03-25T00:00:00Z",
			points: pts("2026-03-17T23:59:59Z", "2026-03-18T00:00:00Z", "2026-03-24T12:00:00Z", "2026-03-25T00:00:00Z"),
			want: map[string][]string{
				"2026-03-18T00:00:00Z": {"weekly 2026-W12"},
				"2026-03-25T00:00:00Z": {"newest", "daily", "weekly 2026-W13"},
				"2026-03-24T12:00:00Z": {"daily"},
			},
		},
		{
			// London's Sunday begins at 23:00 UTC on Saturday in summer time.
			name: "local midnight in a DST week", zone: "Europe/London", r: policy.Retention{DailyDays: 1, WeeklyWeeks: 1}, now: "2026-10-27T12:00:00Z",
			points: pts("2026-10-24T22:30:00Z", "2026-10-24T23:30:00Z", "2026-10-25T12:00:00Z", "2026-10-27T11:00:00Z"),
			want: map[string][]string{
				"2026-10-24T23:30:00Z": {"weekly 2026-W43"},
				"2026-10-27T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			// Santiago skips local midnight when DST starts: Sunday begins at 01:00.
			name: "designated midnight in a DST gap", zone: "America/Santiago", r: policy.Retention{DailyDays: 1, WeeklyWeeks: 1}, now: "2026-09-08T12:00:00Z",
			points: pts("2026-09-06T03:59:59Z", "2026-09-06T04:00:00Z", "2026-09-08T11:00:00Z"),
			want: map[string][]string{
				"2026-09-06T04:00:00Z": {"weekly 2026-W36"},
				"2026-09-08T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "month boundaries", zone: "UTC", r: policy.Retention{DailyDays: 1, MonthlyMonths: 2}, now: "2026-03-31T12:00:00Z",
			points: pts("2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z", "2026-02-28T22:00:00Z", "2026-03-02T10:00:00Z", "2026-03-31T11:00:00Z"),
			want: map[string][]string{
				"2026-02-01T00:00:00Z": {"monthly 2026-02"},
				"2026-03-02T10:00:00Z": {"monthly 2026-03"},
				"2026-03-31T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "one month on the 31st keeps one monthly point", zone: "UTC", r: policy.Retention{DailyDays: 1, MonthlyMonths: 1, MonthlyDay: 28}, now: "2026-03-31T12:00:00Z",
			points: pts("2026-02-28T12:00:00Z", "2026-03-28T12:00:00Z", "2026-03-31T11:00:00Z"),
			want: map[string][]string{
				"2026-03-28T12:00:00Z": {"monthly 2026-03"},
				"2026-03-31T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "monthly day not reached this month", zone: "UTC", r: policy.Retention{DailyDays: 1, MonthlyMonths: 2, MonthlyDay: 15}, now: "2026-03-10T12:00:00Z",
			points: pts("2025-12-20T12:00:00Z", "2026-01-15T12:00:00Z", "2026-02-16T12:00:00Z", "2026-03-10T11:00:00Z"),
			want: map[string][]string{
				"2026-01-15T12:00:00Z": {"monthly 2026-01"},
				"2026-02-16T12:00:00Z": {"monthly 2026-02"},
				"2026-03-10T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "yearly in December", zone: "UTC", r: policy.Retention{DailyDays: 1, YearlyYears: 2, YearlyMonth: 12}, now: "2026-06-01T12:00:00Z",
			points: pts("2023-12-05T12:00:00Z", "2024-11-30T12:00:00Z", "2024-12-03T12:00:00Z", "2025-12-01T00:00:00Z", "2026-06-01T11:00:00Z"),
			want: map[string][]string{
				"2024-12-03T12:00:00Z": {"yearly 2024"},
				"2025-12-01T00:00:00Z": {"yearly 2025"},
				"2026-06-01T11:00:00Z": {"newest", "daily"},
			},
		},
		{
			name: "all categories on one point", zone: "UTC",
			r:   policy.Retention{DailyDays: 1, WeeklyWeeks: 1, WeeklyDay: "thursday", MonthlyMonths: 1, YearlyYears: 1},
			now: "2026-01-02T12:00:00Z", points: pts("2025-12-31T12:00:00Z", "2026-01-01T00:00:00Z"),
			want: map[string][]string{
				"2026-01-01T00:00:00Z": {"newest", "weekly 2026-W01", "monthly 2026-01", "yearly 2026"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Apply(tc.points, tc.r, zone(t, tc.zone), utc(tc.now))
			if len(got) != len(tc.points) {
				t.Fatalf("%d decisions for %d points", len(got), len(tc.points))
			}
			for i, d := range got {
				if d.Point != tc.points[i] {
					t.Fatalf("decision %d is for %v, want %v (input order)", i, d.Point, tc.points[i])
				}
				want, keep := tc.want[d.Point.ID]
				if d.Keep != keep || !slices.Equal(d.Reasons, want) {
					t.Errorf("%s: keep %v %q, want keep %v %q", d.Point.ID, d.Keep, d.Reasons, keep, want)
				}
			}
		})
	}
}

func TestApplyTies(t *testing.T) {
	at := utc("2026-03-01T00:00:00Z")
	points := []Point{{"c", at}, {"a", at}, {"b", at}}
	got := Apply(points, policy.Retention{MonthlyMonths: 1}, time.UTC, utc("2026-03-20T00:00:00Z"))
	want := map[string][]string{"a": {"monthly 2026-03"}, "c": {"newest"}}
	for _, d := range got {
		if w := want[d.Point.ID]; !slices.Equal(d.Reasons, w) {
			t.Errorf("%s: %q, want %q", d.Point.ID, d.Reasons, w)
		}
	}
}

// simulate makes two backups a day for days days, with the server's delay
// of up to an hour, missed days at random and a ten-day outage.
func simulate(rng *rand.Rand, loc *time.Location, start time.Time, days int) []Point {
	var out []Point
	y, m, d := start.In(loc).Date()
	outage := 100 + rng.IntN(days-120)
	for i := range days {
		if rng.IntN(8) == 0 || (i >= outage && i < outage+10) {
			continue
		}
		for _, h := range []int{9, 21} {
			if rng.IntN(20) == 0 {
				continue // one of the two failed
			}
			at := time.Date(y, m, d+i, h, 0, 0, 0, loc).Add(time.Duration(rng.IntN(3600)) * time.Second)
			out = append(out, Point{ID: fmt.Sprintf("p%04d-%02d", i, h), Time: at})
		}
	}
	// The server lists points in no particular order.
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// oracle decides retention by brute force, independently of Apply: it walks
// back from today one calendar day at a time, takes the first designated
// days it meets (up to each category's count), and finds each designated
// point by a linear scan. It uses time.Date, so it suits only zones whose
// midnight always exists. It returns each kept point's categories.
func oracle(points []Point, r policy.Retention, loc *time.Location, now time.Time) map[string][]string {
	kept := map[string][]string{}
	add := func(id, cat string) {
		if !slices.Contains(kept[id], cat) {
			kept[id] = append(kept[id], cat)
		}
	}
	newest := points[0]
	for _, p := range points {
		if p.Time.After(newest.Time) || (p.Time.Equal(newest.Time) && p.ID > newest.ID) {
			newest = p
		}
		if p.Time.After(now) {
			add(p.ID, "future")
		} else if now.Sub(p.Time) < time.Duration(r.DailyDays)*24*time.Hour {
			add(p.ID, "daily")
		}
	}
	add(newest.ID, "newest")

	wd := map[string]time.Weekday{"": time.Sunday, "sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday,
		"wednesday": time.Wednesday, "thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday}[r.WeeklyDay]
	md, ym := r.MonthlyDay, time.Month(r.YearlyMonth)
	if md == 0 {
		md = 1
	}
	if ym == 0 {
		ym = time.January
	}
	cats := []string{"weekly", "monthly", "yearly"}
	left := []int{r.WeeklyWeeks, r.MonthlyMonths, r.YearlyYears}
	ny, nm, nd := now.In(loc).Date()
	for back := 0; back < 40000 && left[0]+left[1]+left[2] > 0; back++ {
		midnight := time.Date(ny, nm, nd-back, 0, 0, 0, 0, loc)
		if midnight.After(now) {
			continue
		}
		_, m, d := midnight.Date()
		designated := []bool{midnight.Weekday() == wd, d == md, d == md && m == ym}
		for c, cat := range cats {
			if !designated[c] || left[c] == 0 {
				continue
			}
			left[c]--
			var first *Point
			for i := range points {
				p := &points[i]
				if p.Time.Before(midnight) {
					continue
				}
				if first == nil || p.Time.Before(first.Time) || (p.Time.Equal(first.Time) && p.ID < first.ID) {
					first = p
				}
			}
			if first != nil {
				add(first.ID, cat)
			}
		}
	}
	for id := range kept {
		slices.Sort(kept[id])
	}
	return kept
}

// categories strips period labels: "weekly 2026-W12" is "weekly".
func categories(reasons []string) []string {
	var out []string
	for _, r := range reasons {
		c, _, _ := strings.Cut(r, " ")
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

func TestApplySimulatedYear(t *testing.T) {
	configs := []policy.Retention{
		{DailyDays: 30, WeeklyWeeks: 12, MonthlyMonths: 12, YearlyYears: 2},
		{DailyDays: 7, WeeklyWeeks: 4, WeeklyDay: "wednesday", MonthlyMonths: 3, MonthlyDay: 28, YearlyYears: 1, YearlyMonth: 3},
		{DailyDays: 1, WeeklyWeeks: 60, WeeklyDay: "saturday", MonthlyMonths: 14, MonthlyDay: 15},
		{DailyDays: 400},
		{DailyDays: 3, WeeklyWeeks: policy.MaxWeeklyWeeks, MonthlyMonths: policy.MaxMonthlyMonths, YearlyYears: policy.MaxYearlyYears},
	}
	for _, zoneName := range []string{"Europe/London", "America/New_York", "UTC"} {
		loc := zone(t, zoneName)
		for seed := range uint64(3) {
			rng := rand.New(rand.NewPCG(seed, 42))
			start := time.Date(2025, 2, 20, 0, 0, 0, 0, loc).AddDate(0, 0, rng.IntN(60))
			points := simulate(rng, loc, start, 400)
			now := time.Date(2025, 2, 20, 0, 0, 0, 0, loc).AddDate(0, 0, 460+rng.IntN(3)).Add(time.Duration(rng.IntN(24*60)) * time.Minute)
			for ci, r := range configs {
				t.Run(fmt.Sprintf("%s/seed%d/config%d", zoneName, seed, ci), func(t *testing.T) {
					want := oracle(points, r, loc, now)
					got := Apply(points, r, loc, now)
					kept := 0
					for _, d := range got {
						w, ok := want[d.Point.ID]
						if d.Keep != ok || !slices.Equal(categories(d.Reasons), w) {
							t.Errorf("%s at %s: keep %v %q; oracle keep %v %q", d.Point.ID, d.Point.Time.In(loc), d.Keep, d.Reasons, ok, w)
						}
						if d.Keep {
							kept++
						}
					}
					if kept != len(want) {
						t.Errorf("kept %d points, oracle %d", kept, len(want))
					}
				})
			}
		}
	}
}

// TestApplyMonotone: lengthening any category never deletes a kept point,
// so a retention increase needs no PIN.
func TestApplyMonotone(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	zones := []*time.Location{time.UTC, zone(t, "Europe/London"), zone(t, "Australia/Lord_Howe"), zone(t, "America/Santiago")}
	days := []string{"", "monday", "sunday", "friday"}
	base := utc("2024-01-01T00:00:00Z")
	for iter := range 300 {
		n := 1 + rng.IntN(300)
		points := make([]Point, n)
		for i := range points {
			// Coarse times make ties common.
			points[i] = Point{ID: fmt.Sprint(i), Time: base.Add(time.Duration(rng.IntN(3*365*24)) * time.Hour)}
		}
		loc := zones[rng.IntN(len(zones))]
		now := base.Add(time.Duration(rng.IntN(4*365*24)) * time.Hour)
		r := policy.Retention{
			DailyDays: 1 + rng.IntN(60), WeeklyWeeks: rng.IntN(60), WeeklyDay: days[rng.IntN(len(days))],
			MonthlyMonths: rng.IntN(30), MonthlyDay: rng.IntN(29), YearlyYears: rng.IntN(4), YearlyMonth: rng.IntN(13),
		}
		more := r
		switch rng.IntN(4) {
		case 0:
			more.DailyDays += 1 + rng.IntN(30)
		case 1:
			more.WeeklyWeeks += 1 + rng.IntN(30)
		case 2:
			more.MonthlyMonths += 1 + rng.IntN(30)
		case 3:
			more.YearlyYears += 1 + rng.IntN(3)
		}
		if policy.ReducesRetention(r, more) {
			t.Fatalf("%+v -> %+v counted as a reduction", r, more)
		}
		before := Apply(points, r, loc, now)
		after := Apply(points, more, loc, now)
		for i := range before {
			if before[i].Keep && !after[i].Keep {
				t.Fatalf("iteration %d: %+v -> %+v deletes point %v (was kept for %q)", iter, r, more, before[i].Point, before[i].Reasons)
			}
		}
	}
}

// TestApplyOrderIndependent: the server may list points in any order; the
// decisions must not depend on it.
func TestApplyOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	loc := zone(t, "Europe/London")
	points := simulate(rng, loc, utc("2025-01-01T00:00:00Z"), 200)
	r := policy.Retention{DailyDays: 14, WeeklyWeeks: 8, MonthlyMonths: 6}
	now := utc("2025-07-25T00:00:00Z")
	want := map[string]string{}
	for _, d := range Apply(points, r, loc, now) {
		want[d.Point.ID] = fmt.Sprint(d.Keep, d.Reasons)
	}
	rng.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
	for _, d := range Apply(points, r, loc, now) {
		if got := fmt.Sprint(d.Keep, d.Reasons); got != want[d.Point.ID] {
			t.Errorf("%s: %s after shuffling, %s before", d.Point.ID, got, want[d.Point.ID])
		}
	}
}

func tenThousand() ([]Point, *time.Location, time.Time) {
	loc, _ := time.LoadLocation("Europe/London")
	start := utc("2017-01-01T00:00:00Z")
	points := make([]Point, 10000)
	for i := range points {
		points[i] = Point{ID: fmt.Sprint(i), Time: start.Add(time.Duration(i) * 8 * time.Hour)}
	}
	return points, loc, points[len(points)-1].Time.Add(time.Hour)
}

var maxRetention = policy.Retention{DailyDays: 3000, WeeklyWeeks: policy.MaxWeeklyWeeks, MonthlyMonths: policy.MaxMonthlyMonths, YearlyYears: policy.MaxYearlyYears}

func TestApplyTenThousand(t *testing.T) {
	points, loc, now := tenThousand()
	got := Apply(points, maxRetention, loc, now)
	kept := 0
	for _, d := range got {
		if d.Keep {
			kept++
		}
	}
	// 3000 days of three points a day, and every earlier Sunday, 1st and 1 January.
	if len(got) != len(points) || kept < 9000 || kept > 9500 {
		t.Errorf("%d decisions, %d kept", len(got), kept)
	}
}

func BenchmarkApply(b *testing.B) {
	points, loc, now := tenThousand()
	for b.Loop() {
		Apply(points, maxRetention, loc, now)
	}
}
