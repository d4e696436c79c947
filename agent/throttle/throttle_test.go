package throttle

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/storage/limit"
	"github.com/coffer-backup/coffer/shared/storage/local"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var weekdays = []string{"monday", "tuesday", "wednesday", "thursday", "friday"}

// officeHours: 1024 Kbps (128,000 bytes/s) 09:00-17:00 on weekdays, 8192
// Kbps (1,024,000 bytes/s) otherwise.
var officeHours = policy.Throttle{
	Enabled: true, WorkDays: weekdays, WorkStart: "09:00", WorkEnd: "17:00",
	WorkKbps: 1024, NonWorkKbps: 8192,
}

const (
	work    = 128_000
	nonWork = 1_024_000
)

// start runs t.Run until the test ends.
func start(t *testing.T, th *Throttle) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- th.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(clocktest.Limit):
			t.Error("Run did not return after its context was canceled")
		}
	})
}

// checkLimiter checks that lim and Current agree on bps (0: unlimited).
func checkLimiter(t *testing.T, th *Throttle, lim *rate.Limiter, bps int64) {
	t.Helper()
	gotBps, limited := th.Current()
	if bps == 0 {
		if lim.Limit() != rate.Inf || limited || gotBps != 0 {
			t.Errorf("limit %v, Current() = %d, %v; want unlimited", lim.Limit(), gotBps, limited)
		}
		return
	}
	if lim.Limit() != rate.Limit(bps) || lim.Burst() != Burst(bps) || !limited || gotBps != bps {
		t.Errorf("limit %v burst %d, Current() = %d, %v; want %d bytes/s, burst %d",
			lim.Limit(), lim.Burst(), gotBps, limited, bps, Burst(bps))
	}
}

