package forget

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// series makes one point every step back from start, newest first in ID
// order p00, p01, ….
func series(start time.Time, step time.Duration, n int) []Point {
	var ps []Point
	for i := range n {
		ps = append(ps, Point{ID: fmt.Sprintf("p%02d", i), Time: start.Add(-time.Duration(i) * step), Host: "h", Paths: []string{"/a"}})
	}
	return ps
}

func kept(gs []Group) []string {
	var out []string
	for _, g := range gs {
		for _, d := range g.Decisions {
			if d.Keep {
				out = append(out, d.Point.ID)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestApply(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) // a Friday
	sixHourly := series(start, 6*time.Hour, 40)            // 10 days, 4 a day
	tagged := series(start, 24*time.Hour, 5)
	tagged[3].Tags = []string{"keep"}
	for _, tc := range []struct {
		name   string
		points []Point
		p      Policy
		want   []string
	}{
		{"last", sixHourly, Policy{Last: 3}, []string{"p00", "p01", "p02"}},
		// 12:00, 06:00, 00:00 on the 4th, then 18:00 on the 3rd is the newest of the 3rd.
		{"daily keeps each day's newest", sixHourly, Policy{Daily: 3}, []string{"p00", "p03", "p07"}},
		{"last and daily overlap", sixHourly, Policy{Last: 2, Daily: 2}, []string{"p00", "p01", "p03"}},
		{"hourly", sixHourly, Policy{Hourly: 2}, []string{"p00", "p01"}},
		// Friday 4th back to Monday 30 Nov, 00:00 (p18), is ISO week 49; Sunday 29 Nov, 18:00 (p19), is week 48.
		{"weekly", sixHourly, Policy{Weekly: 2}, []string{"p00", "p19"}},
		{"monthly", sixHourly, Policy{Monthly: 5}, []string{"p00", "p15"}},
		{"yearly", sixHourly, Policy{Yearly: 1}, []string{"p00"}},
		{"within", sixHourly, Policy{Within: 12 * time.Hour}, []string{"p00", "p01", "p02"}},
		{"tag", tagged, Policy{Last: 1, Tags: []string{"keep"}}, []string{"p00", "p03"}},
		{"more than there are", tagged, Policy{Daily: 100}, []string{"p00", "p01", "p02", "p03", "p04"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, err := Apply(tc.points, tc.p, GroupBy{Host: true, Paths: true}, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if got := kept(gs); !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApplyGroups(t *testing.T) {
	start := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var ps []Point
	for i, g := range []struct {
		host  string
		paths []string
	}{{"a", []string{"/x"}}, {"a", []string{"/y"}}, {"b", []string{"/x"}}, {"a", []string{"/x"}}, {"a", []string{"/y"}}, {"b", []string{"/x"}}} {
		ps = append(ps, Point{ID: fmt.Sprintf("p%d", i), Time: start.Add(-time.Duration(i) * time.Hour), Host: g.host, Paths: g.paths})
	}
	for _, tc := range []struct {
		name   string
		by     GroupBy
		groups int
		want   []string
	}{
		{"host and paths", GroupBy{Host: true, Paths: true}, 3, []string{"p0", "p1", "p2"}},
		{"host", GroupBy{Host: true}, 2, []string{"p0", "p2"}},
		{"none", GroupBy{}, 1, []string{"p0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, err := Apply(ps, Policy{Last: 1}, tc.by, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != tc.groups {
				t.Errorf("%d groups, want %d", len(gs), tc.groups)
			}
			if got := kept(gs); !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if _, err := Apply(nil, Policy{}, GroupBy{}, time.UTC); !errors.Is(err, ErrEmptyPolicy) {
		t.Errorf("empty policy: %v, want ErrEmptyPolicy", err)
	}
	if err := (Policy{Daily: -1}).Validate(); err == nil {
		t.Error("negative count accepted")
	}
}

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"36h", 36 * time.Hour, true},
		{"90m0s", 90 * time.Minute, true},
		{"7d", 7 * day, true},
		{"2w3d", 17 * day, true},
		{"1y6m", 545 * day, true},
		{"", 0, false},
		{"d", 0, false},
		{"5", 0, false},
		{"5x", 0, false},
	} {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
