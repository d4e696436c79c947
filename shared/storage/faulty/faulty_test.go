package faulty_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/faulty"
	"github.com/coffer-backup/coffer/shared/storage/mem"
	"github.com/coffer-backup/coffer/shared/storage/retry"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

// Unarmed, the wrapper changes nothing.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return faulty.New(mem.New(t.Name())) })
}

func TestInjectedFailuresAreFinal(t *testing.T) {
	f := faulty.New(mem.New(""))
	f.Fail(faulty.Create, faulty.Any)
	err := f.Create(t.Context(), "x", nil)
	if !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("got %v, want ErrInjected", err)
	}
	if retry.IsTransient(err) {
		t.Fatal("an injected failure counts as transient; a retrying stack would wait on it")
	}
}

// calls tries each kind of call on name and reports which failed with
// ErrInjected. Any other error fails the test.
func calls(t *testing.T, f *faulty.Backend, name string) (failed faulty.Op) {
	t.Helper()
	try := func(op faulty.Op, err error) {
		t.Helper()
		switch {
		case errors.Is(err, faulty.ErrInjected):
			failed |= op
		case err != nil:
			t.Fatalf("%s %s: %v, want success or ErrInjected", op, name, err)
		}
	}
	_, err := f.Stat(t.Context(), name)
	try(faulty.Stat, err)
	rc, err := f.Read(t.Context(), name, 0, -1)
	if err == nil {
		rc.Close()
	}
	try(faulty.Read, err)
	try(faulty.List, f.List(t.Context(), name, func(storage.Info) error { return nil }))
	return failed
}

func TestFailByOpAndName(t *testing.T) {
	for _, c := range []struct {
		ops                faulty.Op
		match              func(string) bool
		name               string
		wantCreateFails    bool
		wantFailedOnLookup faulty.Op
	}{
		{faulty.Create, faulty.Prefix("data/"), "data/ab/pack", true, 0},
		{faulty.Create, faulty.Prefix("data/"), "index/1", false, 0},
		{faulty.Read, faulty.Prefix("data/"), "data/ab/pack", false, faulty.Read},
		{faulty.Read | faulty.Stat, faulty.Any, "index/1", false, faulty.Read | faulty.Stat},
		{faulty.List, faulty.Prefix("points/"), "points/p1", false, faulty.List},
		{faulty.All, faulty.Prefix("keys/"), "keys/k", true, faulty.Reads},
		{faulty.All, faulty.Prefix("keys/"), "config", false, 0},
		{faulty.Create, func(n string) bool { return n == "exact" }, "exact", true, 0},
	} {
		t.Run(fmt.Sprintf("%s/%s", c.ops, c.name), func(t *testing.T) {
			inner := mem.New("")
			f := faulty.New(inner)
			f.Fail(c.ops, c.match)
			err := f.Create(t.Context(), c.name, []byte("x"))
			if got := errors.Is(err, faulty.ErrInjected); got != c.wantCreateFails {
				t.Fatalf("Create(%q) = %v; want injected failure: %v", c.name, err, c.wantCreateFails)
			}
			if err != nil {
				if _, serr := inner.Stat(t.Context(), c.name); !storage.IsNotFound(serr) {
					t.Fatalf("a failed Create reached the backend: Stat = %v", serr)
				}
				// Put it there behind the wrapper's back to test the lookups.
				if err := inner.Create(t.Context(), c.name, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			if got := calls(t, f, c.name); got != c.wantFailedOnLookup {
				t.Fatalf("failed lookups: %s, want %s", got, c.wantFailedOnLookup)
			}
			f.Heal()
			if got := calls(t, f, c.name); got != 0 {
				t.Fatalf("after Heal, %s still fail", got)
			}
		})
	}
}

func create(t *testing.T, f *faulty.Backend, names ...string) (failed []string) {
	t.Helper()
	for _, n := range names {
		err := f.Create(t.Context(), n, []byte(n))
		switch {
		case errors.Is(err, faulty.ErrInjected):
			failed = append(failed, n)
		case err != nil:
			t.Fatalf("Create(%q): %v", n, err)
		}
	}
	return failed
}

func names(ws []faulty.Write) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Op.String()+" "+w.Name)
	}
	return out
}

