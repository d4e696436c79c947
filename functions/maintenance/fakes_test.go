package maintenance

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// In-memory stores for the timers' tests. Each keeps the behaviour of its
// Table storage store that the timers rely on (ordering, filters, which
// jobs count as stale), so the tests exercise the timers' rules and
// nothing else.

type fakeRegistry struct {
	mu       sync.Mutex
	vaults   map[string]wire.Vault
	policies map[string]registry.Policy // vault ID + "/" + name
	machines map[string]registry.Machine
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{registry.ErrNotFound}, args...)...)
}

func (f *fakeRegistry) Vault(_ context.Context, id string) (wire.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vaults[id]
	if !ok {
		return wire.Vault{}, notFound("no vault %s", id)
	}
	return v, nil
}

func (f *fakeRegistry) Policy(_ context.Context, vaultID, name string) (registry.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[vaultID+"/"+name]
	if !ok {
		return registry.Policy{}, notFound("no policy %s", name)
	}
	return p, nil
}

// Machines lists by name, as the registry does.
func (f *fakeRegistry) Machines(_ context.Context, vaultID string) ([]registry.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Machine
	for _, m := range f.machines {
		if vaultID == "" || m.VaultID == vaultID {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b registry.Machine) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeRegistry) ModifyMachine(_ context.Context, id string, change func(*registry.Machine) error) (registry.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[id]
	if !ok {
		return registry.Machine{}, notFound("no machine %s", id)
	}
	if err := change(&m); err != nil {
		return registry.Machine{}, err
	}
	f.machines[id] = m
	return m, nil
}

func (f *fakeRegistry) RemoveMachine(_ context.Context, m registry.Machine) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.machines, m.ID)
	return nil
}

func (f *fakeRegistry) machine(id string) (registry.Machine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[id]
	return m, ok
}

type fakePoints struct {
	mu     sync.Mutex
	points map[string][]wire.Point // by machine
}

// List returns points oldest first, soft-deleted ones only when asked, as
// points.Store does.
func (f *fakePoints) List(_ context.Context, machineID string, withDeleted bool) ([]wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Point
	for _, p := range f.points[machineID] {
		if withDeleted || p.State != wire.PointDeleted {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b wire.Point) int { return a.Time.Compare(b.Time) })
	return out, nil
}

func (f *fakePoints) Get(_ context.Context, machineID, pointID string) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.points[machineID] {
		if p.ID == pointID {
			return p, nil
		}
	}
	return wire.Point{}, fmt.Errorf("%w: no point %s", points.ErrNotFound, pointID)
}

func (f *fakePoints) Remove(_ context.Context, machineID, pointID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.points[machineID]
	i := slices.IndexFunc(ps, func(p wire.Point) bool { return p.ID == pointID })
	if i < 0 {
		return fmt.Errorf("%w: no point %s", points.ErrNotFound, pointID)
	}
	f.points[machineID] = slices.Delete(ps, i, i+1)
	return nil
}

// ids are a machine's point IDs in any state, sorted.
func (f *fakePoints) ids(machineID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.points[machineID] {
		out = append(out, p.ID)
	}
	slices.Sort(out)
	return out
}

// fakeSweeper records the cutoffs it was asked to sweep before.
type fakeSweeper struct {
	mu      sync.Mutex
	cutoffs []time.Time
}

func (f *fakeSweeper) Sweep(_ context.Context, cutoff time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutoffs = append(f.cutoffs, cutoff)
	return 0, nil
}

type fakeJobs struct {
	mu   sync.Mutex
	now  func() time.Time
	jobs []wire.Job
}

// List filters as jobs.Store does (a job counts from when it started) and
// answers newest first.
func (f *fakeJobs) List(_ context.Context, vaultID string, fl jobs.Filter) ([]wire.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Job
	for _, j := range f.jobs {
		if j.VaultID == vaultID && (fl.MachineID == "" || j.MachineID == fl.MachineID) && (fl.Type == "" || j.Type == fl.Type) &&
			(fl.Status == "" || j.Status == fl.Status) && (fl.Since.IsZero() || !j.StartedAt.Before(fl.Since)) &&
			(fl.Until.IsZero() || j.StartedAt.Before(fl.Until)) {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b wire.Job) int { return b.StartedAt.Compare(a.StartedAt) })
	if fl.Limit > 0 && len(out) > fl.Limit {
		out = out[:fl.Limit]
	}
	return out, nil
}

func (f *fakeJobs) Running(ctx context.Context, vaultID, machineID string) ([]wire.Job, error) {
	return f.List(ctx, vaultID, jobs.Filter{MachineID: machineID, Status: wire.StatusInProgress})
}

