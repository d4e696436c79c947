package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/pin"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// vaultUpdates adds UpdateVault to the fake registry.
type vaultUpdates struct{ *fakeRegistry }

func (f vaultUpdates) UpdateVault(_ context.Context, id string, u wire.VaultUpdate) (wire.Vault, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vaults[id]
	if u.SecurityFeatures != nil {
		v.SecurityFeatures = *u.SecurityFeatures
	}
	f.vaults[id] = v
	return v, nil
}

func (f vaultUpdates) DeletePolicy(_ context.Context, vaultID, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.policies[vaultID+"/"+name]; !ok {
		return notFound("no policy %s", name)
	}
	delete(f.policies, vaultID+"/"+name)
	return nil
}

// A policy machines follow cannot be deleted, so deleting one never
// shortens any machine's retention; an unused one goes without a PIN.
func TestDeletingAPolicy(t *testing.T) {
	h := newHarness(t)
	admins := h.serve(vaultUpdates{h.reg}, h.pins)
	v, m, _ := h.vault(wire.MachineProtected)
	ctx := h.ctx()
	for _, name := range []string{"used", "unused"} {
		h.reg.PutPolicy(ctx, v.ID, name, retentionPolicy(policy.Retention{DailyDays: 30}, "UTC"))
	}
	h.reg.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error { mm.Policy = "used"; return nil })
	del := func(name string) string {
		_, err := admins[RoleContributor].Do(ctx, "DELETE", wire.Version+"/vaults/"+v.ID+"/policies/"+name, nil, nil)
		return status(err)
	}
	for _, tc := range []struct{ name, want string }{{"used", "409 conflict"}, {"unused", "ok"}, {"unused", "404 not_found"}, {"Bad!", "404 not_found"}} {
		if got := del(tc.name); got != tc.want {
			t.Fatalf("delete %s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if _, err := admins[RoleOperator].Do(ctx, "DELETE", wire.Version+"/vaults/"+v.ID+"/policies/used", nil, nil); status(err) != "403 forbidden" {
		t.Fatalf("an Operator deleting a policy: %v", err)
	}
	if _, err := h.reg.Policy(ctx, v.ID, "used"); err != nil {
		t.Fatalf("the used policy is gone: %v", err)
	}
}

// holdPoints adds SetRetainUntil to the fake points.
type holdPoints struct{ *fakePoints }

func (f holdPoints) SetRetainUntil(_ context.Context, machineID, pointID string, was, until *time.Time) (wire.Point, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.points[machineID] {
		if p.ID == pointID {
			f.points[machineID][i].RetainUntil = until
			return f.points[machineID][i], nil
		}
	}
	return wire.Point{}, notFound("no point %s", pointID)
}

// Clearing or bringing forward a point's retainUntil while it still
// protects the point needs a PIN; setting or extending it does not.
func TestShorteningARetainUntilNeedsAPIN(t *testing.T) {
	at := func(d time.Duration) *time.Time { t := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC).Add(d); return &t }
	for _, tc := range []struct {
		name          string
		before, after *time.Time
		want          string
	}{
		{"set", nil, at(48 * time.Hour), "ok"},
		{"extend", at(24 * time.Hour), at(48 * time.Hour), "ok"},
		{"clear", at(24 * time.Hour), nil, "403 pin_required"},
		{"bring forward", at(48 * time.Hour), at(24 * time.Hour), "403 pin_required"},
		{"clear one that passed", at(-time.Hour), nil, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			admins := h.serve(vaultUpdates{h.reg}, h.pins)
			v, m, _ := h.vault(wire.MachineProtected)
			ctx := h.ctx()
			h.points.Add(ctx, v.ID, m.ID, "p1", "", nil)
			h.points.points[m.ID][0].RetainUntil = tc.before
			path := wire.Version + "/vaults/" + v.ID + "/machines/" + m.ID + "/points/p1"
			_, err := admins[RoleContributor].Do(ctx, "PATCH", path, wire.PointUpdate{RetainUntil: tc.after}, nil)
			if got := status(err); got != tc.want {
				t.Fatalf("without a PIN: %s, want %s (%v)", got, tc.want, err)
			}
			if tc.want == "ok" {
				if len(h.alerts.raised) != 0 {
					t.Fatalf("alerts %v for a change that shortens nothing", h.alerts.kinds())
				}
				return
			}
			_, err = admins[RoleContributor].Do(ctx, "PATCH", path, wire.PointUpdate{RetainUntil: tc.after}, nil, http.Header{wire.PINHeader: {h.pin(v)}})
			if err != nil {
				t.Fatalf("with a PIN: %v", err)
			}
			if len(h.alerts.raised) != 1 || !strings.Contains(h.alerts.raised[0].Detail, "retain until") {
				t.Fatalf("alerts %+v, want one naming the retainUntil", h.alerts.raised)
			}
		})
	}
}

