package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/pin"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// In-memory stores for handler tests. Each embeds its interface, so a
// method these tests never reach needs no fake (and panics if reached).

type fakeRegistry struct {
	Registry
	mu         sync.Mutex
	now        func() time.Time
	softDelete time.Duration
	vaults     map[string]wire.Vault
	machines   map[string]registry.Machine
	policies   map[string]registry.Policy // vault ID + "/" + name
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{registry.ErrNotFound}, args...)...)
}

func (f *fakeRegistry) CreateVault(_ context.Context, nv wire.NewVault) (wire.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := wire.Vault{ID: registry.NewID(), Name: nv.Name, AlertRecipients: nv.AlertRecipients, CreatedAt: f.now(),
		SecurityFeatures: nv.SecurityFeatures == nil || *nv.SecurityFeatures, MultiUserAuth: nv.MultiUserAuth == nil || *nv.MultiUserAuth}
	f.vaults[v.ID] = v
	return v, nil
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

func (f *fakeRegistry) NewCredentials(_ context.Context, vaultID string) (string, string, time.Time, error) {
	return registry.NewID(), "secret-" + registry.NewID(), f.now().Add(registry.CredentialsTTL), nil
}

func (f *fakeRegistry) Vaults(context.Context) ([]wire.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Vault
	for _, v := range f.vaults {
		out = append(out, v)
	}
	return out, nil
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

func (f *fakeRegistry) PutPolicy(_ context.Context, vaultID, name string, p policy.Policy) (registry.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rp := registry.Policy{Name: name, Policy: p, Doc: wire.PolicyDoc{Name: name, ETag: `"` + registry.NewID() + `"`}}
	f.policies[vaultID+"/"+name] = rp
	return rp, nil
}

func (f *fakeRegistry) Machine(_ context.Context, id string) (registry.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[id]
	if !ok {
		return registry.Machine{}, notFound("no machine %s", id)
	}
	return m, nil
}

func (f *fakeRegistry) VaultMachine(ctx context.Context, vaultID, id string) (registry.Machine, error) {
	m, err := f.Machine(ctx, id)
	if err == nil && m.VaultID != vaultID {
		return registry.Machine{}, notFound("no machine %s in vault %s", id, vaultID)
	}
	return m, err
}

func (f *fakeRegistry) Machines(_ context.Context, vaultID string) ([]registry.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Machine
	for _, m := range f.machines {
		if vaultID == "" || m.VaultID == vaultID {
			out = append(out, m)
		}
	}
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
	if m.DeletedAt == nil {
		m.PurgeAfter = nil
	} else if m.PurgeAfter == nil {
		p := m.DeletedAt.Add(f.softDelete)
		m.PurgeAfter = &p
	}
	f.machines[id] = m
	return m, nil
}

// Transition applies the registry's own rules, as the real store does
// inside its retry loop.
func (f *fakeRegistry) Transition(ctx context.Context, id string, t registry.Transition) (registry.Machine, bool, error) {
	rule, err := registry.RuleFor(t)
	if err != nil {
		return registry.Machine{}, false, err
	}
	var changed bool
	m, err := f.ModifyMachine(ctx, id, func(m *registry.Machine) error {
		var err error
		changed, err = rule.Apply(m, f.now().UTC())
		return err
	})
	return m, changed, err
}

type fakePoints struct {
	PointStore
	mu     sync.Mutex
	now    func() time.Time
	points map[string][]wire.Point // by machine
}

func (f *fakePoints) Add(_ context.Context, vaultID, machineID, pointID, jobID string, _ *time.Time) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := wire.Point{ID: pointID, MachineID: machineID, Time: f.now(), JobID: jobID, State: wire.PointActive}
	f.points[machineID] = append(f.points[machineID], p)
	return p, nil
}

func (f *fakePoints) List(_ context.Context, machineID string, _ bool) ([]wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.Point(nil), f.points[machineID]...), nil
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

func (f *fakePoints) SoftDelete(ctx context.Context, machineID, pointID string) (wire.Point, error) {
	p, err := f.Get(ctx, machineID, pointID)
	if err != nil {
		return p, err
	}
	now := f.now()
	p.State, p.DeletedAt, p.PurgeAfter = wire.PointDeleted, &now, &now
	return p, nil
}

func (f *fakePoints) Undelete(_ context.Context, machineID, pointID string) (wire.Point, error) {
	return wire.Point{}, fmt.Errorf("%w: no point %s", points.ErrNotFound, pointID)
}

// fakePINs accepts each PIN it generated once.
type fakePINs struct {
	PINStore
	mu    sync.Mutex
	now   func() time.Time
	valid map[string]bool
	next  int
	used  []string // operations, in order
}

func (f *fakePINs) Generate(_ context.Context, vaultID, _ string) (wire.PIN, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := fmt.Sprintf("%08d", 10000000+f.next)
	f.valid[vaultID+"/"+p] = true
	return wire.PIN{PIN: p, ExpiresAt: f.now().Add(pin.TTL)}, nil
}

func (f *fakePINs) Use(_ context.Context, vaultID, p, operation, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.valid[vaultID+"/"+p] {
		return fmt.Errorf("%w: wrong, expired or used PIN", pin.ErrInvalid)
	}
	delete(f.valid, vaultID+"/"+p)
	f.used = append(f.used, operation)
	return nil
}

type fakeNonces struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (f *fakeNonces) Remember(_ context.Context, machineID, nonce string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[machineID+"/"+nonce] {
		return fmt.Errorf("replayed nonce")
	}
	f.seen[machineID+"/"+nonce] = true
	return nil
}

type fakeJobs struct {
	JobStore
	mu   sync.Mutex
	now  func() time.Time
	jobs []wire.Job
}

func (f *fakeJobs) Create(_ context.Context, vaultID, machineID, machineName, jobType string) (wire.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := wire.Job{ID: registry.NewID(), VaultID: vaultID, MachineID: machineID, MachineName: machineName, Type: jobType,
		Status: wire.StatusInProgress, StartedAt: f.now()}
	f.jobs = append(f.jobs, j)
	return j, nil
}

func (f *fakeJobs) Report(_ context.Context, vaultID, machineID, jobID string, r wire.JobReport) (wire.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, j := range f.jobs {
		if j.ID == jobID && j.MachineID == machineID {
			if r.Status != "" {
				f.jobs[i].Status = r.Status
			}
			return f.jobs[i], nil
		}
	}
	return wire.Job{}, fmt.Errorf("%w: no job %s", jobs.ErrNotFound, jobID)
}

func (f *fakeJobs) List(_ context.Context, vaultID string, fl jobs.Filter) ([]wire.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Job
	for _, j := range f.jobs {
		if j.VaultID == vaultID && (fl.MachineID == "" || j.MachineID == fl.MachineID) && (fl.Type == "" || j.Type == fl.Type) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeJobs) types(machineID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, j := range f.jobs {
		if j.MachineID == machineID {
			out = append(out, j.Type+":"+j.Status)
		}
	}
	return out
}

func (f *fakeRegistry) UpdateVault(_ context.Context, id string, u wire.VaultUpdate) (wire.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vaults[id]
	if !ok {
		return wire.Vault{}, notFound("no vault %s", id)
	}
	if u.SecurityFeatures != nil {
		v.SecurityFeatures = *u.SecurityFeatures
	}
	if u.MultiUserAuth != nil {
		v.MultiUserAuth = *u.MultiUserAuth
	}
	f.vaults[id] = v
	return v, nil
}

// fakeApprovals keeps approval requests in memory with approvals.Store's
// rules: the requester never decides, a request lapses at its time limit,
// a decision is made once.
type fakeApprovals struct {
	mu  sync.Mutex
	now func() time.Time
	all map[string]*approvals.Stored
}

func (f *fakeApprovals) Create(_ context.Context, r approvals.Request) (approvals.Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	a := &approvals.Stored{Approval: wire.Approval{ID: registry.NewID(), VaultID: r.VaultID, Operation: r.Operation, Method: r.Method,
		Path: r.Path, Body: r.Body, Reason: r.Reason, RequestedBy: r.RequestedBy, RequestedAt: now, ExpiresAt: now.Add(approvals.DefaultTTL),
		Status: wire.ApprovalPending}, Rank: r.Rank, Machine: r.Machine}
	f.all[a.ID] = a
	return *a, nil
}

func (f *fakeApprovals) read(vaultID, id string) (*approvals.Stored, error) {
	a, ok := f.all[id]
	if !ok || a.VaultID != vaultID {
		return nil, approvals.ErrNotFound
	}
	if a.Status == wire.ApprovalPending && !f.now().Before(a.ExpiresAt) {
		a.Status = wire.ApprovalExpired
	}
	return a, nil
}

func (f *fakeApprovals) Get(_ context.Context, vaultID, id string) (approvals.Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.read(vaultID, id)
	if err != nil {
		return approvals.Stored{}, err
	}
	return *a, nil
}

func (f *fakeApprovals) List(_ context.Context, vaultID, status string, _ int) ([]wire.Approval, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []wire.Approval{}
	for id := range f.all {
		if a, err := f.read(vaultID, id); err == nil && (status == "" || a.Status == status) {
			out = append(out, a.Approval)
		}
	}
	return out, nil
}

func (f *fakeApprovals) Decide(_ context.Context, vaultID, id, by string, approve bool, note string) (approvals.Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.read(vaultID, id)
	switch {
	case err != nil:
		return approvals.Stored{}, err
	case a.Status == wire.ApprovalExpired:
		return approvals.Stored{}, approvals.ErrExpired
	case a.Status != wire.ApprovalPending:
		return approvals.Stored{}, approvals.ErrDecided
	case strings.EqualFold(a.RequestedBy, by):
		return approvals.Stored{}, approvals.ErrSelf
	}
	a.Status, a.DecidedBy, a.Note = wire.ApprovalRejected, by, note
	if approve {
		a.Status = wire.ApprovalApproved
	}
	return *a, nil
}

func (f *fakeApprovals) Finish(_ context.Context, vaultID, id string, res wire.ApprovalResult) (approvals.Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, err := f.read(vaultID, id)
	if err != nil {
		return approvals.Stored{}, err
	}
	a.Status, a.Result = wire.ApprovalExecuted, &res
	if res.Status >= 300 {
		a.Status = wire.ApprovalFailed
	}
	return *a, nil
}

type fakeAlerts struct {
	AlertStore
	mu     sync.Mutex
	raised []wire.Alert
}

func (f *fakeAlerts) Raise(_ context.Context, a wire.Alert) (wire.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a.ID = registry.NewID()
	f.raised = append(f.raised, a)
	return a, nil
}

func (f *fakeAlerts) List(_ context.Context, vaultID string, fl alerts.Filter) ([]wire.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Alert
	for _, a := range f.raised {
		if a.VaultID == vaultID && (fl.Kind == "" || a.Kind == fl.Kind) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (f *fakeAlerts) kinds() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.raised {
		out = append(out, a.Severity+":"+a.Kind)
	}
	return out
}

// fakeSAS answers with the permissions in place of a signature.
type fakeSAS struct{ now func() time.Time }

func (f fakeSAS) Container(_ context.Context, c string, ttl time.Duration) (sas.Grant, error) {
	return sas.Grant{ContainerURL: "https://account.blob.example/" + c, SAS: "sp=" + sas.Permissions, ExpiresOn: f.now().Add(ttl)}, nil
}

func (f fakeSAS) ReadOnly(_ context.Context, c string, ttl time.Duration) (sas.Grant, error) {
	return sas.Grant{ContainerURL: "https://account.blob.example/" + c, SAS: "sp=" + sas.ReadPermissions, ExpiresOn: f.now().Add(ttl)}, nil
}

type fakeBlobs struct{ Blobs }

func (fakeBlobs) Ensure(context.Context, string) error { return nil }
func (fakeBlobs) Usage(context.Context, string) (containers.Usage, error) {
	return containers.Usage{}, nil
}

// Admin tokens of the test API, one per role.
var testTokens = Tokens{
	RoleReader:      "reader-token-0123456789",
	RoleOperator:    "operator-token-0123456789",
	RoleContributor: "contributor-token-0123456789",
	// A separate capability: the Security Admin's own session.
	RoleSecurityAdmin: "security-admin-token-0123456789",
}

// harness is the API over fakes, served on a loopback listener.
type harness struct {
	t      *testing.T
	clock  *clocktest.Fake
	reg    *fakeRegistry
	points *fakePoints
	pins   *fakePINs
	jobs   *fakeJobs
	alerts *fakeAlerts
	apprs  *fakeApprovals
	url    string
	admins map[Role]*cpclient.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC))
	h := &harness{t: t, clock: clock,
		reg: &fakeRegistry{now: clock.Now, softDelete: 30 * 24 * time.Hour, vaults: map[string]wire.Vault{},
			machines: map[string]registry.Machine{}, policies: map[string]registry.Policy{}},
		points: &fakePoints{now: clock.Now, points: map[string][]wire.Point{}},
		pins:   &fakePINs{now: clock.Now, valid: map[string]bool{}},
		jobs:   &fakeJobs{now: clock.Now},
		alerts: &fakeAlerts{},
		apprs:  &fakeApprovals{now: clock.Now, all: map[string]*approvals.Stored{}},
	}
	e := New(Deps{Registry: h.reg, Points: h.points, PINs: h.pins, Nonces: &fakeNonces{seen: map[string]bool{}},
		Jobs: h.jobs, Alerts: h.alerts, SAS: fakeSAS{clock.Now}, Blobs: fakeBlobs{}, Auth: testTokens, Now: clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), SoftDelete: 30 * 24 * time.Hour, Approvals: h.apprs})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.admins = map[Role]*cpclient.Client{}
	for role, tok := range testTokens {
		h.admins[role] = &cpclient.Client{BaseURL: srv.URL, Token: tok}
	}
	return h
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// vault makes a vault with a machine in state; agent is the machine's
// signed client.
func (h *harness) vault(state string) (wire.Vault, registry.Machine, *cpclient.Client) {
	h.t.Helper()
	off := false // the PIN tests; approvals_test.go turns multi-user authorization on
	v, _ := h.reg.CreateVault(h.ctx(), wire.NewVault{Name: "branch-" + registry.NewID()[:6], MultiUserAuth: &off})
	pub, priv, err := reqsign.NewKey()
	if err != nil {
		h.t.Fatal(err)
	}
	id := registry.NewID()
	m := registry.Machine{Machine: wire.Machine{ID: id, VaultID: v.ID, Name: "pc-" + id[:4], Container: registry.ContainerName(id),
		State: wire.MachineProtected, RegisteredAt: h.clock.Now()}, PublicKey: reqsign.EncodePublicKey(pub)}
	h.reg.machines[id] = m
	if state != wire.MachineProtected {
		if _, _, err := h.reg.Transition(h.ctx(), id, registry.Stop); err != nil {
			h.t.Fatal(err)
		}
	}
	if state == wire.MachineDeleted {
		if _, _, err := h.reg.Transition(h.ctx(), id, registry.StopDelete); err != nil {
			h.t.Fatal(err)
		}
	}
	m, _ = h.reg.Machine(h.ctx(), id)
	return v, m, &cpclient.Client{BaseURL: h.url, MachineID: id, Key: priv, Now: h.clock.Now}
}

func (h *harness) pin(v wire.Vault) string {
	h.t.Helper()
	p, err := h.pins.Generate(h.ctx(), v.ID, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return p.PIN
}

// status is an answer's status and code; 2xx answers have no code.
func status(err error) string {
	if err == nil {
		return "ok"
	}
	if se, ok := err.(*cpclient.StatusError); ok {
		return fmt.Sprintf("%d %s", se.Status, se.Body.Code)
	}
	return err.Error()
}

func fill(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "0123456789abcdef0123"
		}
	}
	return strings.Join(segs, "/")
}
