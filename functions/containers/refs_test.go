package containers

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/packrefs/packrefstest"
)

// The check merges the list with the listing of data/ across listing pages:
// stored packs the point does not name, packs it names that are missing,
// both on either side of a page boundary.
func TestCheckPointMergesAcrossListingPages(t *testing.T) {
	f := newFixture(t, time.Now)
	ctx := t.Context()
	all := newIDs(listPage + 300)
	slices.Sort(all)
	var stored, named, wantMissing []string
	for i, id := range all {
		switch i % 5 {
		case 0: // stored, not named
			stored = append(stored, id)
		case 1: // named, not stored
			named = append(named, id)
			wantMissing = append(wantMissing, id)
		default:
			stored = append(stored, id)
			named = append(named, id)
		}
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, id := range stored {
		g.Go(func() error {
			_, err := f.cc.NewBlockBlobClient(packrefs.PackName(id)).UploadBuffer(ctx, []byte("p"), nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	f.put("data/zz/not-a-pack", []byte("ignored"))
	p := newID()
	f.point(p, named...)
	m, err := f.c.CheckPoint(ctx, f.name, p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count != len(wantMissing) || !slices.Equal(m.First, wantMissing[:missingSample]) {
		t.Fatalf("missing %d %v, want %d %v", m.Count, m.First, len(wantMissing), wantMissing[:missingSample])
	}

	// A list naming another point, or not a list at all, is refused.
	other := newID()
	enc, _ := packrefs.New(newID(), nil).Encode()
	f.put(packrefs.Name(other), enc)
	f.put(layout.Point(other), []byte("sealed point"))
	if _, err := f.c.CheckPoint(ctx, f.name, other); !errors.Is(err, packrefs.ErrInvalid) {
		t.Fatalf("a list naming another point: %v", err)
	}
	bad := newID()
	f.put(packrefs.Name(bad), []byte(`{"version":1`))
	f.put(layout.Point(bad), []byte("sealed point"))
	if _, err := f.c.CheckPoint(ctx, f.name, bad); !errors.Is(err, packrefs.ErrInvalid) {
		t.Fatalf("a truncated list: %v", err)
	}
}

// One check at a time per machine and a few in all; a check that cannot
// get its turn is told to retry.
func TestLimiterBoundsChecks(t *testing.T) {
	l := newLimiter()
	ctx := t.Context()
	rel, err := l.acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.acquire(short, "a"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second check of the same machine: %v", err)
	}
	var rels []func()
	for _, k := range []string{"b", "c", "d"} {
		r, err := l.acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	if _, err := l.acquire(short, "e"); !errors.Is(err, ErrBusy) {
		t.Fatalf("a check over the limit in all: %v", err)
	}
	// A waiting check gets its turn when one ends.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, err := l.acquire(ctx, "a")
		if err != nil {
			t.Error(err)
			return
		}
		r()
	}()
	rel()
	wg.Wait()
	for _, r := range rels {
		r()
	}
	if len(l.per) != 0 || len(l.ref) != 0 || len(l.all) != 0 {
		t.Fatalf("limiter holds state after every check ended: %v %v %d", l.per, l.ref, len(l.all))
	}
}

// GC's memory follows the packs stored, not what the lists name: a list of
// 400,000 packs that do not exist (27 MB) costs next to nothing, so an
// agent cannot exhaust the timer's memory with lists.
func TestGCMemoryDoesNotFollowTheLists(t *testing.T) {
	f := newFixture(t, later)
	ctx := t.Context()
	f.packs(newIDs(3)...)
	p := newID()
	gen := &packrefstest.Generated{Point: p, N: 400_000}
	if _, err := f.cc.NewBlockBlobClient(packrefs.Name(p)).UploadStream(ctx, gen, nil); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := f.c.Collect(ctx, f.name, GCOptions{Grace: grace, Registered: func(id string) bool { return id == p }})
	runtime.ReadMemStats(&after)
	if err != nil || res.Deleted != 3 {
		t.Fatalf("GC = %+v, %v", res, err)
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("GC over a list of %d packs (%d bytes) allocated %d bytes", gen.N, 67*gen.N, got)
	if got > 4<<20 {
		t.Fatal("over 4 MiB: memory follows the lists")
	}
}
