package controlplane

import (
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Over a simulated year of nightly backups, some of them missed, the
// hourly retention timer keeps exactly the points a GFS policy of 7 daily,
// 4 weekly, 3 monthly and 1 yearly should keep, and deletes the rest from
// storage too.
func TestRetentionKeepsExactlyTheGFSPointsOverASimulatedYear(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a year of backups")
	}
	c := newCP(t, cpOptions{})
	v := c.vault("retention-year")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)
	loc, _ := time.LoadLocation("Europe/London")

	pol := goodPolicy()
	pol.Schedule = policy.Schedule{Frequency: policy.FrequencyDaily, Times: []string{"21:00"}, TimeZone: "Europe/London"}
	pol.Retention = policy.Retention{DailyDays: 7, WeeklyWeeks: 4, WeeklyDay: "sunday", MonthlyMonths: 3, MonthlyDay: 1, YearlyYears: 1, YearlyMonth: 1}
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/gfs", pol, nil)
	must(t, err)
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/policy", wire.AssignPolicy{Policy: "gfs"}, nil)
	must(t, err)

	// The agent's SAS would expire in simulated time; the objects are
	// written with the account key, which retention does not care about.
	cc, err := container.NewClientFromConnectionString(emu.ConnectionString(), a.Reg.Container, nil)
	must(t, err)

	// A fixed year, so the last day is not a 29th-31st, where "three
	// calendar months ago" has more than one reading.
	first := time.Date(2027, time.January, 10, 21, 0, 0, 0, loc)
	c.Clock.Advance(first.Sub(c.Clock.Now()))
	var made []wire.Point
	for d := 0; d < 365; d++ {
		at := time.Date(first.Year(), first.Month(), first.Day()+d, 21, 0, 0, 0, loc)
		c.Clock.Advance(at.Sub(c.Clock.Now()))
		// Missed: every Sunday in one month, the 1st of two months, and a
		// week away; the next backup must take over their roles.
		missed := (d >= 120 && d < 150 && at.Weekday() == time.Sunday) || (at.Day() == 1 && (d > 200 && d < 270)) || (d >= 300 && d < 307)
		if !missed {
			made = append(made, a.backup(t, cc, randomID()))
		}
		c.Clock.Advance(time.Hour)
		_, err := c.App.Timers.EnforceRetention(ctx)
		must(t, err)
	}

	now := c.Clock.Now()
	want := gfsOracle(made, pol.Retention, loc, now)
	var got []wire.Point
	_, err = c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/points", nil, &got)
	must(t, err)
	gotIDs, wantIDs := ids(got), ids(want)
	if !slices.Equal(gotIDs, wantIDs) {
		t.Fatalf("kept %d points, want %d\n got: %v\nwant: %v", len(got), len(want), times(got, loc), times(want, loc))
	}
	if len(want) < 12 { // 7 daily, 3 more weekly, 3 monthly (one of them also yearly)
		t.Fatalf("oracle kept only %d points; the test is not exercising GFS", len(want))
	}
	// Expired points are gone from storage as well; kept ones are there.
	for _, p := range made {
		keep := slices.Contains(wantIDs, p.ID)
		if blobExists(t, cc, packrefs.Name(p.ID)) != keep || blobExists(t, cc, "points/"+p.ID) != keep {
			t.Fatalf("point %s (%s): objects present = %v, want %v", p.ID[:8], p.Time.In(loc), !keep, keep)
		}
	}
}

// gfsOracle is the policy's meaning, written out plainly: every point of
// the last DailyDays days; for each weekly, monthly and yearly instant still
// in its window, the first point at or after it; and the newest point.
func gfsOracle(ps []wire.Point, r policy.Retention, loc *time.Location, now time.Time) []wire.Point {
	keep := map[string]bool{}
	firstFrom := func(instant time.Time) {
		for _, p := range ps { // ps is in time order
			if !p.Time.Before(instant) {
				keep[p.ID] = true
				return
			}
		}
	}
	for _, p := range ps {
		if p.Time.After(now.Add(-time.Duration(r.DailyDays) * 24 * time.Hour)) {
			keep[p.ID] = true
		}
	}
	local := now.In(loc)
	for d := 0; d <= 400; d++ {
		day := time.Date(local.Year(), local.Month(), local.Day()-d, 0, 0, 0, 0, loc)
		if day.After(now) {
			continue
		}
		if day.Weekday() == time.Sunday && day.After(now.Add(-time.Duration(r.WeeklyWeeks)*7*24*time.Hour)) {
			firstFrom(day)
		}
		if day.Day() == 1 && day.After(now.AddDate(0, -r.MonthlyMonths, 0)) {
			firstFrom(day)
		}
		if day.Day() == 1 && day.Month() == time.January && day.After(now.AddDate(-r.YearlyYears, 0, 0)) {
			firstFrom(day)
		}
	}
	keep[ps[len(ps)-1].ID] = true
	var out []wire.Point
	for _, p := range ps {
		if keep[p.ID] {
			out = append(out, p)
		}
	}
	return out
}

func ids(ps []wire.Point) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	slices.Sort(out)
	return out
}

func times(ps []wire.Point, loc *time.Location) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Time.In(loc).Format("2006-01-02 Mon")
	}
	slices.Sort(out)
	return out
}

// A point registered with retainUntil outlives the policy's retention
// until that date, as MARS's on-demand backups do.
func TestRetainUntilKeepsAPointPastRetention(t *testing.T) {
	c := newCP(t, cpOptions{})
	v := c.vault("retain-until")
	a := c.mustRegister(c.credentials(v), "branch-01")
	ctx := ctxT(t)
	pol := goodPolicy()
	pol.Retention = policy.Retention{DailyDays: 7}
	_, err := c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/policies/short", pol, nil)
	must(t, err)
	_, err = c.Contributor.Do(ctx, "PUT", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/policy", wire.AssignPolicy{Policy: "short"}, nil)
	must(t, err)
	cc := a.sas(t)
	keep := randomID()
	upload(t, cc, keep, randomID())
	until := c.Clock.Now().Add(20 * day)
	_, err = a.Do(ctx, "POST", "/api/v1/agent/points", wire.NewPoint{ID: keep, RetainUntil: &until}, nil)
	must(t, err)
	c.Clock.Advance(time.Hour)
	plain := a.backup(t, cc, randomID())
	c.Clock.Advance(10 * day)
	latest := a.backup(t, cc, randomID())

	list := func() []string {
		var ps []wire.Point
		_, err := c.Reader.Do(ctx, "GET", "/api/v1/vaults/"+v.ID+"/machines/"+a.MachineID+"/points", nil, &ps)
		must(t, err)
		return ids(ps)
	}
	_, err = c.App.Timers.EnforceRetention(ctx)
	must(t, err)
	if got, want := list(), sortedStrings(keep, latest.ID); !slices.Equal(got, want) {
		t.Fatalf("day 10: kept %v, want the retained point and the newest (%s expired)", got, plain.ID[:8])
	}
	c.Clock.Advance(11 * day)
	_, err = c.App.Timers.EnforceRetention(ctx)
	must(t, err)
	if got := list(); !slices.Equal(got, []string{latest.ID}) {
		t.Fatalf("day 21: kept %v, want only the newest", got)
	}
}

func sortedStrings(s ...string) []string {
	slices.Sort(s)
	return s
}
