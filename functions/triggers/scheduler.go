package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/coffer-backup/coffer/functions/invocation"
)

// ncrontab parses the host's six-field NCRONTAB (seconds first). Descriptors
// such as @daily are not NCRONTAB and stay off.
var ncrontab = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// parseSchedule parses an NCRONTAB expression, evaluated in UTC as the host
// does when WEBSITE_TIME_ZONE is unset.
func parseSchedule(expr string) (*cron.SpecSchedule, error) {
	// robfig/cron reads a TZ= prefix (and panics on one without a space);
	// NCRONTAB has none, and the time zone is fixed.
	if strings.Contains(expr, "=") {
		return nil, fmt.Errorf("schedule %q: a time zone prefix is not NCRONTAB; schedules run in UTC", expr)
	}
	s, err := ncrontab.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule %q is not a six-field NCRONTAB expression (sec min hour day month weekday): %w", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("schedule %q: unexpected schedule type %T", expr, s)
	}
	spec.Location = time.UTC
	// cron gives up after five years; a schedule like 30 February never fires.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("schedule %q never fires", expr)
	}
	return spec, nil
}

// pastDueAfter is how late a run may start and still count as on time.
const pastDueAfter = time.Second

// Scheduler fires timers on their schedules in standalone mode, as the
// Functions host does in Azure.
type Scheduler struct {
	// After waits for a duration; nil means time.After. Tests replace it
	// with a fake clock's.
	After func(d time.Duration) <-chan time.Time

	timers  []scheduled
	now     func() time.Time
	logger  *slog.Logger
	running atomic.Bool
}

type scheduled struct {
	Timer
	spec *cron.SpecSchedule
}

// NewScheduler checks every timer's schedule. now is the clock (nil means
// time.Now) and logger receives run outcomes (nil means slog.Default()).
func NewScheduler(timers []Timer, now func() time.Time, logger *slog.Logger) (*Scheduler, error) {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Scheduler{now: now, logger: logger}
	seen := map[string]bool{}
	var errs []error
	for _, t := range timers {
		switch {
		case t.Name == "" || seen[t.Name]:
			errs = append(errs, fmt.Errorf("timer name %q is empty or used twice: give each timer its own name", t.Name))
			continue
		case t.Run == nil:
			errs = append(errs, fmt.Errorf("timer %s has no Run function", t.Name))
			continue
		}
		seen[t.Name] = true
		spec, err := parseSchedule(t.Schedule)
		if err != nil {
			errs = append(errs, fmt.Errorf("timer %s: %w", t.Name, err))
			continue
		}
		s.timers = append(s.timers, scheduled{Timer: t, spec: spec})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Next is the first instant of timer name strictly after after, in UTC, or
// the zero time for an unknown name.
func (s *Scheduler) Next(name string, after time.Time) time.Time {
	for _, t := range s.timers {
		if t.Name == name {
			return t.spec.Next(after.UTC())
		}
	}
	return time.Time{}
}

// Run fires every timer at its instants until ctx is done, then waits for
// runs in progress (their ctx is cancelled too) and returns nil. A timer
// never overlaps itself: instants that pass while it runs are skipped, as
// the host does. A run that starts late has IsPastDue set. Like the host
// without its status store, Run knows nothing of instants missed before it
// started.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scheduler is already running: run one Scheduler once")
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	for _, t := range s.timers {
		wg.Go(func() { s.loop(ctx, t) })
	}
	wg.Wait()
	return nil
}

func (s *Scheduler) after(d time.Duration) <-chan time.Time {
	if s.After != nil {
		return s.After(d)
	}
	return time.After(d)
}

func (s *Scheduler) loop(ctx context.Context, t scheduled) {
	log := s.logger.With("function", t.Name)
	next := t.spec.Next(s.now().UTC())
	log.Info("timer scheduled", "schedule", t.Schedule, "next", next)
	var last, lastUpdated time.Time
	for {
		if d := next.Sub(s.now()); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-s.after(d):
			}
			// Timers follow the monotonic clock and schedules the wall
			// clock; if the wall clock stepped back, wait again.
			if s.now().Before(next) {
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		started := s.now().UTC()
		info := timerInfo(next, started.Sub(next) > pastDueAfter, last, lastUpdated)
		if info.IsPastDue {
			log.Warn("timer fired late", "due", next, "late_by", started.Sub(next))
		}
		err := call(func() error { return t.Run(ctx, info) })
		ended := s.now().UTC()
		switch {
		case err != nil && ctx.Err() != nil:
			log.Info("timer run interrupted by shutdown", "due", next, "err", err)
		case err != nil:
			log.Error("timer run failed; it runs again at its next instant", "due", next, "took", ended.Sub(started), "err", err)
		default:
			log.Info("timer run done", "due", next, "took", ended.Sub(started))
		}

		last, lastUpdated = next, started
		following := t.spec.Next(next)
		if skipped := countUntil(t.spec, following, ended); skipped > 0 {
			following = t.spec.Next(ended)
			log.Warn("skipped instants that passed while the timer ran late or long", "skipped", skipped, "next", following)
		}
		next = following
	}
}

// countUntil counts the instants of spec from first up to and including
// end, stopping at a bound: after a long outage the count is only logged.
func countUntil(spec *cron.SpecSchedule, first, end time.Time) int {
	n := 0
	for at := first; n < 10000 && !at.IsZero() && !at.After(end); at = spec.Next(at) {
		n++
	}
	return n
}

// timerInfo builds the binding value the host would pass for the instant
// due: ScheduleStatus.Next is this instant, Last the previous instant run
// (zero on the first run) and LastUpdated when that run started.
func timerInfo(due time.Time, pastDue bool, last, lastUpdated time.Time) *invocation.Timer {
	info := &invocation.Timer{IsPastDue: pastDue}
	// ScheduleStatus has an unnamed struct type; newOf names it by inference.
	info.ScheduleStatus = newOf(info.ScheduleStatus)
	info.ScheduleStatus.Last = last
	info.ScheduleStatus.Next = due
	info.ScheduleStatus.LastUpdated = lastUpdated
	return info
}

func newOf[T any](*T) *T { return new(T) }
