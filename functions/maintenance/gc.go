package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/retention"
	"github.com/coffer-backup/coffer/shared/wire"
)

// staleAfter is the stale-job bound: how long a job may stay in progress
// without a report, and also the longest a running job can defer purge or
// retention.
func (t *Timers) staleAfter() time.Duration {
	if t.StaleAfter > 0 {
		return t.StaleAfter
	}
	return DefaultStaleAfter
}

// deferred reports whether removing points that became due at due waits
// for the next run because m has a running job. A job is the agent's claim,
// so it defers the removal by at most the stale-job bound past due: an
// agent that keeps a job in progress for ever (reporting progress, or
// starting a new one each hour) delays purge and retention by that much
// and no more. Removing points under a live backup is safe anyway: the
// backup's point is refused at registration if a pack it reuses was
// collected (point_incomplete), and the agent backs up again.
func (t *Timers) deferred(ctx context.Context, m registry.Machine, due, now time.Time) (bool, error) {
	if !now.Before(due.Add(t.staleAfter())) {
		return false, nil
	}
	return t.busy(ctx, m)
}

// retentionDue is when the earliest of the expired points became due, as
// far as deferral cares: if any of them was expired already a stale-job
// bound ago, that time; else now.
func (t *Timers) retentionDue(ps []wire.Point, expired []wire.Point, r policy.Retention, loc *time.Location, now time.Time) time.Time {
	then := now.Add(-t.staleAfter())
	var in []retention.Point
	var kept []wire.Point
	for _, p := range ps {
		if !p.Time.After(then) {
			in = append(in, retention.Point{ID: p.ID, Time: p.Time})
			kept = append(kept, p)
		}
	}
	was := map[string]bool{}
	for i, d := range retention.Apply(in, r, loc, then) {
		if !d.Keep && (kept[i].RetainUntil == nil || !kept[i].RetainUntil.After(then)) {
			was[kept[i].ID] = true
		}
	}
	for _, p := range expired {
		if was[p.ID] {
			return then
		}
	}
	return now
}

// collect deletes the packs no point of m names. The points the control
// plane records (in any state: a soft-deleted point keeps its packs until
// it is purged) are those whose lists must decode; any other junk list is
// quarantined by the collector, and each one raises a critical alert once.
func (t *Timers) collect(ctx context.Context, m registry.Machine) (containers.GCResult, error) {
	ps, err := t.Points.List(ctx, m.ID, true)
	if err != nil {
		return containers.GCResult{}, err
	}
	registered := make(map[string]bool, len(ps))
	for _, p := range ps {
		registered[p.ID] = true
	}
	opts := containers.GCOptions{Grace: t.GCGrace, Registered: func(id string) bool { return registered[id] }}
	if t.OrphanAfter > 0 {
		opts.OrphanAfter = t.OrphanAfter
		opts.RegisteredNow = func(ctx context.Context, id string) (bool, error) {
			_, err := t.Points.Get(ctx, m.ID, id)
			if errors.Is(err, points.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}
	}
	gc, err := t.Blobs.Collect(ctx, m.Container, opts)
	for _, q := range gc.Quarantined {
		v, _ := t.Registry.Vault(ctx, m.VaultID)
		t.raise(ctx, wire.Alert{VaultID: m.VaultID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
			Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title: "Unexpected pack list quarantined on " + m.Name,
			Detail: fmt.Sprintf("%s in %s's storage is not a pack list the control plane accepted (%s). No recovery point uses it, so clean-up of unused data goes on without it; "+
				"it is left in place, marked as quarantined, for inspection. The agent wrote it: if nobody expected this, check %s for compromise.",
				q.Object, m.Name, q.Reason, m.Name)})
	}
	return gc, err
}
