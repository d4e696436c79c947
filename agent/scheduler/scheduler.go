// Package scheduler decides when the long-running agent (`coffer run`)
// backs up: at every instant of the policy's schedule, one job at a time,
// with one catch-up run for instants missed while the machine was off or
// asleep.
//
// The instants come from policy.Schedule, which the control plane's
// missed-backup monitor uses too, so both sides expect a run at the same
// instant, DST included.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/shared/policy"
)

// Clock is the time source. Tests pass a fake they move by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// State is what the scheduler must remember across restarts. The caller
// persists it (as JSON) through the save function given to New and passes
// the last saved State to New on the next start.
type State struct {
	// LastScheduled is the latest scheduled instant that was run (or, for a
	// fresh agent, zero). Instants after it that are already past at start
	// were missed and get one catch-up run.
	LastScheduled time.Time `json:"lastScheduled"`
	// LastRunStart and LastRunEnd bracket the latest run, scheduled or on
	// demand. LastRunStart is saved before the job starts, so a start after
	// the end means the agent died during that run.
	LastRunStart time.Time `json:"lastRunStart"`
	LastRunEnd   time.Time `json:"lastRunEnd"`
}

// Job runs one backup. scheduled is the instant the run serves, or the zero
// time for an on-demand run; catchUp is true when that instant was missed
// (the machine was off or asleep, or its clock jumped) and the run is late.
type Job func(ctx context.Context, scheduled time.Time, catchUp bool) error

// ErrBusy is returned by RunNow while a job is running.
var ErrBusy = errors.New("a backup is already running")

// DefaultMaxWait is the longest single wait when MaxWait is zero.
const DefaultMaxWait = time.Minute

const (
	// lateAfter: a run starting this long after its instant, with no other
	// job in the way, is a catch-up; normal wake-ups are milliseconds late.
	lateAfter = 5 * time.Minute
	// clockBackLimit: a LastScheduled this far ahead of the clock means the
	// clock was wrong when it was saved (or was set back a lot). Waiting for
	// the clock to catch up could mean no backup for months, so the state is
	// ignored; a smaller step back is waited out, to avoid running an
	// instant twice.
	clockBackLimit = time.Hour
	// minWait keeps the loop from spinning if a wake-up time were ever past.
	minWait = time.Second
)

// Scheduler runs a Job at the instants of a policy.Schedule.
type Scheduler struct {
	// RetryAfter, when positive, retries a failed scheduled run once, this
	// long after it ended, unless the next instant comes first. Set it
	// before Run.
	RetryAfter time.Duration
	// MaxWait caps one wait, so a wall-clock step or a suspend that the
	// monotonic timer behind After does not see is noticed within it. Zero
	// means DefaultMaxWait. Set it before Run.
	MaxWait time.Duration

	clock Clock
	save  func(State) error
	job   Job
	log   *slog.Logger
	wake  chan struct{} // SetSchedule and the end of an on-demand run

	mu      sync.Mutex
	sched   *policy.Schedule // nil: none yet
	state   State
	served  time.Time // instants at or before it are run or queued
	queued  *run      // a due instant not yet started (a job may be running)
	retry   *run      // the retry of a failed scheduled run
	busy    bool
	checked bool // Run has compared the schedule with the saved state once
	running bool
}

// run is one scheduled run to make.
type run struct {
	scheduled time.Time
	catchUp   bool
	at        time.Time // retry only: when it is due
	isRetry   bool
}

// New returns a scheduler with no schedule; call SetSchedule. state is the
// last State saved, or the zero State on the agent's first start, which
// waits for the next instant rather than catching up. save is called with
// the new State before and after every run; a nil logger discards logs.
func New(clock Clock, state State, save func(State) error, job Job, logger *slog.Logger) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if save == nil {
		save = func(State) error { return nil }
	}
	s := &Scheduler{
		clock: clock,
		save:  save,
		job:   job,
		log:   logger,
		wake:  make(chan struct{}, 1),
		state: state,
	}
	s.served = state.LastScheduled
	diedInRun := state.LastRunStart.After(state.LastRunEnd)
	switch {
	case s.served.IsZero() && diedInRun:
		// The agent died during its first scheduled run (kill -9, a crash,
		// power loss): that instant is before the run's start and still
		// owed, so the first check catches it up.
		s.served = state.LastRunStart.Add(-7 * 24 * time.Hour)
	case s.served.IsZero():
		// Nothing was scheduled before this start, so nothing was missed.
		s.served = s.now()
	}
	return s
}