// FailStale fails the jobs in progress whose last report is before cutoff,
// as jobs.Store does.
func (f *fakeJobs) FailStale(_ context.Context, cutoff time.Time, code, message string) ([]wire.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var failed []wire.Job
	for i, j := range f.jobs {
		if j.Status == wire.StatusInProgress && j.UpdatedAt.Before(cutoff) {
			now := f.now()
			j.Status, j.ErrorCode, j.Message, j.UpdatedAt, j.EndedAt = wire.StatusFailed, code, message, now, &now
			f.jobs[i] = j
			failed = append(failed, j)
		}
	}
	return failed, nil
}

func (f *fakeJobs) add(j wire.Job) wire.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	j.ID = registry.NewID()
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.StartedAt
	}
	f.jobs = append(f.jobs, j)
	return j
}

// report is a progress report: the agent is alive.
func (f *fakeJobs) report(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.jobs {
		if f.jobs[i].ID == id {
			f.jobs[i].UpdatedAt = f.now()
		}
	}
}

func (f *fakeJobs) get(id string) wire.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.ID == id {
			return j
		}
	}
	return wire.Job{}
}

type fakeAlerts struct {
	mu     sync.Mutex
	now    func() time.Time
	raised []wire.Alert
}

// Raise stamps the alert with the server clock, as alerts.Store does: the
// stopped-machine reminder relies on it.
func (f *fakeAlerts) Raise(_ context.Context, a wire.Alert) (wire.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.ID, a.RaisedAt = registry.NewID(), f.now()
	f.raised = append(f.raised, a)
	return a, nil
}

func (f *fakeAlerts) Republish(context.Context) (int, error) { return 0, nil }

// List answers newest first.
func (f *fakeAlerts) List(_ context.Context, vaultID string, fl alerts.Filter) ([]wire.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Alert
	for _, a := range f.raised {
		if a.VaultID == vaultID && (fl.Kind == "" || a.Kind == fl.Kind) && (fl.MachineID == "" || a.MachineID == fl.MachineID) &&
			(fl.Severity == "" || a.Severity == fl.Severity) && (fl.Since.IsZero() || !a.RaisedAt.Before(fl.Since)) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b wire.Alert) int { return b.RaisedAt.Compare(a.RaisedAt) })
	if fl.Limit > 0 && len(out) > fl.Limit {
		out = out[:fl.Limit]
	}
	return out, nil
}

// ofKind are the alerts of one kind raised so far, oldest first.
func (f *fakeAlerts) ofKind(kind string) []wire.Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Alert
	for _, a := range f.raised {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// fakeBlobs records what the timers delete. Collect reports the junk lists
// set in quarantine once, as the collector does (later runs skip them).
type fakeBlobs struct {
	mu                sync.Mutex
	deletedContainers []string
	deletedPoints     []string // container + "/" + point ID
	collected         []string // containers
	quarantine        map[string][]containers.Quarantined
	opts              []containers.GCOptions // of each collection
}

func (f *fakeBlobs) Delete(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletedContainers = append(f.deletedContainers, name)
	return nil
}

func (f *fakeBlobs) DeletePoint(_ context.Context, name, pointID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletedPoints = append(f.deletedPoints, name+"/"+pointID)
	return nil
}

func (f *fakeBlobs) Collect(_ context.Context, name string, o containers.GCOptions) (containers.GCResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.collected = append(f.collected, name)
	f.opts = append(f.opts, o)
	q := f.quarantine[name]
	delete(f.quarantine, name)
	return containers.GCResult{Quarantined: q}, nil
}

func (f *fakeBlobs) PurgeDeletedKeys(context.Context) (int, error) { return 0, nil }

func (f *fakeBlobs) containerDeleted(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.deletedContainers, name)
}

