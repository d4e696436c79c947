// Package throttle sets the agent's upload rate limiter from the policy's
// throttle: one rate in work hours on work days, another outside them, as
// in MARS, with the hours resolved in the schedule's time zone.
//
// The limiter is the one given to shared/storage/limit as Options.Upload,
// so a change here applies to uploads already in progress.
package throttle

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/shared/policy"
)

// Clock is the time source (scheduler.SystemClock fits). Tests pass a fake
// they move by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// MinBurst is the smallest burst set: shared/storage/limit waits for a
// write in pieces of the burst, and smaller pieces mean more wake-ups for
// no gain in smoothness.
const MinBurst = 64 << 10

// DefaultMaxWait is the longest single wait when MaxWait is zero.
const DefaultMaxWait = time.Minute

// Throttle applies a policy.Throttle to a rate.Limiter.
type Throttle struct {
	// MaxWait caps one wait, so a wall-clock step or a suspend that the
	// monotonic timer behind After does not see is noticed within it. Zero
	// means DefaultMaxWait. Set it before Run.
	MaxWait time.Duration

	clock   Clock
	limiter *rate.Limiter
	log     *slog.Logger
	wake    chan struct{}

	mu      sync.Mutex
	policy  policy.Throttle
	loc     *time.Location
	rate    int64 // bytes/s in force; 0 when unlimited
	limited bool
}

// New returns a Throttle driving limiter. Until Set, uploads are unlimited.
// A nil logger discards logs.
func New(clock Clock, limiter *rate.Limiter, logger *slog.Logger) *Throttle {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Throttle{clock: clock, limiter: limiter, log: logger, wake: make(chan struct{}, 1), loc: time.UTC}
	limiter.SetLimit(rate.Inf)
	return t
}

// Set applies p at once and re-arms Run for p's next change. loc is the
// schedule's zone, in which the work hours are read; nil means UTC.
func (t *Throttle) Set(p policy.Throttle, loc *time.Location) {
	if loc == nil {
		loc = time.UTC
	}
	p.WorkDays = slices.Clone(p.WorkDays) // the caller may reuse its slice
	t.mu.Lock()
	t.policy, t.loc = p, loc
	t.apply(t.clock.Now())
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Current is the rate in force: bytes per second and whether uploads are
// limited at all (false: unlimited, and the rate is 0).
func (t *Throttle) Current() (bytesPerSecond int64, limited bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rate, t.limited
}

// Run re-applies the policy at each change of rate until ctx ends, then
// returns ctx's error.
func (t *Throttle) Run(ctx context.Context) error {
	maxWait := t.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	for {
		now := t.clock.Now()
		t.mu.Lock()
		t.apply(now) // also catches up after a suspend or a clock step
		next := t.policy.NextChange(now, t.loc)
		t.mu.Unlock()
		var timer <-chan time.Time
		if !next.IsZero() {
			// NextChange is after now, so the wait is positive.
			timer = t.clock.After(min(next.Sub(now), maxWait))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.wake:
		case <-timer:
		}
	}
}

// apply sets the limiter for the rate at now if it differs from the one in
// force. t.mu is held.
func (t *Throttle) apply(now time.Time) {
	bps, limited := t.policy.RateAt(now, t.loc)
	if bps == t.rate && limited == t.limited {
		return // unchanged: keep the logs to real changes
	}
	t.rate, t.limited = bps, limited
	if !limited {
		t.limiter.SetLimit(rate.Inf)
		t.log.Info("upload throttle off")
		return
	}
	// Burst first: with the new limit but the old, larger burst, a write
	// could go out as one piece far above the new rate.
	t.limiter.SetBurst(Burst(bps))
	t.limiter.SetLimit(rate.Limit(bps))
	t.log.Info("upload throttle set", "bytesPerSecond", bps, "kbps", bps*8/1000,
		"until", t.policy.NextChange(now, t.loc))
}

// Burst is the limiter burst for a rate: a quarter second of it, so the
// pace stays smooth, but at least MinBurst.
func Burst(bytesPerSecond int64) int {
	return int(max(bytesPerSecond/4, MinBurst))
}
