package policy

import (
	"math"
	"time"
)

// LocalTime is the instant at which the wall clock in loc shows
// year-month-day hour:minute, by the package's DST rule: a time in a
// spring-forward gap resolves to the first instant after the gap, and a time
// that occurs twice resolves to its first occurrence. Fields out of range
// normalise as in time.Date (hour 24 is the next day's midnight). A nil loc
// means UTC.
//
// time.Date is not used for the answer because it leaves both DST cases
// unspecified ("correct in one of the two zones").
func LocalTime(year int, month time.Month, day, hour, minute int, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	// The wall clock read as if it were UTC: instant = wall - offset.
	wall := time.Date(year, month, day, hour, minute, 0, 0, time.UTC).Unix()
	// Every UTC offset in the tz database is within 16 hours, so the zones
	// in force in this window are all that can show the wall clock.
	const window = 16 * 3600
	t := time.Unix(wall-window, 0).In(loc)
	prevOff, prevEnd, havePrev := 0, int64(0), false
	gap, haveGap := int64(0), false
	for range 16 { // a few transitions at most fall in 32 hours
		_, off := t.Zone()
		start, end := t.ZoneBounds()
		s, e := int64(math.MinInt64), int64(math.MaxInt64)
		if !start.IsZero() {
			s = start.Unix()
		}
		if !end.IsZero() {
			e = end.Unix()
		}
		// Zones are visited in time order, so the first that shows the
		// wall clock gives its first occurrence.
		if c := wall - int64(off); s <= c && c < e {
			return time.Unix(c, 0).In(loc)
		}
		// At a transition T the wall clocks [T+prevOff, T+off) never show.
		if havePrev && !haveGap && prevEnd == s && s+int64(prevOff) <= wall && wall < s+int64(off) {
			gap, haveGap = s, true
		}
		if e == math.MaxInt64 || e > wall+window {
			break
		}
		prevOff, prevEnd, havePrev = off, e, true
		t = time.Unix(e, 0).In(loc)
	}
	if haveGap {
		return time.Unix(gap, 0).In(loc)
	}
	// Unreachable with real zone data; time.Date is the best remaining guess.
	return time.Date(year, month, day, hour, minute, 0, 0, loc)
}

// date is a calendar day, free of any zone.
type date struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) date {
	y, m, d := t.Date()
	return date{y, m, d}
}

// add moves n days, across month and year ends.
func (d date) add(n int) date {
	return dateOf(time.Date(d.y, d.m, d.d+n, 12, 0, 0, 0, time.UTC))
}

func (d date) weekday() time.Weekday {
	return time.Date(d.y, d.m, d.d, 12, 0, 0, 0, time.UTC).Weekday()
}

// at resolves minutes after midnight on d in loc.
func (d date) at(minutes int, loc *time.Location) time.Time {
	return LocalTime(d.y, d.m, d.d, minutes/60, minutes%60, loc)
}