// lockingPINs answers every use as a locked vault would.
type lockingPINs struct {
	PINStore
	now     func() time.Time
	started bool
}

func (l *lockingPINs) Use(_ context.Context, vaultID, _, _, source string) error {
	started := l.started
	l.started = false
	return &pin.LockedError{VaultID: vaultID, Until: l.now().Add(pin.Lockout), Started: started, Failures: pin.MaxFailures,
		Sources: []string{"admin eve@contoso.example", source}}
}

// serve is the API over the harness's fakes with the given registry and
// PIN store in their place.
func (h *harness) serve(reg Registry, pins PINStore) map[Role]*cpclient.Client {
	e := New(Deps{Registry: reg, Points: holdPoints{h.points}, PINs: pins, Nonces: &fakeNonces{seen: map[string]bool{}},
		Jobs: h.jobs, Alerts: h.alerts, SAS: fakeSAS{h.clock.Now}, Blobs: fakeBlobs{}, Auth: testTokens, Now: h.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), SoftDelete: 30 * 24 * time.Hour})
	srv := httptest.NewServer(e)
	h.t.Cleanup(srv.Close)
	out := map[Role]*cpclient.Client{}
	for role, tok := range testTokens {
		out[role] = &cpclient.Client{BaseURL: srv.URL, Token: tok}
	}
	return out
}

func retentionPolicy(r policy.Retention, zone string) policy.Policy {
	p := policy.Default(zone)
	p.Include = []string{"/srv"}
	p.Retention = r
	return p
}

