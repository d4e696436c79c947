package triggers

import (
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait on a channel in these tests.
const waitLimit = 10 * time.Second

// fakeClock is a clock the test moves by hand. After registers a waiter
// that fires when the clock reaches its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // pinged whenever a waiter is added
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, changed: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return ch
}

// blockUntil waits until n waiters are registered: every goroutine driven
// by the clock has finished its work and is waiting again.
func (c *fakeClock) blockUntil(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		got := len(c.waiters)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%d goroutines waiting on the clock, want %d", got, n)
		}
	}
}

// set moves the clock to at and fires the waiters that are due.
func (c *fakeClock) set(at time.Time) {
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

// advanceToNext moves the clock to the earliest waiter's deadline.
func (c *fakeClock) advanceToNext(t *testing.T) time.Time {
	t.Helper()
	c.mu.Lock()
	if len(c.waiters) == 0 {
		c.mu.Unlock()
		t.Fatal("nothing is waiting on the clock")
	}
	next := c.waiters[0].at
	for _, w := range c.waiters[1:] {
		if w.at.Before(next) {
			next = w.at
		}
	}
	c.mu.Unlock()
	c.set(next)
	return next
}

func (c *fakeClock) advance(d time.Duration) {
	c.set(c.Now().Add(d))
}
