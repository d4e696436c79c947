package adversary

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Attack 1: cut retention without a PIN. A stolen Contributor session
// creates a new 7-day policy (new policies need no PIN), assigns it to a
// machine on a 180-day policy, and waits for the retention timer: on the old
// code 30 of 40 points were hard-deleted with no PIN and no alert. Any
// change that shortens a machine's retention needs a PIN and raises a
// critical alert, whichever route makes it.
func TestRetentionCannotBeCutWithoutAPIN(t *testing.T) {
	ctx := t.Context()
	v, m := fx.vault, fx.victim
	short := policy.Default("UTC")
	short.Retention = policy.Retention{DailyDays: 7}
	short.Include = []string{m.src}
	if _, err := fx.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+v.ID+"/policies/short", short, nil); err != nil {
		t.Fatalf("a new 7-day policy: %v", err)
	}
	before := points(t, fx.reader, v.ID, m.id, false)

	_, err := fx.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+v.ID+"/machines/"+m.id+"/policy", wire.AssignPolicy{Policy: "short"}, nil)
	if status(err) != http.StatusForbidden || cpclient.Code(err) != wire.CodePINRequired {
		t.Errorf("assigning the 7-day policy to a machine on 180 days without a PIN: %v; want 403 %s", err, wire.CodePINRequired)
	}
	var got wire.Machine
	if _, err := fx.reader.Do(ctx, "GET", wire.Version+"/vaults/"+v.ID+"/machines/"+m.id, nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Policy != "long-"+m.name {
		t.Errorf("%s now follows policy %q, want long-%s", m.name, got.Policy, m.name)
	}
	// Editing the machine's own policy down is the same cut by another route.
	own := short
	if _, err := fx.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+v.ID+"/policies/long-"+m.name, own, nil); cpclient.Code(err) != wire.CodePINRequired {
		t.Errorf("editing %s's policy down to 7 days without a PIN: %v; want %s", m.name, err, wire.CodePINRequired)
	}

	// A month later the retention timer has nothing to expire.
	tm := timeMachine(t)
	tm.advance(t, 30*24*time.Hour)
	if code, logs := tm.invoke(t, "EnforceRetention"); code != http.StatusOK {
		t.Fatalf("EnforceRetention answered %d: %s", code, logs)
	}
	if after := points(t, fx.reader, v.ID, m.id, false); len(after) != len(before) {
		t.Fatalf("%s had %d points before the attack and has %d after a month of retention", m.name, len(before), len(after))
	}

	// With a PIN the same change is allowed, and the vault is told at once.
	spare, err := fx.register(ctx, v, "retention-spare")
	if err != nil {
		t.Fatal(err)
	}
	spare.src = m.src
	if err := fx.assignLongPolicy(ctx, spare); err != nil {
		t.Fatal(err)
	}
	if _, err := spare.backup(ctx); err != nil { // a machine without points loses nothing
		t.Fatal(err)
	}
	pin := newPIN(t, fx.contributor, v.ID)
	if _, err := fx.contributor.Do(ctx, "PUT", wire.Version+"/vaults/"+v.ID+"/machines/"+spare.id+"/policy",
		wire.AssignPolicy{Policy: "short", PIN: pin}, nil, pinHeader(pin)); err != nil {
		t.Fatalf("assigning the 7-day policy with a PIN: %v", err)
	}
	as := alerts(t, fx.reader, v.ID)
	if !slices.ContainsFunc(as, func(a wire.Alert) bool {
		return a.Severity == wire.SeverityCritical && strings.Contains(strings.ToLower(a.Title+a.Detail), "retention") &&
			strings.Contains(a.Title+a.Detail+a.MachineName, spare.name)
	}) {
		t.Fatalf("no critical alert names the retention cut on %s: %+v", spare.name, as)
	}
}
