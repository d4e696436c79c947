package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/policy"
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

func daily(tz string, times ...string) policy.Schedule {
	return policy.Schedule{Frequency: policy.FrequencyDaily, Times: times, TimeZone: tz}
}

// rec is one job call: the instant it served, whether it caught up, and
// the clock when it started.
type rec struct {
	scheduled time.Time
	catchUp   bool
	at        time.Time
}

func (r rec) String() string {
	s := "on-demand"
	if !r.scheduled.IsZero() {
		s = r.scheduled.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("{%s catchUp=%v at %s}", s, r.catchUp, r.at.UTC().Format(time.RFC3339))
}

type options struct {
	now        time.Time
	state      State
	schedule   *policy.Schedule
	retryAfter time.Duration
	maxWait    time.Duration
	took       time.Duration                 // each job moves the clock this far
	fail       func(n int) error             // the error of the n-th job (from 0)
	gate       func(onDemand bool) chan bool // a job blocks until its gate yields
}

// harness runs a Scheduler on a fake clock with a job that records calls.
type harness struct {
	t     *testing.T
	o     options
	clock *clocktest.Fake
	s     *Scheduler
	seq   uint64 // the last wait Step fired
	// started receives every job call as it starts.
	started chan rec

	mu        sync.Mutex
	runs      []rec
	states    []State
	active    int
	maxActive int

	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	h := &harness{t: t, o: o, clock: clocktest.New(o.now), started: make(chan rec, 100)}
	save := func(st State) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.states = append(h.states, st)
		return nil
	}
	h.s = New(h.clock, o.state, save, h.job, slog.New(slog.DiscardHandler))
	h.s.RetryAfter = o.retryAfter
	h.s.MaxWait = o.maxWait
	if o.schedule != nil {
		if err := h.s.SetSchedule(*o.schedule); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *harness) job(ctx context.Context, scheduled time.Time, catchUp bool) error {
	r := rec{scheduled: scheduled, catchUp: catchUp, at: h.clock.Now()}
	h.mu.Lock()
	n := len(h.runs)
	h.runs = append(h.runs, r)
	h.active++
	h.maxActive = max(h.maxActive, h.active)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.active--
		h.mu.Unlock()
	}()
	h.started <- r
	if h.o.gate != nil {
		if g := h.o.gate(scheduled.IsZero()); g != nil {
			select {
			case <-g:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if h.o.took > 0 {
		h.clock.Advance(h.o.took)
	}
	if h.o.fail != nil {
		return h.o.fail(n)
	}
	return nil
}

// start runs the scheduler's loop until the test ends.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.s.Run(ctx) }()
	h.t.Cleanup(func() { h.stop() })
}

// stop cancels Run and returns its error.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for a second stop (Cleanup)
		return err
	case <-time.After(clocktest.Limit):
		h.t.Fatal("Run did not return after its context was canceled")
		return nil
	}
}

// stepUntil fires the loop's waits one by one while they fall at or before
// end; every job they trigger has finished when it returns.
func (h *harness) stepUntil(end time.Time) {
	h.t.Helper()
	for {
		at, seq := h.clock.WaitArmed(h.t, h.seq)
		if at.After(end) {
			return
		}
		h.clock.Set(at)
		h.seq = seq
	}
}

func (h *harness) waitStarted() rec {
	h.t.Helper()
	select {
	case r := <-h.started:
		return r
	case <-time.After(clocktest.Limit):
		h.t.Fatal("no job started")
		return rec{}
	}
}

func (h *harness) recorded() ([]rec, []State, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rec(nil), h.runs...), append([]State(nil), h.states...), h.maxActive
}

// waitFor polls cond, for the few states the loop shows no other way.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clocktest.Limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func checkRuns(t *testing.T, got, want []rec) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].scheduled.Equal(want[i].scheduled) && got[i].catchUp == want[i].catchUp && got[i].at.Equal(want[i].at)
	}
	if !ok {
		t.Errorf("runs:\n got %v\nwant %v", got, want)
	}
}

