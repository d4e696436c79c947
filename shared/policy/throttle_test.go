package policy

import (
	"testing"
	"time"
)

func TestBytesPerSecond(t *testing.T) {
	for _, tc := range []struct {
		kbps int
		want int64
	}{
		{MinKbps, 64_000},
		{1000, 125_000},
		{MaxKbps, 130_944_000},
	} {
		if got := BytesPerSecond(tc.kbps); got != tc.want {
			t.Errorf("BytesPerSecond(%d) = %d, want %d", tc.kbps, got, tc.want)
		}
	}
}

var officeHours = Throttle{
	Enabled:     true,
	WorkDays:    []string{"monday", "tuesday", "wednesday", "thursday", "friday"},
	WorkStart:   "09:00",
	WorkEnd:     "17:30",
	WorkKbps:    1024,
	NonWorkKbps: 8192,
}

func TestRateAt(t *testing.T) {
	london := mustZone(t, "Europe/London")
	work, nonWork := BytesPerSecond(1024), BytesPerSecond(8192)
	night := Throttle{Enabled: true, WorkDays: []string{"sunday"}, WorkStart: "00:00", WorkEnd: "01:30", WorkKbps: 1024, NonWorkKbps: 8192}
	tests := []struct {
		name        string
		th          Throttle
		at          string
		want        int64
		wantLimited bool
	}{
		{"disabled", Throttle{WorkKbps: 1024}, "2026-03-09T10:00:00Z", 0, false},
		{"Monday before work", officeHours, "2026-03-09T08:59:59Z", nonWork, true},
		{"Monday work starts", officeHours, "2026-03-09T09:00:00Z", work, true},
		{"Monday last work second", officeHours, "2026-03-09T17:29:59Z", work, true},
		{"Monday work ends", officeHours, "2026-03-09T17:30:00Z", nonWork, true},
		{"Saturday", officeHours, "2026-03-14T10:00:00Z", nonWork, true},
		{"summer time is local", officeHours, "2026-06-08T08:30:00Z", work, true}, // 09:30 BST
		{"rate below range clamps", Throttle{Enabled: true}, "2026-03-09T10:00:00Z", BytesPerSecond(MinKbps), true},
		{"unreadable hours are non-work", Throttle{Enabled: true, WorkDays: []string{"monday"}, WorkStart: "nine", WorkEnd: "17:00", WorkKbps: 1024, NonWorkKbps: 8192}, "2026-03-09T10:00:00Z", nonWork, true},
		{"first 01:00 of fall-back is work", night, "2026-10-25T00:00:00Z", work, true},
		{"repeated 01:00 is not re-entered", night, "2026-10-25T01:00:00Z", nonWork, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, limited := tc.th.RateAt(utc(tc.at), london)
			if got != tc.want || limited != tc.wantLimited {
				t.Errorf("RateAt(%s) = %d, %v; want %d, %v", tc.at, got, limited, tc.want, tc.wantLimited)
			}
		})
	}
}

func TestNextChange(t *testing.T) {
	london := mustZone(t, "Europe/London")
	equal := officeHours
	equal.NonWorkKbps = equal.WorkKbps
	always := Throttle{Enabled: true, WorkDays: []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"},
		WorkStart: "00:00", WorkEnd: "24:00", WorkKbps: 1024, NonWorkKbps: 8192}
	spring := Throttle{Enabled: true, WorkDays: []string{"sunday"}, WorkStart: "01:30", WorkEnd: "03:00", WorkKbps: 1024, NonWorkKbps: 8192}
	tests := []struct {
		name, at, want string // want "" = never
		th             Throttle
	}{
		{"before work", "2026-03-09T08:00:00Z", "2026-03-09T09:00:00Z", officeHours},
		{"at the start", "2026-03-09T09:00:00Z", "2026-03-09T17:30:00Z", officeHours},
		{"Friday evening to Monday", "2026-03-13T18:00:00Z", "2026-03-16T09:00:00Z", officeHours},
		{"across spring forward", "2026-03-28T12:00:00Z", "2026-03-30T08:00:00Z", officeHours}, // Monday 09:00 BST
		{"work start in the gap", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", spring},      // 01:30 runs at 02:00 BST
		{"disabled", "2026-03-09T08:00:00Z", "", Throttle{}},
		{"equal rates", "2026-03-09T08:00:00Z", "", equal},
		{"work all week", "2026-03-09T08:00:00Z", "", always},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := utc(tc.at)
			got := tc.th.NextChange(at, london)
			if tc.want == "" {
				if !got.IsZero() {
					t.Errorf("NextChange = %s, want never", got)
				}
				return
			}
			if !got.Equal(utc(tc.want)) {
				t.Fatalf("NextChange(%s) = %s, want %s", tc.at, got.UTC().Format(time.RFC3339), tc.want)
			}
			// The rate holds until the change and differs at it.
			before, _ := tc.th.RateAt(got.Add(-time.Second), london)
			now, _ := tc.th.RateAt(at, london)
			after, _ := tc.th.RateAt(got, london)
			if before != now || after == now {
				t.Errorf("rates: at %d, just before the change %d, at the change %d", now, before, after)
			}
		})
	}
}

// TestNextChangeWeek checks NextChange against a minute-by-minute scan of
// RateAt over a week that includes a DST change.
func TestNextChangeWeek(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	th := officeHours
	th.WorkDays = append(th.WorkDays, "sunday")
	th.WorkStart, th.WorkEnd = "01:30", "02:30" // Sunday's window is in the gap and the repeat
	for _, start := range []string{"2026-03-07T00:00:00Z", "2026-10-31T00:00:00Z"} {
		at := utc(start)
		end := at.Add(8 * 24 * time.Hour)
		rate, _ := th.RateAt(at, ny)
		for at.Before(end) {
			next := th.NextChange(at, ny)
			// Scan forward to the first minute with a different rate.
			scan := at.Truncate(time.Minute).Add(time.Minute)
			for ; scan.Before(end); scan = scan.Add(time.Minute) {
				if r, _ := th.RateAt(scan, ny); r != rate {
					break
				}
			}
			if !scan.Before(end) {
				break
			}
			if !next.Equal(scan) {
				t.Fatalf("NextChange(%s) = %s, scan says %s", at, next, scan)
			}
			at = next
			rate, _ = th.RateAt(at, ny)
		}
	}
}
