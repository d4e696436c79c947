package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// alarmPoints keeps one machine's points, oldest first, as the store
// lists them.
type alarmPoints struct {
	PointStore
	mu sync.Mutex
	ps []wire.Point
}

func (f *alarmPoints) List(context.Context, string, bool) ([]wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.Point(nil), f.ps...), nil
}

func (f *alarmPoints) find(id string) (*wire.Point, error) {
	for i := range f.ps {
		if f.ps[i].ID == id {
			return &f.ps[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", points.ErrNotFound, id)
}

func (f *alarmPoints) Get(_ context.Context, _, id string) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.find(id)
	if err != nil {
		return wire.Point{}, err
	}
	return *p, nil
}

func (f *alarmPoints) Flag(_ context.Context, _, id, reason string) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.find(id)
	if err != nil {
		return wire.Point{}, err
	}
	p.Suspicious = reason
	return *p, nil
}

func (f *alarmPoints) SetRetainUntil(_ context.Context, _, id string, was, until *time.Time) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.find(id)
	if err != nil {
		return wire.Point{}, err
	}
	if !sameHold(p.RetainUntil, was) {
		return wire.Point{}, fmt.Errorf("%w: changed meanwhile", points.ErrState)
	}
	t := *until
	p.RetainUntil = &t
	return *p, nil
}

func sameHold(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

type alarmJobs struct {
	JobStore
	js []wire.Job // newest first
}

func (f *alarmJobs) List(_ context.Context, _ string, flt jobs.Filter) ([]wire.Job, error) {
	return f.js, nil
}

type alarmAlerts struct {
	AlertStore
	raised []wire.Alert
}

func (f *alarmAlerts) Raise(_ context.Context, a wire.Alert) (wire.Alert, error) {
	f.raised = append(f.raised, a)
	return a, nil
}

type alarmRegistry struct{ Registry }

func (alarmRegistry) Vault(_ context.Context, id string) (wire.Vault, error) {
	return wire.Vault{ID: id, Name: "branch-offices"}, nil
}

func TestRansomwareAlarmFlagsAndProtects(t *testing.T) {
	now := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	normal := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 10}
	encrypted := wire.ChangeCounters{ParentFiles: 1000, Files: 1000, Changed: 250, Incompressible: 240}
	for _, tc := range []struct {
		name   string
		change wire.ChangeCounters
		status string
		fires  bool
	}{
		{"a normal day", normal, wire.StatusCompleted, false},
		{"encrypted", encrypted, wire.StatusCompleted, true},
		{"encrypted, with warnings", encrypted, wire.StatusCompletedWithWarnings, true},
		{"a failed backup is not judged", encrypted, wire.StatusFailed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			longer := now.AddDate(1, 0, 0)
			ps := &alarmPoints{}
			var history []wire.Job
			// Ten points a day apart: the third newest before the suspect
			// is already kept a year, the fifth is itself flagged.
			for i := range 10 {
				p := wire.Point{ID: fmt.Sprintf("p%02d", i), Time: now.Add(time.Duration(i-10) * 24 * time.Hour), JobID: fmt.Sprintf("j%02d", i), State: wire.PointActive}
				switch i {
				case 7:
					p.RetainUntil = &longer
				case 5:
					p.Suspicious = "possible ransomware: an earlier alarm"
				}
				ps.ps = append(ps.ps, p)
				history = append([]wire.Job{{ID: p.JobID, Type: wire.JobBackup, Status: wire.StatusCompleted, PointID: p.ID, Change: &normal}}, history...)
			}
			ps.ps = append(ps.ps, wire.Point{ID: "suspect", Time: now, JobID: "jnow", State: wire.PointActive})
			j := wire.Job{ID: "jnow", Type: wire.JobBackup, Status: tc.status, PointID: "suspect", Change: &tc.change}
			al := &alarmAlerts{}
			s := &server{Deps{Registry: alarmRegistry{}, Points: ps, Jobs: &alarmJobs{js: append([]wire.Job{j}, history...)},
				Alerts: al, Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)}}
			m := registry.Machine{Machine: wire.Machine{ID: "m1", VaultID: "v1", Name: "branch-01"}}

			s.checkRansomware(t.Context(), m, j)

			suspect, _ := ps.Get(t.Context(), "m1", "suspect")
			if !tc.fires {
				if len(al.raised) != 0 || suspect.Suspicious != "" {
					t.Fatalf("fired: alerts %+v, point %+v", al.raised, suspect)
				}
				for _, p := range ps.ps {
					if p.RetainUntil != nil && p.ID != "p07" {
						t.Fatalf("point %s held without an alarm", p.ID)
					}
				}
				return
			}
			if len(al.raised) != 1 || al.raised[0].Kind != wire.AlertRansomware || al.raised[0].Severity != wire.SeverityCritical ||
				al.raised[0].Title != "Possible ransomware on branch-01" || al.raised[0].JobID != "jnow" {
				t.Fatalf("alerts %+v", al.raised)
			}
			if !strings.Contains(suspect.Suspicious, "stopped compressing") {
				t.Fatalf("suspect point %+v", suspect)
			}
			// The 7 newest good points before it: p09..p06, p04..p02 (p05 is
			// flagged). p07 keeps its longer hold; p01 and p00 are left.
			want := now.Add(ProtectFor)
			for _, p := range ps.ps {
				switch p.ID {
				case "p07":
					if !p.RetainUntil.Equal(longer) {
						t.Errorf("p07's longer hold became %v", p.RetainUntil)
					}
				case "p09", "p08", "p06", "p04", "p03", "p02":
					if p.RetainUntil == nil || !p.RetainUntil.Equal(want) {
						t.Errorf("point %s held until %v, want %v", p.ID, p.RetainUntil, want)
					}
				default:
					if p.RetainUntil != nil {
						t.Errorf("point %s held until %v; only the 7 newest good points before the suspect are", p.ID, p.RetainUntil)
					}
				}
			}
		})
	}
}