// onTime is a run that starts at its instant.
func onTime(instants ...time.Time) []rec {
	var rs []rec
	for _, at := range instants {
		rs = append(rs, rec{scheduled: at, at: at})
	}
	return rs
}

func TestTwiceADayForTenDays(t *testing.T) {
	t.Parallel()
	paris := zone(t, "Europe/Paris")
	start := time.Date(2026, time.June, 1, 0, 0, 0, 0, paris)
	sc := daily("Europe/Paris", "18:30", "06:00")
	h := newHarness(t, options{now: start, schedule: &sc})
	h.start()
	h.stepUntil(start.AddDate(0, 0, 10).Add(-time.Nanosecond))

	var want []time.Time
	for d := range 10 {
		want = append(want,
			time.Date(2026, time.June, 1+d, 6, 0, 0, 0, paris),
			time.Date(2026, time.June, 1+d, 18, 30, 0, 0, paris))
	}
	runs, states, _ := h.recorded()
	checkRuns(t, runs, onTime(want...))
	if len(states) != 2*len(want) {
		t.Fatalf("%d saves, want %d (before and after each run)", len(states), 2*len(want))
	}
	for i, at := range want {
		if got := states[2*i+1]; !got.LastScheduled.Equal(at) || !got.LastRunStart.Equal(at) || !got.LastRunEnd.Equal(at) {
			t.Errorf("state after run %d = %+v, want LastScheduled, LastRunStart and LastRunEnd %v", i, got, at)
		}
	}
}

func TestDaylightSavingTime(t *testing.T) {
	t.Parallel()
	// Each case runs 01:30 and 02:30 daily for three days around a change.
	// Spring: a time in the gap runs at the gap's end. Fall: a repeated time
	// runs once, at its first occurrence.
	tests := []struct {
		name string
		tz   string
		from string // local midnight starting the first day, as UTC
		want []string
	}{
		{"New York spring forward", "America/New_York", "2026-03-07T05:00:00Z", []string{
			"2026-03-07T06:30:00Z", "2026-03-07T07:30:00Z", // EST
			"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT
			"2026-03-09T05:30:00Z", "2026-03-09T06:30:00Z", // EDT
		}},
		{"New York fall back", "America/New_York", "2026-10-31T04:00:00Z", []string{
			"2026-10-31T05:30:00Z", "2026-10-31T06:30:00Z", // EDT
			"2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z", // 01:30 EDT only, not 01:30 EST
			"2026-11-02T06:30:00Z", "2026-11-02T07:30:00Z", // EST
		}},
		{"London spring forward", "Europe/London", "2026-03-28T00:00:00Z", []string{
			"2026-03-28T01:30:00Z", "2026-03-28T02:30:00Z", // GMT
			"2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", // 01:30 does not exist: 02:00 BST
			"2026-03-30T00:30:00Z", "2026-03-30T01:30:00Z", // BST
		}},
		{"London fall back", "Europe/London", "2026-10-23T23:00:00Z", []string{
			"2026-10-24T00:30:00Z", "2026-10-24T01:30:00Z", // BST
			"2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z", // 01:30 BST only, not 01:30 GMT
			"2026-10-26T01:30:00Z", "2026-10-26T02:30:00Z", // GMT
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := daily(tt.tz, "01:30", "02:30")
			from := utc(tt.from)
			h := newHarness(t, options{now: from, schedule: &sc})
			h.start()
			h.stepUntil(from.Add(72 * time.Hour))
			var want []time.Time
			for _, s := range tt.want {
				want = append(want, utc(s))
			}
			runs, _, _ := h.recorded()
			checkRuns(t, runs, onTime(want...))
		})
	}
}