func TestRateChangesOverAWeek(t *testing.T) {
	t.Parallel()
	sundayNight := func(start, end string) policy.Throttle {
		p := officeHours
		p.WorkDays, p.WorkStart, p.WorkEnd = []string{"sunday"}, start, end
		return p
	}
	type change struct {
		at  string
		bps int64
	}
	tests := []struct {
		name        string
		tz          string
		p           policy.Throttle
		from, until string
		initial     int64
		want        []change
	}{
		{"office week over the US spring change", "America/New_York", officeHours,
			"2026-03-06T17:00:00Z", "2026-03-14T04:00:00Z", work, []change{ // from Friday noon EST
				{"2026-03-06T22:00:00Z", nonWork}, // Friday 17:00 EST
				{"2026-03-09T13:00:00Z", work},    // Monday 09:00 EDT
				{"2026-03-09T21:00:00Z", nonWork},
				{"2026-03-10T13:00:00Z", work},
				{"2026-03-10T21:00:00Z", nonWork},
				{"2026-03-11T13:00:00Z", work},
				{"2026-03-11T21:00:00Z", nonWork},
				{"2026-03-12T13:00:00Z", work},
				{"2026-03-12T21:00:00Z", nonWork},
				{"2026-03-13T13:00:00Z", work},
				{"2026-03-13T21:00:00Z", nonWork},
			}},
		{"start in the spring gap", "Europe/London", sundayNight("01:30", "03:00"),
			"2026-03-28T00:00:00Z", "2026-04-06T00:00:00Z", nonWork, []change{
				{"2026-03-29T01:00:00Z", work}, // 01:30 does not exist: 02:00 BST
				{"2026-03-29T02:00:00Z", nonWork},
				{"2026-04-05T00:30:00Z", work},
				{"2026-04-05T02:00:00Z", nonWork},
			}},
		{"hours repeated by fall-back count once", "Europe/London", sundayNight("01:00", "01:30"),
			"2026-10-24T00:00:00Z", "2026-11-02T00:00:00Z", nonWork, []change{
				{"2026-10-25T00:00:00Z", work}, // 01:00 BST; not again at 01:00 GMT
				{"2026-10-25T00:30:00Z", nonWork},
				{"2026-11-01T01:00:00Z", work},
				{"2026-11-01T01:30:00Z", nonWork},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(utc(tt.from))
			lim := rate.NewLimiter(rate.Inf, 0)
			th := New(clock, lim, nil)
			// Not a divisor of 30 minutes: a change only lands on its
			// instant if Run waits for NextChange, not for the next poll.
			th.MaxWait = 7 * time.Minute
			th.Set(tt.p, zone(t, tt.tz))
			checkLimiter(t, th, lim, tt.initial)
			start(t, th)

			var got []change
			prev, _ := th.Current()
			until := utc(tt.until)
			var seq uint64
			for {
				at, s := clock.WaitArmed(t, seq) // the rate for the clock's time is applied
				if bps, _ := th.Current(); bps != prev {
					got = append(got, change{clock.Now().UTC().Format(time.RFC3339), bps})
					checkLimiter(t, th, lim, bps)
					prev = bps
				}
				if at.After(until) {
					break
				}
				clock.Set(at)
				seq = s
			}
			if len(got) != len(tt.want) {
				t.Fatalf("changes:\n got %v\nwant %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("change %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	ny := zone(t, "America/New_York")
	monday := time.Date(2026, time.June, 1, 10, 0, 0, 0, ny)
	with := func(f func(*policy.Throttle)) policy.Throttle {
		p := officeHours
		f(&p)
		return p
	}
	tests := []struct {
		name string
		p    policy.Throttle
		at   time.Time
		bps  int64 // 0: unlimited
	}{
		{"disabled", with(func(p *policy.Throttle) { p.Enabled = false }), monday, 0},
		{"work hours", officeHours, monday, work},
		{"before work", officeHours, monday.Add(-2 * time.Hour), nonWork},
		{"after work", officeHours, monday.Add(7 * time.Hour), nonWork},
		{"weekend", officeHours, monday.AddDate(0, 0, -1), nonWork},
		{"equal rates", with(func(p *policy.Throttle) { p.NonWorkKbps = p.WorkKbps }), monday.Add(-2 * time.Hour), work},
		{"unvalidated rate is clamped", with(func(p *policy.Throttle) { p.WorkKbps = 8 }), monday, 64_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := rate.NewLimiter(1, 1) // whatever the caller built: New lifts it
			th := New(clocktest.New(tt.at), lim, nil)
			checkLimiter(t, th, lim, 0)
			th.Set(tt.p, ny)
			checkLimiter(t, th, lim, tt.bps)
		})
	}
}

func TestSetMidPeriod(t *testing.T) {
	t.Parallel()
	ny := zone(t, "America/New_York")
	clock := clocktest.New(time.Date(2026, time.June, 1, 10, 0, 0, 0, ny)) // Monday
	lim := rate.NewLimiter(rate.Inf, 0)
	th := New(clock, lim, nil)
	th.MaxWait = 24 * time.Hour
	th.Set(officeHours, ny)
	start(t, th)
	armed := func(since uint64, want time.Time) uint64 {
		t.Helper()
		at, seq := clock.WaitArmed(t, since)
		if !at.Equal(want) {
			t.Fatalf("Run waits until %v, want %v", at, want)
		}
		return seq
	}
	seq := armed(0, time.Date(2026, time.June, 1, 17, 0, 0, 0, ny))
	checkLimiter(t, th, lim, work)

	// Mornings only, at 2048 Kbps, 4096 Kbps otherwise: at once, and Run
	// now waits for noon rather than 17:00.
	mornings := officeHours
	mornings.WorkEnd, mornings.WorkKbps, mornings.NonWorkKbps = "12:00", 2048, 4096
	th.Set(mornings, ny)
	checkLimiter(t, th, lim, 256_000)
	seq = armed(seq, time.Date(2026, time.June, 1, 12, 0, 0, 0, ny))
	clock.Set(time.Date(2026, time.June, 1, 12, 0, 0, 0, ny))
	seq = armed(seq, time.Date(2026, time.June, 2, 9, 0, 0, 0, ny))
	checkLimiter(t, th, lim, 512_000)

	th.Set(policy.Throttle{}, ny) // throttling turned off
	checkLimiter(t, th, lim, 0)

	th.Set(officeHours, ny) // and on again, at 12:00 Monday
	checkLimiter(t, th, lim, work)
	armed(seq, time.Date(2026, time.June, 1, 17, 0, 0, 0, ny))
}

func TestBurst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		bps  int64
		want int
	}{
		{policy.BytesPerSecond(policy.MinKbps), MinBurst},
		{256_000, MinBurst},
		{1_024_000, 256_000},
		{policy.BytesPerSecond(policy.MaxKbps), 32_736_000},
	}
	for _, tt := range tests {
		if got := Burst(tt.bps); got != tt.want {
			t.Errorf("Burst(%d) = %d, want %d", tt.bps, got, tt.want)
		}
	}
}

// limitedReader waits for the limiter after each read of at most 32 KiB,
// as an upload loop would.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p[:min(len(p), 32<<10)])
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// TestMeasuredRate checks in real time that the limiter this package sets
// holds transfers to the configured rate: 512 KiB at 2048 Kbps (256,000
// bytes/s) should take 2.05 s, within 10%.
func TestMeasuredRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s of real time")
	}
	t.Parallel()
	const size = 512 << 10
	p := policy.Throttle{
		Enabled: true, WorkDays: weekdays, WorkStart: "00:00", WorkEnd: "24:00",
		WorkKbps: 2048, NonWorkKbps: 2048,
	}
	want := time.Duration(float64(size) / float64(policy.BytesPerSecond(2048)) * float64(time.Second))

	tests := []struct {
		name     string
		transfer func(ctx context.Context, lim *rate.Limiter) error
	}{
		{"reader in 32 KiB pieces", func(ctx context.Context, lim *rate.Limiter) error {
			n, err := io.Copy(io.Discard, limitedReader{ctx, bytes.NewReader(make([]byte, size)), lim})
			if err == nil && n != size {
				err = io.ErrShortWrite
			}
			return err
		}},
		{"storage/limit Create", func(ctx context.Context, lim *rate.Limiter) error {
			b, err := local.New(t.TempDir())
			if err != nil {
				return err
			}
			return limit.New(b, limit.Options{Upload: lim}).Create(ctx, "data/00/measured", make([]byte, size))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := rate.NewLimiter(rate.Inf, 0)
			th := New(clocktest.New(utc("2026-06-01T12:00:00Z")), lim, nil) // a Monday
			th.Set(p, time.UTC)
			checkLimiter(t, th, lim, 256_000)
			ctx := t.Context()
			// Spend the initial burst, so the time measured is the steady rate.
			if err := lim.WaitN(ctx, lim.Burst()); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			if err := tt.transfer(ctx, lim); err != nil {
				t.Fatal(err)
			}
			took := time.Since(began)
			// Only the floor is a property of the limiter: a busy machine
			// can make the transfer slower, never faster than the limit.
			if took < want*9/10 {
				t.Errorf("%d bytes took %v, want at least %v (%.0f bytes/s, limit 256000)",
					size, took, want*9/10, float64(size)/took.Seconds())
			}
		})
	}
}
