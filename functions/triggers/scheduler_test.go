package triggers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/invocation"
	"github.com/coffer-backup/coffer/shared/clocktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func utc(hour, min int) time.Time {
	return time.Date(2026, 11, 22, hour, min, 0, 0, time.UTC)
}

// run is one recorded timer run.
type run struct {
	name      string
	at        time.Time // the clock when the run started
	due, last time.Time // ScheduleStatus.Next and .Last
	pastDue   bool
}

func (r run) String() string {
	f := func(t time.Time) string { return t.UTC().Format("15:04:05.000") }
	return fmt.Sprintf("%s at %s due %s last %s pastDue %t", r.name, f(r.at), f(r.due), f(r.last), r.pastDue)
}

type recorder struct {
	mu   sync.Mutex
	runs []run
}

func (r *recorder) record(clock *clocktest.Fake, name string, info *invocation.Timer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, run{name: name, at: clock.Now(), due: info.ScheduleStatus.Next, last: info.ScheduleStatus.Last, pastDue: info.IsPastDue})
}

func (r *recorder) get() []run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

// startScheduler runs s until the test ends and fails the test if Run
// does not return once its context is cancelled.
func startScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestSchedulerFiresEachTimerAtItsInstants(t *testing.T) {
	clock := clocktest.New(utc(2, 20))
	var rec recorder
	runs := map[string]TimerFunc{}
	for _, f := range Functions {
		if f.Kind == KindTimer {
			runs[f.Name] = func(_ context.Context, info *invocation.Timer) error {
				rec.record(clock, f.Name, info)
				return nil
			}
		}
	}
	timers, err := Timers(runs)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewScheduler(timers, clock.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s.After = clock.After
	stop := startScheduler(t, s)

	for clock.Now().Before(utc(4, 5)) {
		clock.WaitPending(t, len(timers))
		clock.AdvanceToNext(t)
	}
	clock.WaitPending(t, len(timers)) // the last runs are over
	stop()

	want := []run{
		{name: FuncMonitorBackups, due: utc(2, 30)},
		{name: FuncMonitorBackups, due: utc(2, 45), last: utc(2, 30)},
		{name: FuncMonitorBackups, due: utc(3, 0), last: utc(2, 45)},
		{name: FuncPurgeSoftDeleted, due: utc(3, 0)},
		{name: FuncSendAlertDigest, due: utc(3, 0)},
		{name: FuncEnforceRetention, due: utc(3, 5)},
		{name: FuncMonitorBackups, due: utc(3, 15), last: utc(3, 0)},
		{name: FuncMonitorBackups, due: utc(3, 30), last: utc(3, 15)},
		{name: FuncMonitorBackups, due: utc(3, 45), last: utc(3, 30)},
		{name: FuncMonitorBackups, due: utc(4, 0), last: utc(3, 45)},
		{name: FuncSendAlertDigest, due: utc(4, 0), last: utc(3, 0)},
		{name: FuncEnforceRetention, due: utc(4, 5), last: utc(3, 5)},
	}
	for i := range want {
		want[i].at = want[i].due // fired on the dot, not past due
	}
	got := rec.get()
	// Timers due at the same instant run concurrently; their order among
	// themselves is free, each timer's own order is not.
	slices.SortStableFunc(got, func(a, b run) int { return cmp.Or(a.at.Compare(b.at), strings.Compare(a.name, b.name)) })
	if !slices.Equal(got, want) {
		t.Fatalf("runs:\n%v\nwant:\n%v", got, want)
	}
}

func TestSchedulerNext(t *testing.T) {
	s, err := NewScheduler([]Timer{
		{Name: "daily", Schedule: "0 0 3 * * *", Run: nopTimer},
		{Name: "quarter", Schedule: "0 */15 * * * *", Run: nopTimer},
		{Name: "weekdays", Schedule: "30 0 9 * * 1-5", Run: nopTimer},
	}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tokyo := time.FixedZone("JST", 9*3600)
	for _, tc := range []struct {
		name  string
		after time.Time
		want  time.Time
	}{
		{"daily", utc(2, 59), utc(3, 0)},
		{"daily", utc(3, 0), utc(3, 0).AddDate(0, 0, 1)},                  // strictly after
		{"daily", time.Date(2026, 11, 22, 11, 0, 0, 0, tokyo), utc(3, 0)}, // 02:00 UTC: schedules are UTC
		{"quarter", utc(23, 50), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"weekdays", utc(12, 0), time.Date(2026, 11, 23, 9, 0, 30, 0, time.UTC)}, // 22 Nov 2026 is a Sunday
		{"unknown", utc(0, 0), time.Time{}},
	} {
		got := s.Next(tc.name, tc.after)
		if !got.Equal(tc.want) || (!got.IsZero() && got.Location() != time.UTC) {
			t.Errorf("Next(%s, %v) = %v, want %v in UTC", tc.name, tc.after, got, tc.want)
		}
	}
}

func nopTimer(context.Context, *invocation.Timer) error { return nil }

// A run that outlasts the next instants is not overlapped: the instants it
// covered are skipped, and the timer resumes at the first one after it.
func TestSchedulerDoesNotOverlapASlowRun(t *testing.T) {
	clock := clocktest.New(utc(2, 20))
	var rec recorder
	var active, maxActive atomic.Int32
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	var calls atomic.Int32
	s, err := NewScheduler([]Timer{{Name: "slow", Schedule: "0 */15 * * * *", Run: func(ctx context.Context, info *invocation.Timer) error {
		n := active.Add(1)
		defer active.Add(-1)
		for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
		}
		rec.record(clock, "slow", info)
		started <- struct{}{}
		if calls.Add(1) == 1 {
			<-release
		}
		return nil
	}}}, clock.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s.After = clock.After
	stop := startScheduler(t, s)

	clock.WaitPending(t, 1)
	clock.AdvanceToNext(t) // 02:30: the slow run starts
	waitFor(t, started, "the first run")
	clock.Advance(50 * time.Minute) // 03:20, past 02:45, 03:00 and 03:15
	close(release)

	clock.WaitPending(t, 1)
	if at := clock.AdvanceToNext(t); !at.Equal(utc(3, 30)) {
		t.Fatalf("after the slow run the timer waits for %v, want 03:30", at)
	}
	waitFor(t, started, "the second run")
	clock.WaitPending(t, 1)
	stop()

	want := []run{
		{name: "slow", at: utc(2, 30), due: utc(2, 30)},
		{name: "slow", at: utc(3, 30), due: utc(3, 30), last: utc(2, 30)},
	}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	if maxActive.Load() != 1 {
		t.Fatalf("%d runs of the timer at once, want 1", maxActive.Load())
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A timer that wakes late (a suspended machine, a stalled process) runs once
// with IsPastDue, then follows its schedule from the time it ran.
func TestSchedulerMarksLateRunsPastDue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wake    time.Time // when the 02:30 wake-up is delivered
		pastDue bool
		next    time.Time
	}{
		{"on the dot", utc(2, 30), false, utc(2, 45)},
		{"within a second", utc(2, 30).Add(500 * time.Millisecond), false, utc(2, 45)},
		{"two seconds late", utc(2, 30).Add(2 * time.Second), true, utc(2, 45)},
		{"ten minutes late", utc(2, 40), true, utc(2, 45)},
		{"asleep past three instants", utc(3, 20), true, utc(3, 30)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clocktest.New(utc(2, 20))
			var rec recorder
			s, err := NewScheduler([]Timer{{Name: "t", Schedule: "0 */15 * * * *", Run: func(_ context.Context, info *invocation.Timer) error {
				rec.record(clock, "t", info)
				return nil
			}}}, clock.Now, quiet)
			if err != nil {
				t.Fatal(err)
			}
			s.After = clock.After
			stop := startScheduler(t, s)
			clock.WaitPending(t, 1)
			clock.Set(tc.wake)
			clock.WaitPending(t, 1)
			next := clock.AdvanceToNext(t)
			clock.WaitPending(t, 1)
			stop()

			runs := rec.get()
			if len(runs) != 2 {
				t.Fatalf("runs %v, want the late one and the next", runs)
			}
			if runs[0].due != utc(2, 30) || runs[0].pastDue != tc.pastDue || !runs[0].at.Equal(tc.wake) {
				t.Errorf("late run %+v, want due 02:30 at %v pastDue %t", runs[0], tc.wake, tc.pastDue)
			}
			if !next.Equal(tc.next) || runs[1].pastDue || runs[1].last != utc(2, 30) {
				t.Errorf("next run %+v at %v, want on time at %v", runs[1], next, tc.next)
			}
		})
	}
}

// A wake-up before the instant (the wall clock stepped back) waits again
// instead of running early.
func TestSchedulerWaitsAgainWhenWokenEarly(t *testing.T) {
	clock := clocktest.New(utc(2, 20))
	var rec recorder
	s, err := NewScheduler([]Timer{{Name: "t", Schedule: "0 */15 * * * *", Run: func(_ context.Context, info *invocation.Timer) error {
		rec.record(clock, "t", info)
		return nil
	}}}, clock.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var early atomic.Bool
	s.After = func(d time.Duration) <-chan time.Time {
		if early.CompareAndSwap(false, true) {
			ch := make(chan time.Time, 1)
			ch <- clock.Now()
			return ch
		}
		return clock.After(d)
	}
	stop := startScheduler(t, s)
	clock.WaitPending(t, 1)
	if len(rec.get()) != 0 {
		t.Fatalf("ran early: %v", rec.get())
	}
	clock.AdvanceToNext(t)
	clock.WaitPending(t, 1)
	stop()
	if runs := rec.get(); len(runs) != 1 || !runs[0].at.Equal(utc(2, 30)) {
		t.Fatalf("runs %v, want one at 02:30", runs)
	}
}

func TestNewSchedulerRefusesBadTimers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		timers []Timer
		want   string
	}{
		{"five fields", []Timer{{Name: "Cron5", Schedule: "0 3 * * *", Run: nopTimer}}, "Cron5"},
		{"descriptor", []Timer{{Name: "Daily", Schedule: "@daily", Run: nopTimer}}, "Daily"},
		{"empty", []Timer{{Name: "Empty", Schedule: "", Run: nopTimer}}, "Empty"},
		{"hour out of range", []Timer{{Name: "Hour25", Schedule: "0 0 25 * * *", Run: nopTimer}}, "Hour25"},
		{"words", []Timer{{Name: "Words", Schedule: "every hour", Run: nopTimer}}, "Words"},
		{"time zone", []Timer{{Name: "Zoned", Schedule: "CRON_TZ=Europe/London 0 0 3 * * *", Run: nopTimer}}, "Zoned"},
		{"bare time zone", []Timer{{Name: "Bare", Schedule: "TZ=UTC", Run: nopTimer}}, "Bare"},
		{"never fires", []Timer{{Name: "Feb30", Schedule: "0 0 0 30 2 *", Run: nopTimer}}, "never fires"},
		{"no run", []Timer{{Name: "Idle", Schedule: "0 0 3 * * *"}}, "Idle"},
		{"duplicate", []Timer{{Name: "Twin", Schedule: "0 0 3 * * *", Run: nopTimer}, {Name: "Twin", Schedule: "0 0 4 * * *", Run: nopTimer}}, "Twin"},
		{"no name", []Timer{{Schedule: "0 0 3 * * *", Run: nopTimer}}, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewScheduler(append([]Timer{{Name: "Good", Schedule: "0 0 * * * *", Run: nopTimer}}, tc.timers...), nil, quiet)
			if err == nil || s != nil {
				t.Fatalf("accepted %+v", tc.timers)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Good") {
				t.Fatalf("error %q should name %q and only the bad timer", err, tc.want)
			}
		})
	}
}

// Cancelling Run's context stops the waiting timers, cancels the running
// ones and waits for them; a second Run at the same time is refused.
func TestSchedulerStopsWhenCancelled(t *testing.T) {
	clock := clocktest.New(utc(2, 20))
	inRun := make(chan struct{})
	runErr := make(chan error, 1)
	s, err := NewScheduler([]Timer{
		{Name: "busy", Schedule: "0 */15 * * * *", Run: func(ctx context.Context, _ *invocation.Timer) error {
			close(inRun)
			<-ctx.Done()
			runErr <- ctx.Err()
			return ctx.Err()
		}},
		{Name: "idle", Schedule: "0 0 3 * * *", Run: func(context.Context, *invocation.Timer) error {
			t.Error("idle ran")
			return nil
		}},
	}, clock.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s.After = clock.After
	stop := startScheduler(t, s)
	clock.WaitPending(t, 2)
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("a second concurrent Run was accepted")
	}
	clock.AdvanceToNext(t)
	waitFor(t, inRun, "the busy run")
	stop() // fails the test unless Run returns
	select {
	case err := <-runErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the running timer saw %v, want context.Canceled", err)
		}
	default:
		t.Fatal("Run returned before the running timer did")
	}
}