func TestCatchUpAtStart(t *testing.T) {
	t.Parallel()
	// Daily at 02:00 and 14:00 UTC; the agent starts on 4 June at 10:00.
	sc := daily("UTC", "02:00", "14:00")
	now := utc("2026-06-04T10:00:00Z")
	tests := []struct {
		name  string
		now   time.Time // zero: 4 June 10:00
		state State
		want  []rec // until 5 June 03:00
	}{
		{"first start: nothing was scheduled yet", time.Time{}, State{}, onTime(
			utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))},
		{"nothing missed", time.Time{}, State{LastScheduled: utc("2026-06-04T02:00:00Z")}, onTime(
			utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))},
		{"off three days: one catch-up", time.Time{}, State{LastScheduled: utc("2026-06-01T14:00:00Z")}, append(
			[]rec{{scheduled: utc("2026-06-04T02:00:00Z"), catchUp: true, at: now}},
			onTime(utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))...)},
		{"one instant missed", time.Time{}, State{LastScheduled: utc("2026-06-03T14:00:00Z")}, append(
			[]rec{{scheduled: utc("2026-06-04T02:00:00Z"), catchUp: true, at: now}},
			onTime(utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))...)},
		{"clock set back a little: wait, do not repeat", utc("2026-06-04T01:30:00Z"), State{LastScheduled: utc("2026-06-04T02:00:00Z")}, onTime(
			utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))},
		{"clock was a week ahead: restart from now", time.Time{}, State{LastScheduled: utc("2026-06-11T14:00:00Z")}, onTime(
			utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))},
		{"killed during its first scheduled run: run it again", time.Time{}, State{LastRunStart: utc("2026-06-04T02:00:01Z")}, append(
			[]rec{{scheduled: utc("2026-06-04T02:00:00Z"), catchUp: true, at: now}},
			onTime(utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))...)},
		{"killed during a later run: run it again", time.Time{}, State{LastScheduled: utc("2026-06-03T14:00:00Z"),
			LastRunStart: utc("2026-06-04T02:00:01Z"), LastRunEnd: utc("2026-06-03T14:05:00Z")}, append(
			[]rec{{scheduled: utc("2026-06-04T02:00:00Z"), catchUp: true, at: now}},
			onTime(utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z"))...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := now
			if !tt.now.IsZero() {
				start = tt.now
			}
			h := newHarness(t, options{now: start, state: tt.state, schedule: &sc})
			h.start()
			h.stepUntil(utc("2026-06-05T03:00:00Z"))
			runs, _, _ := h.recorded()
			checkRuns(t, runs, tt.want)
		})
	}
}

