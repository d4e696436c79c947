// Package forget decides which recovery points a standalone repository
// keeps, the way restic's `forget` does: the newest N points, one per hour,
// day, ISO week, month or year for the newest N such periods, every point
// within a duration of the newest, and every point with a given tag. A
// point is kept if any rule keeps it; each point is judged within its group
// (same host and paths by default), so one machine's or one folder set's
// points never push another's out.
//
// In a vault, retention is the control plane's (shared/retention, MARS
// style, from server timestamps); this package is only for --repo.
package forget

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is what to keep. The zero Policy keeps nothing, which Apply
// refuses, so an empty command line can never delete every point.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       time.Duration
	Tags                                         []string
}

// Empty reports whether the policy names no rule.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 && p.Within == 0 && len(p.Tags) == 0
}

// ErrEmptyPolicy refuses a policy that would forget every point.
var ErrEmptyPolicy = errors.New("no keep rule given: name at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag (forget never removes every point)")

// Validate refuses negative counts and an empty policy.
func (p Policy) Validate() error {
	for _, c := range []struct {
		n    int
		flag string
	}{{p.Last, "--keep-last"}, {p.Hourly, "--keep-hourly"}, {p.Daily, "--keep-daily"}, {p.Weekly, "--keep-weekly"}, {p.Monthly, "--keep-monthly"}, {p.Yearly, "--keep-yearly"}} {
		if c.n < 0 {
			return fmt.Errorf("%s %d: give a count of 0 or more", c.flag, c.n)
		}
	}
	if p.Within < 0 {
		return fmt.Errorf("--keep-within %v: give a positive duration", p.Within)
	}
	if p.Empty() {
		return ErrEmptyPolicy
	}
	return nil
}

// Point is what the rules look at.
type Point struct {
	ID    string
	Time  time.Time
	Host  string
	Paths []string
	Tags  []string
}

// Decision is the verdict on one point.
type Decision struct {
	Point   Point
	Keep    bool
	Reasons []string // why it is kept, e.g. "last", "daily 2026-12-01"
}

// GroupBy says which fields split points into groups.
type GroupBy struct{ Host, Paths bool }

// Group is one set of points judged together.
type Group struct {
	Host      string   `json:"host,omitempty"`
	Paths     []string `json:"paths,omitempty"`
	Decisions []Decision
}

// Apply groups the points and judges each group, newest point first. loc
// is the time zone periods are counted in (the machine's, as restic does).
func Apply(points []Point, p Policy, by GroupBy, loc *time.Location) ([]Group, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	index := map[string]int{}
	var groups []Group
	for _, pt := range points {
		var g Group
		if by.Host {
			g.Host = pt.Host
		}
		if by.Paths {
			g.Paths = slices.Sorted(slices.Values(pt.Paths))
		}
		key := g.Host + "\x00" + strings.Join(g.Paths, "\x00")
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, g)
		}
		groups[i].Decisions = append(groups[i].Decisions, Decision{Point: pt})
	}
	for i := range groups {
		decide(groups[i].Decisions, p, loc)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return slices.Compare(a.Paths, b.Paths)
	})
	return groups, nil
}

// bucket rules: a point is kept when its period differs from the last kept
// one's, until the rule's count runs out. Newest first, so each period
// keeps its newest point.
type bucket struct {
	name  string
	n     int
	key   func(time.Time) string
	last  string
	taken bool
}

func decide(ds []Decision, p Policy, loc *time.Location) {
	slices.SortStableFunc(ds, func(a, b Decision) int {
		if c := b.Point.Time.Compare(a.Point.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Point.ID, a.Point.ID)
	})
	if loc == nil {
		loc = time.Local
	}
	buckets := []*bucket{
		{name: "hourly", n: p.Hourly, key: func(t time.Time) string { return t.Format("2006-01-02 15h") }},
		{name: "daily", n: p.Daily, key: func(t time.Time) string { return t.Format("2006-01-02") }},
		{name: "weekly", n: p.Weekly, key: func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%04d-W%02d", y, w) }},
		{name: "monthly", n: p.Monthly, key: func(t time.Time) string { return t.Format("2006-01") }},
		{name: "yearly", n: p.Yearly, key: func(t time.Time) string { return t.Format("2006") }},
	}
	var newest time.Time
	if len(ds) > 0 {
		newest = ds[0].Point.Time
	}
	for i := range ds {
		d := &ds[i]
		t := d.Point.Time.In(loc)
		if i < p.Last {
			d.Reasons = append(d.Reasons, "last")
		}
		for _, b := range buckets {
			if b.n == 0 {
				continue
			}
			k := b.key(t)
			if b.taken && k == b.last {
				continue
			}
			b.last, b.taken = k, true
			b.n--
			d.Reasons = append(d.Reasons, b.name+" "+k)
		}
		if p.Within > 0 && !d.Point.Time.Before(newest.Add(-p.Within)) {
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for _, tag := range p.Tags {
			if slices.Contains(d.Point.Tags, tag) {
				d.Reasons = append(d.Reasons, "tag "+tag)
			}
		}
		d.Keep = len(d.Reasons) > 0
	}
}

// ParseDuration reads --keep-within: Go durations (36h, 90m) and restic's
// units y, m (months), w, d, h, as in 1y6m or 2w3d.
func ParseDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	orig := s
	var total time.Duration
	if s == "" {
		return 0, errors.New("empty duration")
	}
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("duration %q: write a number and a unit, e.g. 7d, 2w, 6m, 1y, 36h", orig)
		}
		var n int64
		for _, c := range s[:i] {
			n = n*10 + int64(c-'0')
			if n > 1e6 {
				return 0, fmt.Errorf("duration %q is too long", orig)
			}
		}
		var unit time.Duration
		switch s[i] {
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		case 'm':
			unit = 30 * 24 * time.Hour
		case 'y':
			unit = 365 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("duration %q: unknown unit %q; use h, d, w, m (months) or y", orig, s[i])
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
	}
	return total, nil
}
