package points

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

func newStore(t *testing.T, now *time.Time) (*Store, string) {
	t.Helper()
	s := New(emu.Tables(t), func() time.Time { return *now })
	if err := s.EnsureTable(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, "m" + id()[:19]
}

func wantSummary(t *testing.T, s *Store, machine string, count, active int, oldest, latest time.Time) {
	t.Helper()
	sum, err := s.Summary(t.Context(), machine)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Count != count || sum.Active != active {
		t.Fatalf("summary %d points, %d active; want %d, %d", sum.Count, sum.Active, count, active)
	}
	if active == 0 {
		if sum.Oldest != nil || sum.Latest != nil {
			t.Fatalf("summary of no active point has times %v %v", sum.Oldest, sum.Latest)
		}
		return
	}
	if sum.Oldest == nil || !sum.Oldest.Equal(oldest) || !sum.Latest.Equal(latest) {
		t.Fatalf("summary times %v..%v, want %v..%v", sum.Oldest, sum.Latest, oldest, latest)
	}
}

// The summary row follows every write: adds, soft deletes of the oldest and
// latest point, undeletes, removals, and is gone with the last point.
func TestSummaryFollowsEveryWrite(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s, m := newStore(t, &now)
	ctx := t.Context()
	wantSummary(t, s, m, 0, 0, time.Time{}, time.Time{})
	var ids []string
	var at []time.Time
	for range 4 {
		p := id()
		if _, err := s.Add(ctx, "v", m, p, "", nil); err != nil {
			t.Fatal(err)
		}
		ids, at = append(ids, p), append(at, now)
		now = now.Add(time.Hour)
	}
	wantSummary(t, s, m, 4, 4, at[0], at[3])
	if _, err := s.Add(ctx, "v", m, ids[1], "", nil); err != nil { // a retry
		t.Fatal(err)
	}
	wantSummary(t, s, m, 4, 4, at[0], at[3])

	for _, p := range []string{ids[0], ids[3]} {
		if _, err := s.SoftDelete(ctx, m, p); err != nil {
			t.Fatal(err)
		}
	}
	wantSummary(t, s, m, 4, 2, at[1], at[2])
	if _, err := s.SoftDelete(ctx, m, ids[3]); err != nil { // again: no change
		t.Fatal(err)
	}
	if _, err := s.Undelete(ctx, m, ids[0]); err != nil {
		t.Fatal(err)
	}
	wantSummary(t, s, m, 4, 3, at[0], at[2])
	for _, p := range []string{ids[3], ids[0], ids[0]} {
		if err := s.Remove(ctx, m, p); err != nil {
			t.Fatal(err)
		}
	}
	wantSummary(t, s, m, 2, 2, at[1], at[2])
	if ps, err := s.List(ctx, m, true); err != nil || len(ps) != 2 {
		t.Fatalf("list: %+v %v", ps, err)
	}
	for _, p := range ids[1:3] {
		if err := s.Remove(ctx, m, p); err != nil {
			t.Fatal(err)
		}
	}
	wantSummary(t, s, m, 0, 0, time.Time{}, time.Time{})
	var sum summaryEntity
	if _, err := s.c.GetEntity(ctx, m, summaryKey, nil); err == nil {
		t.Fatalf("summary row left after the last point: %+v", sum)
	}
}

// A machine has at most MaxPoints points, counting soft-deleted ones, with
// an error that says what to do; concurrent adds, through two instances of
// the control plane, cannot pass the limit.
func TestAddStopsAtTheLimitEvenUnderConcurrency(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s, m := newStore(t, &now)
	other := New(emu.Tables(t), func() time.Time { return now })
	s.MaxPoints, other.MaxPoints = 5, 5
	ctx := t.Context()
	instances := []*Store{s, other}
	var wg sync.WaitGroup
	var mu sync.Mutex
	added, limited := 0, 0
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := instances[i%2].Add(ctx, "v", m, id(), "", nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				added++
			case errors.Is(err, ErrLimit):
				limited++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if added != 5 || limited+added != 12 {
		t.Fatalf("%d added, %d refused at the limit; want 5 added", added, limited)
	}
	ps, _ := s.List(ctx, m, true)
	if len(ps) != 5 {
		t.Fatalf("%d points stored", len(ps))
	}
	if _, err := s.SoftDelete(ctx, m, ps[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Add(ctx, "v", m, id(), "", nil)
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("a soft-deleted point still counts: %v", err)
	}
	if err := s.Remove(ctx, m, ps[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "v", m, id(), "", nil); err != nil {
		t.Fatalf("after a purge: %v", err)
	}
	if MaxPoints != 9999 {
		t.Fatal("the limit is MARS's 9,999")
	}
}

// Points recorded before summaries existed are counted on first use.
func TestSummaryOfPointsWithoutOne(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s, m := newStore(t, &now)
	ctx := context.Background()
	for i := range 3 {
		e := entity{PartitionKey: m, RowKey: id(), Time: "2026-11-2" + string(rune('0'+i)) + "T00:00:00.000000000Z", State: wire.PointActive}
		if err := addRaw(ctx, s, &e); err != nil {
			t.Fatal(err)
		}
	}
	wantSummary(t, s, m, 3, 3, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if _, err := s.Add(ctx, "v", m, id(), "", nil); err != nil {
		t.Fatal(err)
	}
	wantSummary(t, s, m, 4, 4, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), now)
}

// addRaw writes a point row as older builds did, without a summary.
func addRaw(ctx context.Context, s *Store, e *entity) error { return tables.Add(ctx, s.c, e) }