func TestCatchUpAfterSleep(t *testing.T) {
	t.Parallel()
	// Daily at 02:00 and 14:00 UTC; after the 1 June 02:00 run the machine
	// sleeps, and the pending wait fires late, at wake-up.
	sc := daily("UTC", "02:00", "14:00")
	from := utc("2026-06-01T00:00:00Z")
	tests := []struct {
		name   string
		wake   time.Time
		catch  rec // the run at wake-up
		until  time.Time
		normal []time.Time
	}{
		{"asleep three days", utc("2026-06-04T10:00:00Z"),
			rec{scheduled: utc("2026-06-04T02:00:00Z"), catchUp: true, at: utc("2026-06-04T10:00:00Z")},
			utc("2026-06-05T03:00:00Z"), []time.Time{utc("2026-06-04T14:00:00Z"), utc("2026-06-05T02:00:00Z")}},
		{"asleep over one instant", utc("2026-06-01T15:00:00Z"),
			rec{scheduled: utc("2026-06-01T14:00:00Z"), catchUp: true, at: utc("2026-06-01T15:00:00Z")},
			utc("2026-06-02T03:00:00Z"), []time.Time{utc("2026-06-02T02:00:00Z")}},
		{"woken within minutes: on time", utc("2026-06-01T14:03:00Z"),
			rec{scheduled: utc("2026-06-01T14:00:00Z"), at: utc("2026-06-01T14:03:00Z")},
			utc("2026-06-02T03:00:00Z"), []time.Time{utc("2026-06-02T02:00:00Z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{now: from, schedule: &sc})
			h.start()
			h.stepUntil(utc("2026-06-01T03:00:00Z"))
			_, seq := h.clock.WaitArmed(t, h.seq)
			h.clock.Set(tt.wake)
			h.seq = seq
			h.stepUntil(tt.until)

			want := append(onTime(utc("2026-06-01T02:00:00Z")), tt.catch)
			want = append(want, onTime(tt.normal...)...)
			runs, _, _ := h.recorded()
			checkRuns(t, runs, want)
		})
	}
}

func TestBusy(t *testing.T) {
	t.Parallel()
	// An on-demand backup runs from 01:50 to 02:10 over the 02:00 instant:
	// a second RunNow is refused, and the 02:00 run waits, then runs once,
	// not as a catch-up. RunNow during that run is refused too.
	onDemandGate, scheduledGate := make(chan bool), make(chan bool)
	sc := daily("UTC", "02:00")
	h := newHarness(t, options{
		now:      utc("2026-06-01T01:50:00Z"),
		schedule: &sc,
		maxWait:  24 * time.Hour,
		gate: func(onDemand bool) chan bool {
			if onDemand {
				return onDemandGate
			}
			return scheduledGate
		},
	})
	h.start()
	if at, _ := h.clock.WaitArmed(t, 0); !at.Equal(utc("2026-06-01T02:00:00Z")) {
		t.Fatalf("waiting until %v, want 02:00", at)
	}

	ondemand := make(chan error, 1)
	go func() { ondemand <- h.s.RunNow(context.Background()) }()
	h.waitStarted()
	if err := h.s.RunNow(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("RunNow during an on-demand run = %v, want ErrBusy", err)
	}
	h.clock.Set(utc("2026-06-01T02:10:00Z")) // the loop wakes 10 minutes after 02:00, busy
	// Next shows the queued instant once the loop has seen it due.
	waitFor(t, "the 02:00 run to be queued", func() bool { return h.s.Next().Equal(utc("2026-06-01T02:00:00Z")) })
	onDemandGate <- true
	if err := <-ondemand; err != nil {
		t.Fatalf("RunNow = %v", err)
	}

	r := h.waitStarted() // the 02:00 run, now
	if err := h.s.RunNow(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("RunNow during a scheduled run = %v, want ErrBusy", err)
	}
	scheduledGate <- true
	if at, _ := h.clock.WaitArmed(t, 1); !at.Equal(utc("2026-06-02T02:00:00Z")) {
		t.Errorf("then waiting until %v, want the next day's 02:00", at)
	}

	runs, states, maxActive := h.recorded()
	checkRuns(t, runs, []rec{
		{at: utc("2026-06-01T01:50:00Z")},
		{scheduled: utc("2026-06-01T02:00:00Z"), at: utc("2026-06-01T02:10:00Z")},
	})
	if maxActive != 1 {
		t.Errorf("%d jobs ran at once", maxActive)
	}
	if r.catchUp {
		t.Error("a run delayed by a running job counts as a catch-up")
	}
	if last := states[len(states)-1]; !last.LastScheduled.Equal(utc("2026-06-01T02:00:00Z")) {
		t.Errorf("saved LastScheduled %v, want 02:00", last.LastScheduled)
	}
	// The on-demand run left LastScheduled alone.
	if st := states[1]; !st.LastScheduled.IsZero() || !st.LastRunEnd.Equal(utc("2026-06-01T02:10:00Z")) {
		t.Errorf("state after the on-demand run = %+v", st)
	}
}

func TestFailureAndRetry(t *testing.T) {
	t.Parallel()
	// Daily at 02:00 and 14:00; every job takes 10 minutes.
	fail := errors.New("storage unreachable")
	failRuns := func(ns ...int) func(int) error {
		return func(n int) error {
			for _, f := range ns {
				if f == n {
					return fail
				}
			}
			return nil
		}
	}
	at := func(scheduled, start string) rec { return rec{scheduled: utc(scheduled), at: utc(start)} }
	tests := []struct {
		name       string
		retryAfter time.Duration
		fail       func(int) error
		want       []rec
	}{
		{"no retry: the next instant still runs", 0, failRuns(0), []rec{
			at("2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),
		}},
		{"retried once after the delay", 30 * time.Minute, failRuns(0), []rec{
			at("2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"),
			at("2026-06-01T02:00:00Z", "2026-06-01T02:40:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),
		}},
		{"a failed retry is not retried", 30 * time.Minute, failRuns(0, 1), []rec{
			at("2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"),
			at("2026-06-01T02:00:00Z", "2026-06-01T02:40:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),
		}},
		{"the next instant comes first", 13 * time.Hour, failRuns(0), []rec{
			at("2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),
		}},
		{"every run fails", time.Hour, func(int) error { return fail }, []rec{
			at("2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"),
			at("2026-06-01T02:00:00Z", "2026-06-01T03:10:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T14:00:00Z"),
			at("2026-06-01T14:00:00Z", "2026-06-01T15:10:00Z"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := daily("UTC", "02:00", "14:00")
			h := newHarness(t, options{
				now: utc("2026-06-01T00:00:00Z"), schedule: &sc,
				retryAfter: tt.retryAfter, took: 10 * time.Minute, fail: tt.fail,
			})
			h.start()
			h.stepUntil(utc("2026-06-01T20:00:00Z"))
			runs, states, _ := h.recorded()
			checkRuns(t, runs, tt.want)
			if last := states[len(states)-1]; !last.LastScheduled.Equal(utc("2026-06-01T14:00:00Z")) {
				t.Errorf("saved LastScheduled %v, want 14:00 (a failed run still served its instant)", last.LastScheduled)
			}
		})
	}
}

func TestOnDemandSuccessCancelsRetry(t *testing.T) {
	t.Parallel()
	sc := daily("UTC", "02:00")
	h := newHarness(t, options{
		now: utc("2026-06-01T01:00:00Z"), schedule: &sc, maxWait: 24 * time.Hour, retryAfter: time.Hour,
		fail: func(n int) error {
			if n == 0 {
				return errors.New("disk full")
			}
			return nil
		},
	})
	h.start()
	h.stepUntil(utc("2026-06-01T02:00:00Z"))
	if at, _ := h.clock.WaitArmed(t, h.seq); !at.Equal(utc("2026-06-01T03:00:00Z")) {
		t.Fatalf("waiting until %v, want the retry at 03:00", at)
	}
	h.clock.Set(utc("2026-06-01T02:30:00Z"))
	seq := h.clock.Seq()
	if err := h.s.RunNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if at, _ := h.clock.WaitArmed(t, seq); !at.Equal(utc("2026-06-02T02:00:00Z")) {
		t.Errorf("after a successful on-demand run, waiting until %v, want the next instant", at)
	}
}

func TestSetSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{now: utc("2026-06-01T00:00:00Z"), maxWait: 7 * 24 * time.Hour})
	if !h.s.Next().IsZero() {
		t.Fatalf("Next without a schedule = %v, want zero", h.s.Next())
	}
	h.start()

	set := func(sc policy.Schedule, wantWait string) {
		t.Helper()
		seq := h.clock.Seq()
		if err := h.s.SetSchedule(sc); err != nil {
			t.Fatal(err)
		}
		at, _ := h.clock.WaitArmed(t, seq)
		if !at.Equal(utc(wantWait)) {
			t.Fatalf("after SetSchedule(%v) waiting until %v, want %s", sc.Times, at, wantWait)
		}
		if !h.s.Next().Equal(utc(wantWait)) {
			t.Fatalf("Next = %v, want %s", h.s.Next(), wantWait)
		}
	}
	set(daily("UTC", "14:00"), "2026-06-01T14:00:00Z")
	set(daily("UTC", "06:00"), "2026-06-01T06:00:00Z") // re-armed earlier

	bad := []policy.Schedule{
		daily("Mars/Olympus", "06:00"),
		daily("UTC", "06:15"),
		{Frequency: "hourly", Times: []string{"06:00"}, TimeZone: "UTC"},
	}
	for _, sc := range bad {
		if err := h.s.SetSchedule(sc); err == nil {
			t.Errorf("SetSchedule(%+v) succeeded, want an error", sc)
		}
	}
	if !h.s.Next().Equal(utc("2026-06-01T06:00:00Z")) {
		t.Fatalf("an invalid schedule changed Next to %v", h.s.Next())
	}

	h.stepUntil(utc("2026-06-01T10:00:00Z"))
	h.clock.Set(utc("2026-06-01T10:00:00Z"))
	// 08:00 is past: not a missed run of the new schedule.
	set(daily("UTC", "08:00", "20:00"), "2026-06-01T20:00:00Z")
	h.stepUntil(utc("2026-06-01T21:00:00Z"))

	seq := h.clock.Seq()
	h.s.ClearSchedule()
	if !h.s.Next().IsZero() {
		t.Errorf("Next after ClearSchedule = %v, want zero", h.s.Next())
	}
	h.clock.Set(utc("2026-06-03T00:00:00Z"))
	if n := h.clock.Seq(); n != seq {
		t.Errorf("the loop armed %d waits without a schedule", n-seq)
	}

	runs, _, _ := h.recorded()
	checkRuns(t, runs, onTime(utc("2026-06-01T06:00:00Z"), utc("2026-06-01T20:00:00Z")))
}

func TestStop(t *testing.T) {
	t.Parallel()
	t.Run("while waiting", func(t *testing.T) {
		sc := daily("UTC", "02:00")
		h := newHarness(t, options{now: utc("2026-06-01T00:00:00Z"), schedule: &sc})
		h.start()
		h.clock.WaitArmed(t, 0)
		if err := h.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if runs, _, _ := h.recorded(); len(runs) != 0 {
			t.Errorf("runs %v, want none", runs)
		}
	})

	t.Run("during a run, which a restart catches up", func(t *testing.T) {
		sc := daily("UTC", "02:00")
		gate := make(chan bool) // never opens: the run ends when stopped
		h := newHarness(t, options{
			now: utc("2026-06-01T01:00:00Z"), schedule: &sc,
			state: State{LastScheduled: utc("2026-05-31T02:00:00Z")},
			gate:  func(bool) chan bool { return gate },
		})
		h.start()
		h.stepUntil(utc("2026-06-01T01:59:00Z"))
		h.clock.Set(utc("2026-06-01T02:00:00Z"))
		h.waitStarted()
		if err := h.stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		_, states, _ := h.recorded()
		last := states[len(states)-1]
		if !last.LastScheduled.Equal(utc("2026-05-31T02:00:00Z")) || !last.LastRunStart.Equal(utc("2026-06-01T02:00:00Z")) {
			t.Fatalf("state after the stopped run = %+v, want LastScheduled unchanged and LastRunStart 02:00", last)
		}

		// Restart from the saved JSON a little later.
		b, err := json.Marshal(last)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"lastScheduled":"2026-05-31T02:00:00Z"`) {
			t.Errorf("state JSON %s", b)
		}
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		h2 := newHarness(t, options{now: utc("2026-06-01T02:05:00Z"), state: st, schedule: &sc})
		h2.start()
		h2.clock.WaitArmed(t, 0)
		runs, _, _ := h2.recorded()
		checkRuns(t, runs, []rec{{scheduled: utc("2026-06-01T02:00:00Z"), catchUp: true, at: utc("2026-06-01T02:05:00Z")}})
	})
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	sc := daily("UTC", "02:00")
	h := newHarness(t, options{now: utc("2026-06-01T00:00:00Z"), schedule: &sc})
	h.start()
	h.clock.WaitArmed(t, 0) // the first Run is in its loop
	if err := h.s.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("a second Run = %v, want an error", err)
	}
}
