package api

import (
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The preview decides each point under the stored and the sent policy,
// stores nothing, is open to a Reader, and refuses a policy that breaks a
// rule as PUT does.
func TestPreviewShowsWhatARetentionChangeKeeps(t *testing.T) {
	h := newHarness(t)
	admins := h.serve(vaultUpdates{h.reg}, h.pins)
	v, m, _ := h.vault(wire.MachineProtected)
	ctx := h.ctx()
	h.reg.PutPolicy(ctx, v.ID, "office", retentionPolicy(policy.Retention{DailyDays: 30}, "UTC"))
	h.reg.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error { mm.Policy = "office"; return nil })
	for i := range 40 {
		if i > 0 {
			h.clock.Advance(24 * time.Hour)
		}
		if _, err := h.points.Add(ctx, v.ID, m.ID, strings.Repeat(string(rune('a'+i%26)), 63)+string(rune('a'+i/26)), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	path := wire.Version + "/vaults/" + v.ID + "/policies/office/preview"
	var got wire.RetentionPreview
	if _, err := admins[RoleReader].Do(ctx, "POST", path, retentionPolicy(policy.Retention{DailyDays: 10}, "UTC"), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Machines) != 1 {
		t.Fatalf("preview: %+v", got)
	}
	mp := got.Machines[0]
	if mp.MachineID != m.ID || len(mp.Points) != 40 || mp.KeptBefore != 30 || mp.KeptAfter != 10 {
		t.Fatalf("machine %s: %d points, kept %d before and %d after; want 40, 30, 10", mp.MachineID, len(mp.Points), mp.KeptBefore, mp.KeptAfter)
	}
	newest := mp.Points[0]
	if !newest.After.Keep || !newest.Before.Keep || !strings.Contains(strings.Join(newest.After.Reasons, " "), "newest") {
		t.Errorf("newest point: %+v", newest)
	}
	if old := mp.Points[20]; !old.Before.Keep || old.After.Keep || len(old.After.Reasons) != 0 {
		t.Errorf("a 20-day-old point: %+v", old)
	}
	stored, _ := h.reg.Policy(ctx, v.ID, "office")
	if stored.Policy.Retention.DailyDays != 30 {
		t.Errorf("the preview changed the stored policy: %+v", stored.Policy.Retention)
	}
	bad := retentionPolicy(policy.Retention{DailyDays: 0}, "UTC")
	_, err := admins[RoleReader].Do(ctx, "POST", path, bad, nil)
	if status(err) != "422 validation_failed" {
		t.Errorf("a broken policy: %v", err)
	}
}