// pointsDeleted are the point IDs whose objects were deleted in a container.
func (f *fakeBlobs) pointsDeleted(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.deletedPoints {
		if id, ok := strings.CutPrefix(p, name+"/"); ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// env is the timers over fakes, at a clock the tests move.
type env struct {
	t      *testing.T
	clock  *clocktest.Fake
	reg    *fakeRegistry
	points *fakePoints
	jobs   *fakeJobs
	alerts *fakeAlerts
	blobs  *fakeBlobs
	pins   *fakeSweeper
	nonces *fakeSweeper
	timers *Timers
}

// start is a Friday noon, UTC.
var start = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := clocktest.New(start)
	e := &env{t: t, clock: clock,
		reg:    &fakeRegistry{vaults: map[string]wire.Vault{}, policies: map[string]registry.Policy{}, machines: map[string]registry.Machine{}},
		points: &fakePoints{points: map[string][]wire.Point{}},
		jobs:   &fakeJobs{now: clock.Now},
		alerts: &fakeAlerts{now: clock.Now},
		blobs:  &fakeBlobs{quarantine: map[string][]containers.Quarantined{}},
		pins:   &fakeSweeper{},
		nonces: &fakeSweeper{},
	}
	e.timers = &Timers{Registry: e.reg, Points: e.points, PINs: e.pins, Nonces: e.nonces, Jobs: e.jobs, Alerts: e.alerts,
		Blobs: e.blobs, Now: clock.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StaleAfter: 2 * time.Hour, MissedGrace: DefaultMissedGrace, GCGrace: DefaultGCGrace, OrphanAfter: DefaultOrphanAfter}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// vault adds a vault with one policy, "daily": a backup at 02:00 UTC every
// day, keeping daily points for dailyDays.
func (e *env) vault(secure bool, dailyDays int) wire.Vault {
	v := wire.Vault{ID: registry.NewID(), Name: "branch-" + registry.NewID()[:6], SecurityFeatures: secure, CreatedAt: start.Add(-365 * day)}
	p := policy.Policy{Schedule: policy.Schedule{Frequency: policy.FrequencyDaily, Times: []string{"02:00"}, TimeZone: "UTC"},
		Retention: policy.Retention{DailyDays: dailyDays}, Include: []string{"/srv"}}
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	e.reg.vaults[v.ID] = v
	e.reg.policies[v.ID+"/daily"] = registry.Policy{Name: "daily", Policy: p}
	return v
}

// machine adds a machine on the vault's policy, registered a month ago, in
// state, stopped three days ago unless protected. purgeAfter, unless zero,
// is its purge date (on a record in any state: the timers must go by the
// state).
func (e *env) machine(v wire.Vault, name, state string, purgeAfter time.Time) registry.Machine {
	id := registry.NewID()
	m := registry.Machine{Machine: wire.Machine{ID: id, VaultID: v.ID, Name: name, Container: registry.ContainerName(id),
		Policy: "daily", State: state, RegisteredAt: start.Add(-30 * day)}}
	if state != wire.MachineProtected {
		stopped := start.Add(-3 * day)
		m.StoppedAt = &stopped
	}
	if state == wire.MachineDeleted {
		m.DeletedAt = m.StoppedAt
	}
	if !purgeAfter.IsZero() {
		m.PurgeAfter = &purgeAfter
	}
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	e.reg.machines[id] = m
	return m
}

// put stores m as it is.
func (e *env) put(m registry.Machine) {
	e.reg.mu.Lock()
	defer e.reg.mu.Unlock()
	e.reg.machines[m.ID] = m
}

// point adds an active point taken at t.
func (e *env) point(m registry.Machine, id string, t time.Time) {
	e.points.mu.Lock()
	defer e.points.mu.Unlock()
	e.points.points[m.ID] = append(e.points.points[m.ID], wire.Point{ID: id, MachineID: m.ID, Time: t, State: wire.PointActive})
}

// retain holds a point until until (its retainUntil).
func (e *env) retain(m registry.Machine, id string, until time.Time) {
	e.points.mu.Lock()
	defer e.points.mu.Unlock()
	for i, p := range e.points.points[m.ID] {
		if p.ID == id {
			e.points.points[m.ID][i].RetainUntil = &until
		}
	}
}

// deletedPoint adds a point taken at t and soft-deleted, purged after
// purgeAfter.
func (e *env) deletedPoint(m registry.Machine, id string, t, purgeAfter time.Time) {
	deleted := purgeAfter.Add(-14 * day)
	e.points.mu.Lock()
	defer e.points.mu.Unlock()
	e.points.points[m.ID] = append(e.points.points[m.ID], wire.Point{ID: id, MachineID: m.ID, Time: t, State: wire.PointDeleted,
		DeletedAt: &deleted, PurgeAfter: &purgeAfter})
}

// runningBackup adds a backup job in progress on m that reported just now.
func (e *env) runningBackup(m registry.Machine) wire.Job {
	return e.jobs.add(wire.Job{VaultID: m.VaultID, MachineID: m.ID, MachineName: m.Name, Type: wire.JobBackup,
		Status: wire.StatusInProgress, StartedAt: e.clock.Now().Add(-time.Minute), UpdatedAt: e.clock.Now()})
}

// at sets the clock.
func (e *env) at(t time.Time) { e.clock.Set(t) }

// sorted is ids sorted, nil when empty, for comparisons.
func sorted(ids ...string) []string {
	if len(ids) == 0 {
		return nil
	}
	return slices.SortedFunc(slices.Values(ids), cmp.Compare[string])
}
