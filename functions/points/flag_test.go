package points

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFlagAndFalsePositiveAreKept(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	s := New(emu.Tables(t), func() time.Time { return now })
	ctx := context.Background()
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	machine, p := "m"+id()[:19], id()
	if _, err := s.Add(ctx, "v", machine, p, "job-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Flag(ctx, machine, p, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("flag without a reason: %v", err)
	}
	if _, err := s.Flag(ctx, machine, p, "40 of 100 files stopped compressing"); err != nil {
		t.Fatal(err)
	}
	// Other changes keep the flag.
	until := now.AddDate(0, 0, 30)
	if _, err := s.SetRetainUntil(ctx, machine, p, nil, &until); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SoftDelete(ctx, machine, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Undelete(ctx, machine, p)
	if err != nil || got.Suspicious != "40 of 100 files stopped compressing" || got.FalsePositive != "" {
		t.Fatalf("after other changes: %+v %v", got, err)
	}
	if got, err = s.ClearFlag(ctx, machine, p, "token:backup-contributor"); err != nil || got.FalsePositive != "token:backup-contributor" || got.Suspicious == "" {
		t.Fatalf("cleared: %+v %v", got, err)
	}
	ps, err := s.List(ctx, machine, false)
	if err != nil || len(ps) != 1 || ps[0].FalsePositive == "" {
		t.Fatalf("list: %+v %v", ps, err)
	}
	if _, err := s.Flag(ctx, machine, id(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("flag a missing point: %v", err)
	}
}