// Every change that can shorten a machine's retention needs a PIN and
// raises a critical alert, whichever route makes it; changes that shorten
// nothing need neither.
func TestShorteningRetentionNeedsAPINOnEveryRoute(t *testing.T) {
	long := policy.Retention{DailyDays: 180}
	short := policy.Retention{DailyDays: 7}
	gfs := policy.Retention{DailyDays: 30, WeeklyWeeks: 12}
	for _, tc := range []struct {
		name       string
		onPolicy   string // the machine's policy, "" for none
		points     bool   // the machine has points
		method     string
		path       string // under the vault
		body       any
		want       string // without a PIN
		wantReason string // in the message and the alert
	}{
		{"assign a shorter policy (the attack)", "long", true, "PUT", "/machines/M/policy", wire.AssignPolicy{Policy: "short"}, "403 pin_required", "daily: 180 days → 7 days"},
		{"assign a longer policy", "short", true, "PUT", "/machines/M/policy", wire.AssignPolicy{Policy: "long"}, "ok", ""},
		{"first policy, no points yet", "", false, "PUT", "/machines/M/policy", wire.AssignPolicy{Policy: "short"}, "ok", ""},
		{"first policy over kept points", "", true, "PUT", "/machines/M/policy", wire.AssignPolicy{Policy: "short"}, "403 pin_required", "all points"},
		{"assign a policy in another zone", "gfs", true, "PUT", "/machines/M/policy", wire.AssignPolicy{Policy: "gfs-tokyo"}, "403 pin_required", "long-term"},
		{"edit the machine's policy shorter", "long", true, "PUT", "/policies/long", retentionPolicy(short, "UTC"), "403 pin_required", "daily: 180 days → 7 days"},
		{"edit an unassigned policy shorter", "", false, "PUT", "/policies/long", retentionPolicy(short, "UTC"), "403 pin_required", "policy long"},
		{"edit a policy longer", "short", true, "PUT", "/policies/short", retentionPolicy(long, "UTC"), "ok", ""},
		{"create a short policy", "long", true, "PUT", "/policies/brand-new", retentionPolicy(short, "UTC"), "ok", ""},
		{"recreate a deleted policy a machine still names", "gone", true, "PUT", "/policies/gone", retentionPolicy(short, "UTC"), "403 pin_required", "all points"},
		{"turn security features off", "long", true, "PATCH", "", wire.VaultUpdate{SecurityFeatures: new(bool)}, "403 pin_required", "security minimum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			admins := h.serve(vaultUpdates{h.reg}, h.pins)
			v, m, _ := h.vault(wire.MachineProtected)
			ctx := h.ctx()
			for name, p := range map[string]policy.Policy{"long": retentionPolicy(long, "UTC"), "short": retentionPolicy(short, "UTC"),
				"gfs": retentionPolicy(gfs, "Europe/London"), "gfs-tokyo": retentionPolicy(gfs, "Asia/Tokyo")} {
				h.reg.PutPolicy(ctx, v.ID, name, p)
			}
			h.reg.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error { mm.Policy = tc.onPolicy; return nil })
			if tc.points {
				h.points.Add(ctx, v.ID, m.ID, "p1", "", nil)
			}
			path := wire.Version + "/vaults/" + v.ID + strings.ReplaceAll(tc.path, "/M/", "/"+m.ID+"/")
			_, err := admins[RoleContributor].Do(ctx, tc.method, path, tc.body, nil)
			if got := status(err); got != tc.want {
				t.Fatalf("without a PIN: %s, want %s (%v)", got, tc.want, err)
			}
			if tc.want == "ok" {
				if len(h.alerts.raised) != 0 || len(h.pins.used) != 0 {
					t.Fatalf("a change that shortens nothing raised %v and used PINs %v", h.alerts.kinds(), h.pins.used)
				}
				return
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("the refusal does not say what shortens (%q): %v", tc.wantReason, err)
			}
			if ap, ok := tc.body.(wire.AssignPolicy); ok {
				// The CLI sends an assignment's PIN in the body.
				ap.PIN = h.pin(v)
				_, err = admins[RoleContributor].Do(ctx, tc.method, path, ap, nil)
			} else {
				_, err = admins[RoleContributor].Do(ctx, tc.method, path, tc.body, nil, http.Header{wire.PINHeader: {h.pin(v)}})
			}
			if err != nil {
				t.Fatalf("with a PIN: %v", err)
			}
			if len(h.alerts.raised) != 1 {
				t.Fatalf("alerts %v, want one critical alert", h.alerts.kinds())
			}
			a := h.alerts.raised[0]
			if a.Severity != wire.SeverityCritical || a.Kind != wire.AlertCriticalOperation || !strings.Contains(a.Detail, tc.wantReason) ||
				!strings.Contains(a.Detail, "token:") {
				t.Fatalf("alert %+v does not name the reduction %q and who made it", a, tc.wantReason)
			}
		})
	}
}

// A locked vault answers 429 pin_locked with Retry-After on admin and
// agent routes alike; the try that locked it raises one critical alert
// naming the sources.
func TestLockedPINsAre429AndAlertOnce(t *testing.T) {
	h := newHarness(t)
	locking := &lockingPINs{now: h.clock.Now, started: true}
	admins := h.serve(h.reg, locking)
	v, m, _ := h.vault(wire.MachineProtected)
	h.points.Add(h.ctx(), v.ID, m.ID, "p1", "", nil)
	path := wire.Version + "/vaults/" + v.ID + "/machines/" + m.ID + "/points/p1"
	for i := range 2 {
		hdr, err := admins[RoleContributor].Do(h.ctx(), "DELETE", path, nil, nil, http.Header{wire.PINHeader: {"12345678"}})
		if got := status(err); got != "429 pin_locked" {
			t.Fatalf("try %d: %s (%v), want 429 pin_locked", i+1, got, err)
		}
		if ra := hdr.Get("Retry-After"); ra != "901" {
			t.Fatalf("Retry-After %q, want 901 seconds", ra)
		}
	}
	if len(h.alerts.raised) != 1 {
		t.Fatalf("alerts %v, want exactly one", h.alerts.kinds())
	}
	a := h.alerts.raised[0]
	if a.Severity != wire.SeverityCritical || !strings.Contains(a.Detail, "admin eve@contoso.example") || !strings.Contains(a.Detail, "token:") {
		t.Fatalf("lockout alert %+v does not name the sources", a)
	}
}
