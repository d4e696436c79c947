package usage

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/shared/wire"
)

var emu ondemand.Emulators

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

// A day's sample is found by its day, replaced by a later one that day,
// listed oldest first from a day on with its numbers intact (bytes beyond
// 32 bits included), and forgotten once older than wire.MaxUsageDays.
func TestSamplesByDay(t *testing.T) {
	s := New(emu.Tables(t))
	ctx := context.Background()
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 0, 5, 0, 0, time.UTC)
	sample := func(t time.Time, b int64) wire.UsageSample {
		return wire.UsageSample{Day: Day(t), At: t, Bytes: b, Objects: 4, Packs: 2}
	}
	old := at.AddDate(0, 0, -wire.MaxUsageDays-1)
	for _, u := range []wire.UsageSample{sample(old, 1), sample(at.AddDate(0, 0, -2), 5<<30), sample(at.AddDate(0, 0, -1), 6<<30)} {
		if err := s.Record(ctx, "v-1", "m-1", u); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Sampled(ctx, "m-1", at); ok || err != nil {
		t.Fatalf("today sampled %v %v before a sample", ok, err)
	}
	if err := s.Record(ctx, "v-1", "m-1", sample(at, 7<<30)); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "v-1", "m-1", sample(at.Add(time.Hour), 8<<30)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Sampled(ctx, "m-1", at.Add(20*time.Hour)); !ok || err != nil {
		t.Fatalf("today sampled %v %v after a sample", ok, err)
	}
	all, err := s.Since(ctx, "m-1", old)
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	var bytes []int64
	for _, u := range all {
		days = append(days, u.Day)
		bytes = append(bytes, u.Bytes)
	}
	if want := []string{"2026-12-02", "2026-12-03", "2026-12-04"}; !slices.Equal(days, want) {
		t.Fatalf("days %v, want %v (the one older than %d days forgotten)", days, want, wire.MaxUsageDays)
	}
	if want := []int64{5 << 30, 6 << 30, 8 << 30}; !slices.Equal(bytes, want) {
		t.Fatalf("bytes %v, want %v", bytes, want)
	}
	last := all[2]
	if !last.At.Equal(at.Add(time.Hour)) || last.Objects != 4 || last.Packs != 2 {
		t.Fatalf("last sample %+v", last)
	}
	recent, err := s.Since(ctx, "m-1", at.AddDate(0, 0, -1))
	if err != nil || len(recent) != 2 {
		t.Fatalf("since yesterday: %+v %v", recent, err)
	}
	if _, err := s.Since(ctx, "m-1' or true or '", at); err == nil {
		t.Fatal("a machine ID that is not an ID was queried")
	}
}
