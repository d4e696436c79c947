// Package retention decides which recovery points a policy keeps. The
// control plane runs it on the times it assigned to points itself, so a
// compromised agent cannot push real points out of retention.
//
// Apply keeps a point when any of these holds, and records every reason:
//
//   - "newest": it is the newest point; a machine is never left without one.
//   - "future": its time is after now (clock skew between servers must not
//     delete a fresh point).
//   - "daily": now − DailyDays×24h < time <= now.
//   - "weekly 2026-W12": for every week the designated instant is 00:00 local
//     on WeeklyDay, and the weekly point is the first point at or after it.
//     A missed backup is thus replaced by the next one that succeeded, as in
//     MARS, and after a long outage one point may serve several weeks. The
//     points of the last WeeklyWeeks designated instants at or before now are
//     kept (instants within WeeklyWeeks×7 calendar days of now). The label is
//     the ISO week of the designated day.
//   - "monthly 2026-03": the same with the instant at 00:00 local on
//     MonthlyDay (default 1) of each month, for the last MonthlyMonths months
//     (instants after now minus MonthlyMonths calendar months).
//   - "yearly 2026": the same with the instant at 00:00 local on MonthlyDay of
//     YearlyMonth (default January), for the last YearlyYears years.
//
// Local midnight follows policy.LocalTime: where DST skips it, the instant
// is the end of the gap. Points at the same time are ordered by ID, so the
// result is deterministic. Apply runs in O(n log n + k log n) for n points
// and k designated instants (at most some 6,500 with MARS's maximums).
package retention

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
)

// Point is a recovery point and its server-assigned time.
type Point struct {
	ID   string
	Time time.Time
}

// Decision says whether a point is kept and why; Reasons is empty for a
// point that may be deleted.
type Decision struct {
	Point   Point
	Keep    bool
	Reasons []string
}

// Reasons without a period label.
const (
	ReasonNewest = "newest"
	ReasonFuture = "future"
	ReasonDaily  = "daily"
)

// Apply decides every point, returning one Decision per point in input
// order. loc is the zone of the policy's schedule (nil means UTC). Apply
// expects a validated retention; counts out of range are clamped to the
// policy limits and an invalid day falls back to its default.
func Apply(points []Point, r policy.Retention, loc *time.Location, now time.Time) []Decision {
	if loc == nil {
		loc = time.UTC
	}
	out := make([]Decision, len(points))
	for i, p := range points {
		out[i].Point = p
	}
	if len(points) == 0 {
		return out
	}
	keep := func(i int, reason string) {
		out[i].Keep = true
		out[i].Reasons = append(out[i].Reasons, reason)
	}

	// order holds point indexes by time, then ID, then input position.
	order := make([]int, len(points))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(points[a].Time.Compare(points[b].Time), cmp.Compare(points[a].ID, points[b].ID), cmp.Compare(a, b))
	})
	// firstFrom is the point designated by instant: the first at or after it.
	firstFrom := func(instant time.Time) (int, bool) {
		j := sort.Search(len(order), func(k int) bool { return !points[order[k]].Time.Before(instant) })
		if j == len(order) {
			return 0, false
		}
		return order[j], true
	}

	keep(order[len(order)-1], ReasonNewest)
	dailyDays := clamp(r.DailyDays, policy.MaxDailyDays)
	dailyFrom := now.Add(-time.Duration(dailyDays) * 24 * time.Hour)
	for i, p := range points {
		switch {
		case p.Time.After(now):
			keep(i, ReasonFuture)
		case p.Time.After(dailyFrom):
			keep(i, ReasonDaily)
		}
	}

	day := r.EffectiveMonthlyDay()
	long := []struct {
		n    int
		step func(k int) (time.Time, string) // k-th designated instant back from the latest
	}{
		{clamp(r.WeeklyWeeks, policy.MaxWeeklyWeeks), weekly(now, loc, r.EffectiveWeeklyDay())},
		{clamp(r.MonthlyMonths, policy.MaxMonthlyMonths), monthly(now, loc, day)},
		{clamp(r.YearlyYears, policy.MaxYearlyYears), yearly(now, loc, r.EffectiveYearlyMonth(), day)},
	}
	for _, c := range long {
		// Oldest first, so a point serving several instants lists them in order.
		for k := c.n - 1; k >= 0; k-- {
			instant, label := c.step(k)
			if i, ok := firstFrom(instant); ok {
				keep(i, label)
			}
		}
	}
	return out
}

func clamp(n, limit int) int { return min(max(n, 0), limit) }

// latest steps back from now's local date to the last designated date
// whose instant is at or before now. Calendar stepping avoids DST: a week
// is not always 168 hours.
func latest(now time.Time, loc *time.Location, back func(y int, m time.Month, d, k int) (int, time.Month, int)) (int, time.Month, int) {
	y, m, d := now.In(loc).Date()
	y, m, d = back(y, m, d, 0)
	if policy.LocalTime(y, m, d, 0, 0, loc).After(now) {
		y, m, d = back(y, m, d, 1)
	}
	return y, m, d
}

func weekly(now time.Time, loc *time.Location, wd time.Weekday) func(int) (time.Time, string) {
	y, m, d := latest(now, loc, func(y int, m time.Month, d, k int) (int, time.Month, int) {
		t := time.Date(y, m, d, 12, 0, 0, 0, time.UTC)
		back := (int(t.Weekday())-int(wd)+7)%7 + 7*k
		return t.AddDate(0, 0, -back).Date()
	})
	return func(k int) (time.Time, string) {
		t := time.Date(y, m, d-7*k, 12, 0, 0, 0, time.UTC)
		yy, ww := t.ISOWeek()
		ty, tm, td := t.Date()
		return policy.LocalTime(ty, tm, td, 0, 0, loc), fmt.Sprintf("weekly %04d-W%02d", yy, ww)
	}
}

func monthly(now time.Time, loc *time.Location, day int) func(int) (time.Time, string) {
	y, m, _ := latest(now, loc, func(y int, m time.Month, d, k int) (int, time.Month, int) {
		if d < day {
			k++ // this month's day is still to come
		}
		t := time.Date(y, m-time.Month(k), day, 12, 0, 0, 0, time.UTC)
		return t.Date()
	})
	return func(k int) (time.Time, string) {
		t := time.Date(y, m-time.Month(k), day, 12, 0, 0, 0, time.UTC)
		ty, tm, td := t.Date()
		return policy.LocalTime(ty, tm, td, 0, 0, loc), fmt.Sprintf("monthly %04d-%02d", ty, int(tm))
	}
}

func yearly(now time.Time, loc *time.Location, month time.Month, day int) func(int) (time.Time, string) {
	y, _, _ := latest(now, loc, func(y int, m time.Month, d, k int) (int, time.Month, int) {
		if m < month || (m == month && d < day) {
			k++ // this year's day is still to come
		}
		return y - k, month, day
	})
	return func(k int) (time.Time, string) {
		return policy.LocalTime(y-k, month, day, 0, 0, loc), fmt.Sprintf("yearly %04d", y-k)
	}
}
