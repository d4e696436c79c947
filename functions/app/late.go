package app

import (
	"context"
	"time"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/shared/wire"
)

// lateOutcome sets the alerts right when an agent's outcome arrives after
// the monitor failed its job for silence (jobs.Store.OnLateOutcome): the
// "agent stopped reporting" alert is acknowledged in the outcome's name,
// since it no longer says what happened, and the API raises the outcome's
// own alert (failed, or completed with warnings) as for any outcome.
func (a *App) lateOutcome(ctx context.Context, failed, now wire.Job) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := a.Log.With("vault", failed.VaultID, "machine", failed.MachineID, "job", failed.ID)
	// The monitor raised its alert when it failed the job, at or after
	// failed.UpdatedAt; the outcome's own alert comes after now.UpdatedAt
	// and must be left alone.
	list, err := a.Alerts.List(ctx, failed.VaultID, alerts.Filter{MachineID: failed.MachineID, Kind: wire.AlertJobFailed,
		Unacknowledged: true, Since: failed.UpdatedAt, Limit: alerts.MaxListLimit})
	if err != nil {
		log.Warn("late outcome: the silent-agent alert could not be found to acknowledge; acknowledge it by hand", "err", err)
		return
	}
	by := "coffer: the agent reported the outcome late (" + now.Status + ")"
	for _, al := range list {
		if al.JobID != failed.ID || !al.RaisedAt.Before(now.UpdatedAt) {
			continue
		}
		if _, err := a.Alerts.Acknowledge(ctx, al.VaultID, al.ID, by); err != nil {
			log.Warn("late outcome: could not acknowledge the silent-agent alert; acknowledge it by hand", "alert", al.ID, "err", err)
			continue
		}
		log.Info("late outcome: acknowledged the silent-agent alert", "alert", al.ID, "outcome", now.Status)
	}
}
