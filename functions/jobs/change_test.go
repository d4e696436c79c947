package jobs

import (
	"errors"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

func TestChangeCountersAreKeptWithTheOutcome(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rec := &record{job: wire.Job{ID: "0000000000000001-00000001", VaultID: "v", MachineID: "m", Type: wire.JobBackup,
		Status: wire.StatusInProgress, StartedAt: now, UpdatedAt: now}}
	want := wire.ChangeCounters{ParentFiles: 40, Files: 40, Changed: 10, Incompressible: 9, Deleted: 1}
	r, err := checkReport(wire.JobReport{Status: wire.StatusCompleted, PointID: "p", Change: &want})
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(rec, r, now); err != nil {
		t.Fatal(err)
	}
	b, err := encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.job.Change == nil || *got.job.Change != want {
		t.Fatalf("stored change counters %+v, want %+v", got.job.Change, want)
	}
	if c := got.clone(); c.job.Change == got.job.Change {
		t.Fatal("clone shares the change counters")
	}

	_, err = checkReport(wire.JobReport{Status: wire.StatusCompleted, Change: &wire.ChangeCounters{Deleted: -1}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative counter: %v, want ErrInvalid", err)
	}
}