// now strips the monotonic reading: schedule instants are wall-clock
// instants, and a saved State has none, so compare wall clocks throughout.
func (s *Scheduler) now() time.Time { return s.clock.Now().Round(0) }

func (s *Scheduler) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// SetSchedule replaces the schedule and re-arms the wait. An invalid
// schedule is refused and the old one kept. Instants of a new schedule
// that are already past are not missed runs, except while Run has not yet
// compared a schedule with the saved state (the first after a start).
func (s *Scheduler) SetSchedule(sc policy.Schedule) error {
	now := s.now()
	if _, err := sc.Next(now); err != nil {
		return fmt.Errorf("set schedule: %w", err)
	}
	sc.Days = slices.Clone(sc.Days) // the caller may reuse its slices
	sc.Times = slices.Clone(sc.Times)
	s.mu.Lock()
	if s.checked && s.served.Before(now) {
		s.served = now
	}
	s.sched = &sc
	s.mu.Unlock()
	s.log.Info("backup schedule set", "frequency", sc.Frequency, "days", sc.Days, "times", sc.Times, "timeZone", sc.TimeZone, "next", s.Next())
	s.notify()
	return nil
}

// ClearSchedule removes the schedule (protection stopped): no scheduled run
// starts until SetSchedule. A run already started finishes.
func (s *Scheduler) ClearSchedule() {
	s.mu.Lock()
	s.sched, s.queued, s.retry = nil, nil, nil
	s.mu.Unlock()
	s.log.Info("backup schedule cleared")
	s.notify()
}

// Next is the next scheduled instant not yet run, or the zero time without
// a schedule. It may be past if that instant waits for a running job.
func (s *Scheduler) Next() time.Time {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.sched == nil:
		return time.Time{}
	case s.queued != nil:
		return s.queued.scheduled
	}
	next, _ := s.sched.Next(later(s.served, now)) // valid: SetSchedule checked it
	return next
}

// RunNow runs an on-demand backup in the caller's goroutine and returns its
// error, or ErrBusy at once if a job is running. A scheduled instant that
// comes due meanwhile runs after it. A success cancels a pending retry.
func (s *Scheduler) RunNow(ctx context.Context) error {
	s.mu.Lock()
	if s.busy {
		s.mu.Unlock()
		return ErrBusy
	}
	s.busy = true
	s.mu.Unlock()
	err := s.execute(ctx, run{})
	s.notify() // a scheduled run may be waiting for this one
	if err != nil {
		return fmt.Errorf("on-demand backup: %w", err)
	}
	return nil
}

// Run runs the scheduled jobs until ctx ends, then returns ctx's error. A
// job in progress gets ctx and is waited for.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler: Run is already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()

	maxWait := s.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.now()
		s.mu.Lock()
		r, wakeAt := s.plan(now)
		if r != nil && !s.busy {
			s.busy = true
			if r.isRetry {
				s.retry = nil
			} else {
				s.queued = nil
			}
			s.mu.Unlock()
			_ = s.execute(ctx, *r) // logged there; a failure does not stop the schedule
			continue
		}
		var timer <-chan time.Time
		if r == nil && !wakeAt.IsZero() {
			// With a run due but busy, the end of that job wakes us instead.
			d := wakeAt.Sub(now)
			if d <= 0 {
				d = minWait
			}
			timer = s.clock.After(min(d, maxWait))
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-timer:
		}
	}
}

