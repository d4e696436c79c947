package maintenance

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/shared/wire"
)

// fakeUsage is the usage history in memory: samples by machine ID, then
// day.
type fakeUsage struct {
	mu      sync.Mutex
	samples map[string]map[string]wire.UsageSample
	vaults  map[string]string // machine ID: the vault recorded with it
	reads   int
}

func (f *fakeUsage) Sampled(_ context.Context, machineID string, day time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	_, ok := f.samples[machineID][day.UTC().Format(time.DateOnly)]
	return ok, nil
}

func (f *fakeUsage) Record(_ context.Context, vaultID, machineID string, u wire.UsageSample) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.samples[machineID] == nil {
		f.samples[machineID] = map[string]wire.UsageSample{}
	}
	f.samples[machineID][u.Day] = u
	f.vaults[machineID] = vaultID
	return nil
}

func (f *fakeUsage) days(machineID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for d := range f.samples[machineID] {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// fakeSizes measures containers from a table; a container named in fail
// cannot be listed.
type fakeSizes struct {
	mu       sync.Mutex
	bytes    map[string]int64
	fail     map[string]bool
	measured int
}

func (f *fakeSizes) Usage(_ context.Context, name string) (containers.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[name] {
		return containers.Usage{}, errors.New("storage unreachable")
	}
	f.measured++
	return containers.Usage{Bytes: f.bytes[name], Objects: 3, Packs: 1}, nil
}

// Each machine, in any state its data is still stored in, gets one storage
// sample per UTC day, taken by the first MonitorBackups run of the day:
// later runs that day read whether it was taken and measure nothing, and
// the next day's first run takes the next. One machine's unreadable
// container is an error naming it and does not stop the others.
func TestMonitorSamplesStorageOncePerDay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		runs     []time.Duration // after start, in order
		state    string
		fail     bool
		wantDays []string
		wantErr  bool
	}{
		{"one run", []time.Duration{0}, wire.MachineProtected, false, []string{"2026-12-04"}, false},
		{"four runs the same day measure once", []time.Duration{0, 15 * time.Minute, 30 * time.Minute, 11 * time.Hour}, wire.MachineProtected, false, []string{"2026-12-04"}, false},
		{"runs on three days", []time.Duration{0, 12*time.Hour + time.Minute, 36 * time.Hour}, wire.MachineProtected, false, []string{"2026-12-04", "2026-12-05", "2026-12-06"}, false},
		{"a stopped machine is still stored", []time.Duration{0}, wire.MachineStopped, false, []string{"2026-12-04"}, false},
		{"soft-deleted data is still stored", []time.Duration{0}, wire.MachineDeleted, false, []string{"2026-12-04"}, false},
		{"an unreadable container", []time.Duration{0}, wire.MachineProtected, true, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			hist := &fakeUsage{samples: map[string]map[string]wire.UsageSample{}, vaults: map[string]string{}}
			sizes := &fakeSizes{bytes: map[string]int64{}, fail: map[string]bool{}}
			e.timers.Usage, e.timers.Sizes = hist, sizes
			v := e.vault(true, 7)
			m := e.machine(v, "pc-1", tc.state, start.Add(30*day))
			other := e.machine(v, "pc-2", wire.MachineProtected, time.Time{})
			sizes.bytes[m.Container], sizes.bytes[other.Container] = 5<<20, 7<<20
			sizes.fail[m.Container] = tc.fail

			samples := 0
			var errs []error
			for _, d := range tc.runs {
				e.clock.Set(start.Add(d))
				rep, err := e.timers.MonitorBackups(e.ctx())
				samples += rep.UsageSamples
				if err != nil {
					errs = append(errs, err)
				}
			}
			if got := hist.days(m.ID); !slices.Equal(got, tc.wantDays) {
				t.Fatalf("sampled days %v, want %v", got, tc.wantDays)
			}
			if (len(errs) > 0) != tc.wantErr {
				t.Fatalf("errors %v, want some: %v", errs, tc.wantErr)
			}
			// The other machine is sampled whatever happens to the first.
			wantOther := len(tc.wantDays)
			if tc.fail {
				wantOther = len(tc.runs)
			}
			if n := len(hist.days(other.ID)); n != wantOther {
				t.Fatalf("other machine sampled on %v", hist.days(other.ID))
			}
			if samples != sizes.measured || hist.reads != 2*len(tc.runs) {
				t.Fatalf("report says %d samples, %d measured, %d reads for %d runs", samples, sizes.measured, hist.reads, len(tc.runs))
			}
			if len(tc.wantDays) > 0 {
				s := hist.samples[m.ID][tc.wantDays[0]]
				if s.Bytes != 5<<20 || s.Objects != 3 || s.Packs != 1 || !s.At.Equal(start.Add(tc.runs[0])) || hist.vaults[m.ID] != v.ID {
					t.Fatalf("sample %+v in vault %s", s, hist.vaults[m.ID])
				}
			}
		})
	}
}

// Without a history store the monitor measures nothing.
func TestMonitorWithoutUsageHistory(t *testing.T) {
	e := newEnv(t)
	sizes := &fakeSizes{bytes: map[string]int64{}, fail: map[string]bool{}}
	e.timers.Sizes = sizes
	e.machine(e.vault(true, 7), "pc-1", wire.MachineProtected, time.Time{})
	rep, err := e.timers.MonitorBackups(e.ctx())
	if err != nil || rep.UsageSamples != 0 || sizes.measured != 0 {
		t.Fatalf("report %+v, %d measured, err %v", rep, sizes.measured, err)
	}
}
