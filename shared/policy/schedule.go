package policy

import (
	"fmt"
	"slices"
	"time"
)

// plan is a schedule ready for time arithmetic.
type plan struct {
	loc   *time.Location
	times []int // minutes after midnight, ascending
	days  [7]bool
}

func (s Schedule) plan() (*plan, error) {
	var c checker
	s.check(&c)
	if err := c.err(); err != nil {
		return nil, fmt.Errorf("schedule cannot be computed: %w", err)
	}
	loc, err := loadZone(s.TimeZone)
	if err != nil { // check already loaded it; kept for safety
		return nil, err
	}
	p := &plan{loc: loc}
	for _, t := range s.Times {
		m, _ := parseClock(t, false)
		p.times = append(p.times, m)
	}
	slices.Sort(p.times)
	if s.Frequency == FrequencyDaily {
		p.days = [7]bool{true, true, true, true, true, true, true}
	}
	for _, d := range s.Days {
		wd, _ := parseWeekday(d)
		p.days[wd] = true
	}
	return p, nil
}

// runs calls f with every run of the scheduled days from..to (inclusive),
// ascending within a day.
func (p *plan) runs(from date, days int, f func(time.Time)) {
	for i := range days {
		d := from.add(i)
		if !p.days[d.weekday()] {
			continue
		}
		for _, m := range p.times {
			f(d.at(m, p.loc))
		}
	}
}

// The search windows cover a whole week either side, more than any
// weekly schedule's gap, plus days whose runs a DST gap could move to
// the next date.
const (
	behind = 2
	ahead  = 16
)

// Next is the first scheduled run strictly after after, in the schedule's
// zone. Each scheduled day has one run per listed time, resolved by the
// package's DST rule: a time skipped by spring-forward runs at the first
// instant after the gap (02:30 on the US spring day runs at 03:00 EDT), and
// a time repeated by fall-back runs at its first occurrence only (01:30 EDT,
// not 01:30 EST). Times that resolve to the same instant run once. It fails
// only if the schedule is invalid.
func (s Schedule) Next(after time.Time) (time.Time, error) {
	p, err := s.plan()
	if err != nil {
		return time.Time{}, err
	}
	var best time.Time
	p.runs(dateOf(after.In(p.loc)).add(-behind), behind+ahead, func(t time.Time) {
		if t.After(after) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	})
	return best, nil
}

// Prev is the latest scheduled run at or before at, by the same rules as
// Next. The missed-backup monitor compares it with the last backup's time.
func (s Schedule) Prev(at time.Time) (time.Time, error) {
	p, err := s.plan()
	if err != nil {
		return time.Time{}, err
	}
	var best time.Time
	p.runs(dateOf(at.In(p.loc)).add(-ahead), behind+ahead, func(t time.Time) {
		if !t.After(at) && (best.IsZero() || t.After(best)) {
			best = t
		}
	})
	return best, nil
}