// plan returns the run to make now, if any, or else when to look again
// (zero: only when woken). It queues a newly due instant. s.mu is held.
func (s *Scheduler) plan(now time.Time) (*run, time.Time) {
	if s.sched == nil {
		return nil, time.Time{}
	}
	if s.served.After(now.Add(clockBackLimit)) {
		s.log.Warn("the last scheduled backup is later than the clock; the clock was set back, so the schedule restarts from now",
			"lastScheduled", s.served, "now", now)
		s.served = now
	}
	first := !s.checked
	s.checked = true
	// Errors cannot happen: SetSchedule checked the schedule.
	if due, _ := s.sched.Prev(now); due.After(s.served) {
		following, _ := s.sched.Next(s.served)
		catchUp := first || // missed while the agent was not running
			following.Before(due) || // several instants fold into this run
			(now.Sub(due) > lateAfter && !s.duringLastRun(due)) // asleep, or the clock jumped
		s.served = due
		s.queued = &run{scheduled: due, catchUp: catchUp}
		if s.retry != nil {
			s.log.Info("dropping the retry of the failed backup: the next scheduled backup is due", "scheduled", s.retry.scheduled)
			s.retry = nil
		}
	}
	if s.queued != nil {
		return s.queued, time.Time{}
	}
	next, _ := s.sched.Next(s.served)
	if s.retry != nil {
		switch {
		case !s.retry.at.Before(next):
			s.log.Info("not retrying the failed backup: the next scheduled backup comes first",
				"scheduled", s.retry.scheduled, "next", next)
			s.retry = nil
		case !s.retry.at.After(now):
			return s.retry, time.Time{}
		default:
			return nil, s.retry.at
		}
	}
	return nil, next
}

// duringLastRun reports whether t fell while the last (or the running) job
// ran: such an instant is late because it waited its turn, not because it
// was missed. s.mu is held.
func (s *Scheduler) duringLastRun(t time.Time) bool {
	return !t.Before(s.state.LastRunStart) && (s.busy || !t.After(s.state.LastRunEnd))
}

// execute runs the job for r (the zero run: on demand), records it in the
// State and clears busy. The caller has set busy.
func (s *Scheduler) execute(ctx context.Context, r run) error {
	onDemand := r.scheduled.IsZero()
	log := s.log.With("scheduled", r.scheduled, "catchUp", r.catchUp, "retry", r.isRetry, "onDemand", onDemand)

	s.mu.Lock()
	s.state.LastRunStart = s.now()
	st := s.state
	s.mu.Unlock()
	s.persist(st)

	log.Info("backup starting")
	err := s.job(ctx, r.scheduled, r.catchUp)
	end := s.now()

	s.mu.Lock()
	s.state.LastRunEnd = end
	stopped := err != nil && ctx.Err() != nil
	switch {
	case stopped:
		// The agent is stopping: leave LastScheduled, so the next start
		// catches this instant up.
		log.Info("backup stopped", "err", err)
	case err != nil:
		log.Error("backup failed", "err", err)
	default:
		log.Info("backup completed", "took", end.Sub(st.LastRunStart))
	}
	if !onDemand && !stopped {
		s.state.LastScheduled = r.scheduled
	}
	switch {
	case err == nil && onDemand && s.retry != nil:
		log.Info("dropping the retry of the failed backup: this backup succeeded", "retryOf", s.retry.scheduled)
		s.retry = nil
	case err != nil && !stopped && !onDemand && !r.isRetry && s.RetryAfter > 0:
		s.retry = &run{scheduled: r.scheduled, catchUp: r.catchUp, at: end.Add(s.RetryAfter), isRetry: true}
		log.Info("backup will be retried", "at", s.retry.at)
	}
	st = s.state
	s.mu.Unlock()
	s.persist(st)

	s.mu.Lock()
	s.busy = false // only now: saves stay in order
	s.mu.Unlock()
	return err
}

// persist saves st; a failure is logged, not fatal: the worst outcome is
// one extra catch-up run after a restart.
func (s *Scheduler) persist(st State) {
	if err := s.save(st); err != nil {
		s.log.Error("saving the scheduler state failed; a restart may run one extra backup", "err", fmt.Errorf("save scheduler state: %w", err))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
