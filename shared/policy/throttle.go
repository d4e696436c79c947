package policy

import (
	"slices"
	"time"
)

// BytesPerSecond converts a rate in Kbps (1000 bit/s each) to bytes/s.
func BytesPerSecond(kbps int) int64 { return int64(kbps) * 1000 / 8 }

// workHours is a throttle ready for time arithmetic; ok is false when the
// work hours cannot be read, and then every hour is non-work.
type workHours struct {
	days       [7]bool
	start, end int // minutes after midnight
	ok         bool
}

func (t Throttle) hours() workHours {
	var w workHours
	for _, d := range t.WorkDays {
		if wd, ok := parseWeekday(d); ok {
			w.days[wd] = true
		}
	}
	var okStart, okEnd bool
	w.start, okStart = parseClock(t.WorkStart, false)
	w.end, okEnd = parseClock(t.WorkEnd, true)
	w.ok = okStart && okEnd && w.start < w.end
	return w
}

// window is the work period of date d, resolved by the package's DST rule
// like a schedule time, so RateAt and NextChange agree through the
// repeated hour of fall-back (the period is not re-entered).
func (w workHours) window(d date, loc *time.Location) (start, end time.Time, ok bool) {
	if !w.ok || !w.days[d.weekday()] {
		return time.Time{}, time.Time{}, false
	}
	return d.at(w.start, loc), d.at(w.end, loc), true
}

func (w workHours) working(at time.Time, loc *time.Location) bool {
	d := dateOf(at.In(loc))
	for i := -1; i <= 1; i++ {
		if s, e, ok := w.window(d.add(i), loc); ok && !at.Before(s) && at.Before(e) {
			return true
		}
	}
	return false
}

// clampKbps keeps an unvalidated rate in range: a zero rate would stall
// the agent and a huge one would overflow.
func clampKbps(k int) int { return min(max(k, MinKbps), MaxKbps) }

// RateAt is the upload limit at an instant, in bytes/s: WorkKbps inside the
// work hours of a work day (wall-clock in loc), NonWorkKbps otherwise.
// limited is false when throttling is off. Work hours that DST skips or
// repeats follow the schedule rule: a start or end in a gap takes effect at
// the gap's end, and one that occurs twice takes effect at its first
// occurrence. A nil loc means UTC. RateAt expects a validated throttle; a
// rate out of range is clamped and unreadable hours count as non-work.
func (t Throttle) RateAt(at time.Time, loc *time.Location) (bytesPerSecond int64, limited bool) {
	if !t.Enabled {
		return 0, false
	}
	if loc == nil {
		loc = time.UTC
	}
	if t.hours().working(at, loc) {
		return BytesPerSecond(clampKbps(t.WorkKbps)), true
	}
	return BytesPerSecond(clampKbps(t.NonWorkKbps)), true
}

// NextChange is the first instant after at when RateAt returns a different
// rate, so the agent can re-arm its limiter then. It is the zero time when
// the rate never changes: throttling off, equal rates, or no work hours.
func (t Throttle) NextChange(at time.Time, loc *time.Location) time.Time {
	if !t.Enabled {
		return time.Time{}
	}
	if loc == nil {
		loc = time.UTC
	}
	w := t.hours()
	if clampKbps(t.WorkKbps) == clampKbps(t.NonWorkKbps) {
		return time.Time{}
	}
	current := w.working(at, loc)
	var edges []time.Time
	d := dateOf(at.In(loc))
	for i := -1; i <= 8; i++ { // a week ahead holds the next work day's start
		if s, e, ok := w.window(d.add(i), loc); ok {
			edges = append(edges, s, e)
		}
	}
	slices.SortFunc(edges, func(a, b time.Time) int { return a.Compare(b) })
	for _, e := range edges {
		if e.After(at) && w.working(e, loc) != current {
			return e
		}
	}
	return time.Time{}
}
