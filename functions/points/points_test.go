package points

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func id() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestPointsKeepServerTimeAndSoftDelete(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s := New(emu.Tables(t), func() time.Time { return now })
	ctx := context.Background()
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	machine := "m" + id()[:19]
	p1 := id()
	first, err := s.Add(ctx, "v", machine, p1, "job-1", nil)
	if err != nil || !first.Time.Equal(now) || first.State != wire.PointActive {
		t.Fatalf("add: %+v %v", first, err)
	}
	// An agent retrying after a lost answer gets the first record.
	now = now.Add(time.Minute)
	again, err := s.Add(ctx, "v", machine, p1, "job-1", nil)
	if err != nil || !again.Time.Equal(first.Time) {
		t.Fatalf("repeated add: %+v %v", again, err)
	}
	for _, bad := range []*time.Time{ptr(now.Add(-time.Hour)), ptr(now.AddDate(100, 0, 0))} {
		if _, err := s.Add(ctx, "v", machine, id(), "", bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("retainUntil %s: %v", bad, err)
		}
	}
	if _, err := s.Add(ctx, "v", machine, "not-hex", "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad ID: %v", err)
	}

	del, err := s.SoftDelete(ctx, machine, p1)
	if err != nil || del.State != wire.PointDeleted || !del.PurgeAfter.Equal(now.Add(SoftDeleteRetention)) {
		t.Fatalf("soft delete: %+v %v", del, err)
	}
	if ps, _ := s.List(ctx, machine, false); len(ps) != 0 {
		t.Fatalf("a deleted point is listed as active: %+v", ps)
	}
	if ps, _ := s.List(ctx, machine, true); len(ps) != 1 {
		t.Fatalf("a deleted point is not listed with deleted ones: %+v", ps)
	}
	back, err := s.Undelete(ctx, machine, p1)
	if err != nil || back.State != wire.PointActive || back.PurgeAfter != nil {
		t.Fatalf("undelete: %+v %v", back, err)
	}
	if _, err := s.Undelete(ctx, machine, p1); !errors.Is(err, ErrState) {
		t.Fatalf("undelete of an active point: %v", err)
	}
	if err := s.Remove(ctx, machine, p1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, machine, p1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
