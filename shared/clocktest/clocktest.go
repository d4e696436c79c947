// Package clocktest is a clock that tests move by hand, for code that takes
// a clock: Now, and After for loops that wait (the agent's scheduler and
// throttle, the control plane's stores and their tests).
//
// Such code runs a loop that arms one After, then blocks. A test drives it
// step by step: WaitArmed blocks until the loop has armed a new wait (so
// everything the previous step triggered has finished), and Set moves the
// clock, firing the waits that are due. Nothing sleeps.
package clocktest

import (
	"sync"
	"testing"
	"time"
)

// Limit bounds every real-time wait in the helpers, so that a test of a
// loop that never arms fails instead of hanging.
const Limit = 10 * time.Second

// Fake is a manual clock. The zero value is not usable; use New.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64 // After calls so far
	waiters []waiter
	changed chan struct{} // closed and replaced when a waiter is added
}

type waiter struct {
	at  time.Time
	seq uint64
	ch  chan time.Time
}

// New returns a clock showing now.
func New(now time.Time) *Fake {
	return &Fake{now: now, changed: make(chan struct{})}
}

// Now is the clock's time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires once the clock is set to now+d or later; d <= 0 fires at once.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), seq: c.seq, ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Seq counts the After calls so far; pass it to WaitArmed to wait for a
// wait armed after this moment.
func (c *Fake) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Set moves the clock to at (forwards or backwards) and fires every wait
// that is due.
func (c *Fake) Set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(at) {
			kept = append(kept, w)
			continue
		}
		w.ch <- at
	}
	c.waiters = kept
}

// Advance moves the clock forward by d.
func (c *Fake) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// WaitArmed blocks until a wait armed by an After call numbered above since
// is pending, and returns the deadline of the latest such wait and its
// number. The latest is the live one: a loop abandons its older waits when
// something else wakes it.
func (c *Fake) WaitArmed(tb testing.TB, since uint64) (time.Time, uint64) {
	tb.Helper()
	deadline := time.NewTimer(Limit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		var latest *waiter
		for i := range c.waiters {
			if w := &c.waiters[i]; w.seq > since && (latest == nil || w.seq > latest.seq) {
				latest = w
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if latest != nil {
			return latest.at, latest.seq
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("clocktest: nothing armed a wait after call %d within %v", since, Limit)
			return time.Time{}, 0
		}
	}
}

// WaitPending blocks until at least n waits are pending: for code with
// several loops on one clock (one per timer), every loop has finished what
// the last move triggered and waits again.
func (c *Fake) WaitPending(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.NewTimer(Limit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.waiters), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("clocktest: %d waits pending after %v, want %d", got, Limit, n)
			return
		}
	}
}

// AdvanceToNext moves the clock to the earliest pending wait's deadline
// and returns it.
func (c *Fake) AdvanceToNext(tb testing.TB) time.Time {
	tb.Helper()
	c.mu.Lock()
	if len(c.waiters) == 0 {
		c.mu.Unlock()
		tb.Fatal("clocktest: nothing is waiting on the clock")
		return time.Time{}
	}
	next := c.waiters[0].at
	for _, w := range c.waiters[1:] {
		if w.at.Before(next) {
			next = w.at
		}
	}
	c.mu.Unlock()
	c.Set(next)
	return next
}

// Step waits for a wait armed after call since, moves the clock to its
// deadline and returns the deadline and the wait's number, to pass as
// since to the next Step.
func (c *Fake) Step(tb testing.TB, since uint64) (time.Time, uint64) {
	tb.Helper()
	at, seq := c.WaitArmed(tb, since)
	c.Set(at)
	return at, seq
}