func TestFailWritesAfter(t *testing.T) {
	f := faulty.New(mem.New(""))
	create(t, f, "before")
	f.FailWritesAfter(2) // counts from now, not from the start
	if failed := create(t, f, "a", "b", "c", "d"); !slices.Equal(failed, []string{"c", "d"}) {
		t.Fatalf("failed %q, want c and d", failed)
	}
	if err := f.Delete(t.Context(), "a"); !errors.Is(err, faulty.ErrInjected) {
		t.Fatalf("Delete after the limit: %v, want ErrInjected", err)
	}
	if got := calls(t, f, "a"); got != 0 {
		t.Fatalf("reads fail (%s) after the write limit; only writes should", got)
	}
	if f.Stopped() {
		t.Fatal("FailWritesAfter stopped the backend")
	}
	if got, want := names(f.Writes()), []string{"create before", "create a", "create b"}; !slices.Equal(got, want) {
		t.Fatalf("Writes() = %q, want %q", got, want)
	}
}

func TestStopAfterWrites(t *testing.T) {
	inner := mem.New("")
	f := faulty.New(inner)
	f.StopAfterWrites(2)
	if f.Stopped() {
		t.Fatal("stopped before any write")
	}
	create(t, f, "a")
	// A write that fails on its own does not use up the allowance.
	if err := f.Create(t.Context(), "a", nil); !storage.IsExists(err) {
		t.Fatalf("second Create(a): %v, want ErrExists", err)
	}
	if f.Stopped() {
		t.Fatal("stopped after one successful write, want two")
	}
	if err := f.Delete(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if !f.Stopped() {
		t.Fatal("not stopped after the second write")
	}
	if failed := create(t, f, "b"); len(failed) != 1 {
		t.Fatal("a write after the stop succeeded")
	}
	if got := calls(t, f, "a"); got != faulty.Reads {
		t.Fatalf("after the stop only %s fail, want every call", got)
	}
	var left []string
	inner.List(t.Context(), "", func(i storage.Info) error { left = append(left, i.Name); return nil })
	if len(left) != 0 {
		t.Fatalf("the backend holds %q, want nothing (a created then deleted)", left)
	}
	if got, want := names(f.Writes()), []string{"create a", "delete a"}; !slices.Equal(got, want) {
		t.Fatalf("Writes() = %q, want %q", got, want)
	}
	f.Heal()
	if failed := create(t, f, "b"); len(failed) != 0 || f.Stopped() {
		t.Fatal("Heal did not lift the stop")
	}
}

func TestStopAfterZeroWritesStopsAtOnce(t *testing.T) {
	f := faulty.New(mem.New(""))
	f.StopAfterWrites(0)
	if !f.Stopped() {
		t.Fatal("StopAfterWrites(0) did not stop")
	}
	if got := calls(t, f, "x"); got != faulty.Reads {
		t.Fatalf("only %s fail, want every call", got)
	}
}

// A List in progress when the stop comes ends there, as the process would.
func TestStopEndsAListInProgress(t *testing.T) {
	f := faulty.New(mem.New(""))
	create(t, f, "a", "b", "c")
	f.StopAfterWrites(1)
	var seen []string
	err := f.List(t.Context(), "", func(i storage.Info) error {
		seen = append(seen, i.Name)
		if len(seen) == 1 {
			return f.Create(t.Context(), "z", nil)
		}
		return nil
	})
	if !errors.Is(err, faulty.ErrInjected) || len(seen) != 1 {
		t.Fatalf("List = %v after %q; want it to stop with ErrInjected after the first", err, seen)
	}
}

// However many writers race, exactly n writes land and each one that
// returned nil is among them.
func TestStopAfterWritesUnderConcurrency(t *testing.T) {
	for _, n := range []int{1, 5, 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			inner := mem.New("")
			f := faulty.New(inner)
			f.StopAfterWrites(n)
			const writers = 64
			ok := make([]bool, writers)
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					err := f.Create(t.Context(), fmt.Sprintf("data/%02d", i), []byte{byte(i)})
					if err != nil && !errors.Is(err, faulty.ErrInjected) {
						t.Errorf("writer %d: %v", i, err)
					}
					ok[i] = err == nil
				})
			}
			wg.Wait()
			if !f.Stopped() {
				t.Fatal("not stopped")
			}
			var landed []string
			inner.List(t.Context(), "", func(i storage.Info) error { landed = append(landed, i.Name); return nil })
			var succeeded []string
			for i, good := range ok {
				if good {
					succeeded = append(succeeded, fmt.Sprintf("data/%02d", i))
				}
			}
			if len(landed) != n || !slices.Equal(landed, succeeded) {
				t.Fatalf("%d objects landed (%q), %d writers saw success (%q); want %d of each, the same", len(landed), landed, len(succeeded), succeeded, n)
			}
			if len(f.Writes()) != n {
				t.Fatalf("Writes() records %d, want %d", len(f.Writes()), n)
			}
		})
	}
}
