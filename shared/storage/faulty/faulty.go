// Package faulty wraps a storage.Backend to make chosen calls fail, so tests
// can show what the engine does when an upload fails, a read fails, or the
// process dies right after a given write: that it reports the failure and
// that the repository it leaves behind is still sound.
//
// Every failure it makes up wraps ErrInjected, which the retry layer treats
// as final, so a retrying stack gives up at once instead of sleeping.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/shared/storage"
)

// ErrInjected is the cause of every failure this package makes up.
var ErrInjected = errors.New("injected storage failure")

// Op is a set of backend calls.
type Op uint8

const (
	Create Op = 1 << iota
	Read
	Stat
	List
	Delete

	// Writes are the calls that change the repository.
	Writes = Create | Delete
	// Reads are the calls that only look.
	Reads = Read | Stat | List
	// All is every call.
	All = Writes | Reads
)

func (o Op) String() string {
	var names []string
	for _, c := range []struct {
		op   Op
		name string
	}{{Create, "create"}, {Read, "read"}, {Stat, "stat"}, {List, "list"}, {Delete, "delete"}} {
		if o&c.op != 0 {
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Prefix matches the names that start with p, such as "data/" for packs.
func Prefix(p string) func(name string) bool {
	return func(name string) bool { return strings.HasPrefix(name, p) }
}

// Any matches every name.
func Any(string) bool { return true }

// Write is one write that reached the backend and succeeded.
type Write struct {
	Op   Op // Create or Delete
	Name string
}

type rule struct {
	ops   Op
	match func(string) bool
}

// Backend passes calls to the backend it wraps unless told to fail them.
// It is safe for concurrent use, and its faults may be armed or healed
// while calls are in flight.
type Backend struct {
	b storage.Backend

	mu       sync.Mutex
	rules    []rule
	limit    int  // successful writes allowed in all; < 0: no limit
	stop     bool // reaching limit stops every call, not just writes
	stopped  bool
	inflight int     // writes admitted but not finished
	done     []Write // successful writes, in the order they finished
}

var _ storage.Backend = (*Backend)(nil)

// New wraps b, failing nothing until told to.
func New(b storage.Backend) *Backend { return &Backend{b: b, limit: -1} }

// Fail makes every call in ops whose object name matches fail before it
// reaches the backend. A List is matched on its prefix. Rules add up.
func (f *Backend) Fail(ops Op, match func(name string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, rule{ops: ops, match: match})
}

// FailWritesAfter lets n more writes succeed, then fails every later write.
// Reads go on working, as with a storage account whose quota is used up.
func (f *Backend) FailWritesAfter(n int) { f.setLimit(n, false) }

// StopAfterWrites lets n more writes succeed and then fails every call of
// any kind, as if the process had died the moment the nth write landed:
// the wrapped backend holds exactly what a crash at that point leaves.
//
// Writes run concurrently, so while the last allowed writes are in flight a
// further write fails at once rather than risk landing after the crash.
// If an allowed write fails on its own, its place goes to a later one.
func (f *Backend) StopAfterWrites(n int) { f.setLimit(n, true) }

func (f *Backend) setLimit(n int, stop bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limit = len(f.done) + max(n, 0)
	f.stop = stop
	if stop && f.inflight == 0 && len(f.done) >= f.limit {
		f.stopped = true
	}
}

// Heal removes every fault, the stop included. The record of writes stays.
func (f *Backend) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules, f.limit, f.stop, f.stopped = nil, -1, false, false
}

// Stopped reports whether StopAfterWrites has taken effect.
func (f *Backend) Stopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// Writes lists the writes that succeeded so far, in the order they finished.
// A clean run's count tells a crash test how many crash points to try.
func (f *Backend) Writes() []Write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Write(nil), f.done...)
}

// Unwrap returns the wrapped backend, to look at what a failure left behind.
func (f *Backend) Unwrap() storage.Backend { return f.b }

// Location is the wrapped backend's.
func (f *Backend) Location() string { return f.b.Location() }

// refuse reports the made-up failure for a call, if any. Callers hold mu.
func (f *Backend) refuse(op Op, name string) error {
	if f.stopped {
		return fmt.Errorf("%s %s: %w: stopped after write %d (a simulated crash)", op, name, ErrInjected, len(f.done))
	}
	for _, r := range f.rules {
		if r.ops&op != 0 && r.match(name) {
			return fmt.Errorf("%s %s: %w", op, name, ErrInjected)
		}
	}
	return nil
}

// check fails a call that does not write if it must fail.
func (f *Backend) check(op Op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refuse(op, name)
}

// write runs do if the write may happen and records it if it succeeds.
func (f *Backend) write(op Op, name string, do func() error) error {
	f.mu.Lock()
	if err := f.refuse(op, name); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.limit >= 0 && len(f.done)+f.inflight >= f.limit {
		f.mu.Unlock()
		return fmt.Errorf("%s %s: %w: no writes allowed after write %d", op, name, ErrInjected, f.limit)
	}
	f.inflight++
	f.mu.Unlock()

	err := do()

	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if err == nil {
		f.done = append(f.done, Write{Op: op, Name: name})
	}
	if f.stop && f.limit >= 0 && len(f.done) >= f.limit {
		f.stopped = true
	}
	return err
}

func (f *Backend) Create(ctx context.Context, name string, data []byte) error {
	return f.write(Create, name, func() error { return f.b.Create(ctx, name, data) })
}

func (f *Backend) Delete(ctx context.Context, name string) error {
	return f.write(Delete, name, func() error { return f.b.Delete(ctx, name) })
}

func (f *Backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := f.check(Read, name); err != nil {
		return nil, err
	}
	return f.b.Read(ctx, name, offset, length)
}

func (f *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := f.check(Stat, name); err != nil {
		return storage.Info{}, err
	}
	return f.b.Stat(ctx, name)
}

// List fails on its prefix, and stops part-way if the backend stops while
// it runs.
func (f *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := f.check(List, prefix); err != nil {
		return err
	}
	return f.b.List(ctx, prefix, func(i storage.Info) error {
		if f.Stopped() {
			return fmt.Errorf("list %s: %w: stopped (a simulated crash)", prefix, ErrInjected)
		}
		return fn(i)
	})
}
