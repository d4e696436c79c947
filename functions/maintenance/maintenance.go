// Package maintenance is the work of the control plane's timers: purging
// soft-deleted data after the soft-delete period (14 days unless
// COFFER_SOFT_DELETE_DAYS says otherwise), enforcing each policy's retention, and
// watching for silent jobs and missed backups. It decides from the server's
// clock and records only, never from anything an agent claims.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/retention"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Defaults for the bounds the timers use.
const (
	// DefaultStaleAfter: agents report progress every minute, so two hours
	// of silence means the agent died or lost its network for good. MARS
	// waits 30 days.
	DefaultStaleAfter = 2 * time.Hour
	// DefaultMissedGrace: a scheduled backup that has not started an hour
	// after its time is missed.
	DefaultMissedGrace = time.Hour
	// DefaultGCGrace protects packs a running backup has uploaded but not
	// yet named in a point's reference list.
	DefaultGCGrace = 24 * time.Hour
	// DefaultOrphanAfter: a pack list whose point was never registered is
	// deleted, and its packs collected, once it is this old. An agent cut
	// off from the control plane keeps its unregistered points and
	// registers them when it is back, so this is far longer than any outage
	// the missed-backup alerts would leave unnoticed.
	DefaultOrphanAfter = 30 * 24 * time.Hour
	// StoppedReminder is how often a vault is reminded of its machines
	// whose protection is stopped: they run no backups and raise no
	// missed-backup alerts, so without it they would be forgotten.
	StoppedReminder = 24 * time.Hour
)

// JobStore is what the timers need of job tracking.
type JobStore interface {
	List(ctx context.Context, vaultID string, f jobs.Filter) ([]wire.Job, error)
	FailStale(ctx context.Context, cutoff time.Time, code, message string) ([]wire.Job, error)
	Running(ctx context.Context, vaultID, machineID string) ([]wire.Job, error)
}

// AlertStore is what the timers need of alerts.
type AlertStore interface {
	Raise(ctx context.Context, a wire.Alert) (wire.Alert, error)
	Republish(ctx context.Context) (int, error)
	List(ctx context.Context, vaultID string, f alerts.Filter) ([]wire.Alert, error)
}

// Blobs is what the timers need of the machines' containers.
type Blobs interface {
	Delete(ctx context.Context, name string) error
	DeletePoint(ctx context.Context, name, pointID string) error
	Collect(ctx context.Context, name string, opts containers.GCOptions) (containers.GCResult, error)
	PurgeDeletedKeys(ctx context.Context) (int, error)
}

// Timers holds the collaborators and bounds.
type Timers struct {
	Registry    Registry
	Points      PointStore
	PINs        Sweeper
	Nonces      Sweeper
	Jobs        JobStore
	Alerts      AlertStore
	Blobs       Blobs
	Now         func() time.Time
	Log         *slog.Logger
	StaleAfter  time.Duration
	MissedGrace time.Duration
	GCGrace     time.Duration
	OrphanAfter time.Duration // zero keeps orphaned pack lists
	// Usage and Sizes keep a daily sample of each machine's storage
	// (usage.go); without them MonitorBackups keeps none.
	Usage UsageHistory
	Sizes ContainerSizer
	// KeyVault, when set, removes a purged machine's role on its
	// passphrase secret (kvgrant.Granter).
	KeyVault KeyVaultRevoker
	// Approvals, when set, has MonitorBackups mark approved runs that
	// never finished as interrupted, and sweep requests over for a year.
	Approvals ApprovalKeeper
}

// KeyVaultRevoker removes the role a machine's Key Vault identity was
// assigned on its secret at registration.
type KeyVaultRevoker interface {
	Revoke(ctx context.Context, secret, principalID string) error
}

// ApprovalKeeper is what the monitor needs of multi-user authorization
// requests: *approvals.Store.
type ApprovalKeeper interface {
	MarkInterrupted(ctx context.Context, cutoff time.Time) ([]approvals.Stored, error)
	Sweep(ctx context.Context, cutoff time.Time) (int, error)
}

func (t *Timers) log() *slog.Logger {
	if t.Log == nil {
		return slog.Default()
	}
	return t.Log
}

// busy reports whether a machine has a running job: its container is left
// alone, because a running backup may reuse any pack.
func (t *Timers) busy(ctx context.Context, m registry.Machine) (bool, error) {
	js, err := t.Jobs.Running(ctx, m.VaultID, m.ID)
	return len(js) > 0, err
}

// eachMachine runs fn for every machine of every vault. One machine's
// failure does not stop the others; the failures are returned, each naming
// its machine, as is a failure to list the machines at all.
func (t *Timers) eachMachine(ctx context.Context, fn func(registry.Machine) error) []error {
	ms, err := t.Registry.Machines(ctx, "")
	if err != nil {
		return []error{fmt.Errorf("list machines: %w", err)}
	}
	var errs []error
	for _, m := range ms {
		if err := fn(m); err != nil {
			errs = append(errs, fmt.Errorf("machine %s (%s): %w", m.Name, m.ID, err))
		}
	}
	return errs
}

// PurgeReport says what a purge did.
type PurgeReport struct {
	Machines, Points, Packs int
	BytesFreed              int64
	Skipped                 []string // machines left for the next run, and why
	Keys                    int      // soft-deleted key files purged
}

// PurgeSoftDeleted removes for good what was soft-deleted more than 14
// days ago: whole machines' data, and single points with the packs no
// remaining point needs. One machine's failure does not stop the others.
func (t *Timers) PurgeSoftDeleted(ctx context.Context) (PurgeReport, error) {
	var rep PurgeReport
	now := t.Now()
	errs := t.eachMachine(ctx, func(m registry.Machine) error { return t.purgeMachine(ctx, m, now, &rep) })
	n, err := t.Blobs.PurgeDeletedKeys(ctx)
	rep.Keys += n
	if err != nil {
		errs = append(errs, fmt.Errorf("purge soft-deleted key files: %w", err))
	}
	t.log().Info("purge finished", "machines", rep.Machines, "points", rep.Points, "packs", rep.Packs, "bytesFreed", rep.BytesFreed, "skipped", len(rep.Skipped), "errors", len(errs))
	return rep, errors.Join(errs...)
}

func (t *Timers) purgeMachine(ctx context.Context, m registry.Machine, now time.Time, rep *PurgeReport) error {
	if m.State == wire.MachineDeleted && m.PurgeAfter != nil && !now.Before(*m.PurgeAfter) {
		if err := t.Blobs.Delete(ctx, m.Container); err != nil {
			return err
		}
		ps, err := t.Points.List(ctx, m.ID, true)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if err := t.Points.Remove(ctx, m.ID, p.ID); err != nil {
				return err
			}
		}
		// Before the record goes: it is the only note of the identity.
		if t.KeyVault != nil && m.KeyVaultPrincipal != "" {
			if err := t.KeyVault.Revoke(ctx, registry.SecretName(m.ID), m.KeyVaultPrincipal); err != nil {
				return err
			}
		}
		if err := t.Registry.RemoveMachine(ctx, m); err != nil {
			return err
		}
		rep.Machines++
		rep.Points += len(ps)
		t.log().Info("purged machine", "machine", m.Name, "vault", m.VaultID, "points", len(ps))
		return nil
	}
	ps, err := t.Points.List(ctx, m.ID, true)
	if err != nil {
		return err
	}
	var due []wire.Point
	first := now
	for _, p := range ps {
		if p.State == wire.PointDeleted && p.PurgeAfter != nil && !now.Before(*p.PurgeAfter) {
			due = append(due, p)
			if p.PurgeAfter.Before(first) {
				first = *p.PurgeAfter
			}
		}
	}
	if len(due) == 0 {
		return nil
	}
	return t.removePoints(ctx, m, due, first, "purge", &rep.Points, &rep.Packs, &rep.BytesFreed, &rep.Skipped)
}

// removePoints deletes points' objects and records, then the packs that no
// remaining point names. A machine with a running job is left for the next
// run, but for at most the stale-job bound after the points became due.
func (t *Timers) removePoints(ctx context.Context, m registry.Machine, ps []wire.Point, due time.Time, why string, nPoints, nPacks *int, freed *int64, skipped *[]string) error {
	if wait, err := t.deferred(ctx, m, due, t.Now()); err != nil {
		return err
	} else if wait {
		*skipped = append(*skipped, fmt.Sprintf("%s: a job is running; %s waits for the next run (until %s at the latest)", m.Name, why, due.Add(t.staleAfter()).UTC().Format(time.RFC3339)))
		return nil
	}
	for _, p := range ps {
		// Objects first: a point record without objects would promise a
		// restore that cannot happen; objects without a record are retried.
		if err := t.Blobs.DeletePoint(ctx, m.Container, p.ID); err != nil {
			return err
		}
		if err := t.Points.Remove(ctx, m.ID, p.ID); err != nil {
			return err
		}
		*nPoints++
	}
	gc, err := t.collect(ctx, m)
	if err != nil {
		return fmt.Errorf("collect unreferenced packs: %w", err)
	}
	*nPacks += gc.Deleted
	*freed += gc.BytesFreed
	t.log().Info(why+": removed points", "machine", m.Name, "points", len(ps), "packsDeleted", gc.Deleted, "packsKept", gc.Referenced, "bytesFreed", gc.BytesFreed)
	return nil
}

// RetentionReport says what retention did.
type RetentionReport struct {
	Machines, Expired, Packs int
	BytesFreed               int64
	Skipped                  []string
}

// EnforceRetention applies each protected machine's policy to its active
// points by their server times. Expired points go at once, without the
// 14-day soft delete: retention is the policy working, not a deletion.
// Stopped machines keep their data, as in MARS.
func (t *Timers) EnforceRetention(ctx context.Context) (RetentionReport, error) {
	var rep RetentionReport
	now := t.Now()
	errs := t.eachMachine(ctx, func(m registry.Machine) error {
		if m.State != wire.MachineProtected || m.Policy == "" {
			return nil
		}
		return t.retainMachine(ctx, m, now, &rep)
	})
	t.log().Info("retention finished", "machines", rep.Machines, "expired", rep.Expired, "packs", rep.Packs, "bytesFreed", rep.BytesFreed, "errors", len(errs))
	return rep, errors.Join(errs...)
}

func (t *Timers) retainMachine(ctx context.Context, m registry.Machine, now time.Time, rep *RetentionReport) error {
	pol, err := t.Registry.Policy(ctx, m.VaultID, m.Policy)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(pol.Policy.Schedule.TimeZone)
	if err != nil {
		return fmt.Errorf("policy %s: time zone: %w", pol.Name, err)
	}
	v, err := t.Registry.Vault(ctx, m.VaultID)
	if err != nil {
		return err
	}
	// A policy stored while security features were off is raised to their
	// minimum once they are on: the API's retention guard compares the same.
	keep := retention.ForPolicy(&pol.Policy, v.SecurityFeatures).Effective()
	ps, err := t.Points.List(ctx, m.ID, false)
	if err != nil {
		return err
	}
	in := make([]retention.Point, len(ps))
	for i, p := range ps {
		in[i] = retention.Point{ID: p.ID, Time: p.Time}
	}
	var expired []wire.Point
	for i, d := range retention.Apply(in, keep, loc, now) {
		if !d.Keep && (ps[i].RetainUntil == nil || !ps[i].RetainUntil.After(now)) {
			expired = append(expired, ps[i])
		}
	}
	rep.Machines++
	if len(expired) == 0 {
		return nil
	}
	due := t.retentionDue(ps, expired, keep, loc, now)
	return t.removePoints(ctx, m, expired, due, "retention", &rep.Expired, &rep.Packs, &rep.BytesFreed, &rep.Skipped)
}

// MonitorReport says what the monitor found.
type MonitorReport struct {
	FailedJobs, MissedBackups, Republished int
	// StoppedDigests is how many vaults were reminded of stopped machines.
	StoppedDigests int
	// UsageSamples is how many machines' storage was sampled (once a day).
	UsageSamples int
	// Interrupted is how many approved operations were found cut off.
	Interrupted int
}

// MonitorBackups fails jobs whose agents went silent, raises an alert for
// each scheduled backup that did not start, reminds each vault daily of its
// machines whose protection is stopped, republishes alerts Service Bus
// did not take, sweeps expired PINs and nonces, and samples each machine's
// storage once a day (usage.go).
func (t *Timers) MonitorBackups(ctx context.Context) (MonitorReport, error) {
	var rep MonitorReport
	now := t.Now()
	stale := t.StaleAfter
	if stale <= 0 {
		stale = DefaultStaleAfter
	}
	var errs []error
	failed, err := t.Jobs.FailStale(ctx, now.Add(-stale), "agent_silent",
		fmt.Sprintf("the agent sent no report for %s; check that the machine is on and the coffer service is running", stale))
	if err != nil {
		errs = append(errs, fmt.Errorf("fail stale jobs: %w", err))
	}
	for _, j := range failed {
		rep.FailedJobs++
		v, _ := t.Registry.Vault(ctx, j.VaultID)
		t.raise(ctx, wire.Alert{VaultID: j.VaultID, VaultName: v.Name, MachineID: j.MachineID, MachineName: j.MachineName, JobID: j.ID,
			Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed,
			Title:  fmt.Sprintf("%s job on %s failed: the agent stopped reporting", j.Type, j.MachineName),
			Detail: j.Message})
	}
	stopped := map[string][]registry.Machine{} // by vault
	errs = append(errs, t.eachMachine(ctx, func(m registry.Machine) error {
		if m.State == wire.MachineStopped {
			stopped[m.VaultID] = append(stopped[m.VaultID], m)
		}
		missed, err := t.checkMissed(ctx, m, now)
		if missed {
			rep.MissedBackups++
		}
		sampled, uerr := t.sampleUsage(ctx, m, now)
		if sampled {
			rep.UsageSamples++
		}
		return errors.Join(err, uerr)
	})...)
	for _, vaultID := range slices.Sorted(maps.Keys(stopped)) {
		sent, err := t.stoppedDigest(ctx, vaultID, stopped[vaultID], now)
		if err != nil {
			errs = append(errs, fmt.Errorf("vault %s: remind of stopped machines: %w", vaultID, err))
		}
		if sent {
			rep.StoppedDigests++
		}
	}
	if n, err := t.Alerts.Republish(ctx); err != nil {
		errs = append(errs, fmt.Errorf("republish alerts: %w", err))
	} else {
		rep.Republished = n
	}
	if _, err := t.PINs.Sweep(ctx, now.Add(-time.Hour)); err != nil {
		errs = append(errs, err)
	}
	if _, err := t.Nonces.Sweep(ctx, now.Add(-2*reqsign.Window)); err != nil {
		errs = append(errs, err)
	}
	if t.Approvals != nil {
		n, err := t.keepApprovals(ctx, now)
		rep.Interrupted = n
		errs = append(errs, err)
	}
	t.log().Info("monitor finished", "failedJobs", rep.FailedJobs, "missedBackups", rep.MissedBackups, "stoppedDigests", rep.StoppedDigests, "usageSamples", rep.UsageSamples, "republished", rep.Republished, "interrupted", rep.Interrupted, "errors", len(errs))
	return rep, errors.Join(errs...)
}

// keepApprovals marks approved operations whose run never recorded an
// outcome as interrupted, raising a critical alert for each (whether the
// operation took effect must be checked by someone), and deletes requests
// over for longer than approvals.KeepDecided.
func (t *Timers) keepApprovals(ctx context.Context, now time.Time) (int, error) {
	cut, err := t.Approvals.MarkInterrupted(ctx, now.Add(-approvals.InterruptedAfter))
	for _, a := range cut {
		v, _ := t.Registry.Vault(ctx, a.VaultID)
		t.raise(ctx, wire.Alert{VaultID: a.VaultID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title: "Approved operation interrupted in vault " + v.Name + ": " + a.Operation,
			Detail: fmt.Sprintf("Request %s by %s, approved by %s, did not finish: the control plane stopped while it ran, or before. "+
				"It will not run again. Check whether it took effect (%s %s), and ask again if it did not.", a.ID, a.RequestedBy, a.DecidedBy, a.Method, a.Path)})
	}
	if err != nil {
		return len(cut), fmt.Errorf("approval requests: %w", err)
	}
	if _, err := t.Approvals.Sweep(ctx, now.Add(-approvals.KeepDecided)); err != nil {
		return len(cut), fmt.Errorf("approval requests: %w", err)
	}
	return len(cut), nil
}

// stoppedDigest raises one warning listing a vault's machines whose
// protection is stopped, unless the vault had a protection_stopped alert
// (a stop, or this digest) within StoppedReminder. The missed-backup check
// skips stopped machines, so this is what keeps them from being forgotten.
func (t *Timers) stoppedDigest(ctx context.Context, vaultID string, ms []registry.Machine, now time.Time) (bool, error) {
	recent, err := t.Alerts.List(ctx, vaultID, alerts.Filter{Kind: wire.AlertProtectionStopped, Since: now.Add(-StoppedReminder), Limit: 1})
	if err != nil || len(recent) > 0 {
		return false, err
	}
	v, _ := t.Registry.Vault(ctx, vaultID)
	var b strings.Builder
	fmt.Fprintf(&b, "Protection is stopped on %d machine(s) of vault %s. Their recovery points are kept, but no backup runs and no missed backup is alerted:", len(ms), v.Name)
	for _, m := range ms {
		since := "an unknown time"
		if m.StoppedAt != nil {
			since = m.StoppedAt.UTC().Format("2 Jan 2006 15:04 UTC")
			since += fmt.Sprintf(" (%d days)", int(now.Sub(*m.StoppedAt)/(24*time.Hour)))
		}
		fmt.Fprintf(&b, "\n%s (%s): stopped since %s", m.Name, m.ID, since)
	}
	b.WriteString("\nResume protection of the machines that should be backed up; a Backup Contributor can delete the data of retired ones with a security PIN. This reminder repeats daily while any machine stays stopped.")
	title := fmt.Sprintf("Protection stopped on %d machine(s)", len(ms))
	if len(ms) == 1 {
		title = "Protection of " + ms[0].Name + " is still stopped"
	}
	t.raise(ctx, wire.Alert{VaultID: vaultID, VaultName: v.Name, Severity: wire.SeverityWarning,
		Kind: wire.AlertProtectionStopped, Title: title, Detail: b.String()})
	return true, nil
}

// checkMissed raises one alert per scheduled run that started no backup
// within the grace period.
func (t *Timers) checkMissed(ctx context.Context, m registry.Machine, now time.Time) (bool, error) {
	if m.State != wire.MachineProtected || m.Policy == "" {
		return false, nil
	}
	pol, err := t.Registry.Policy(ctx, m.VaultID, m.Policy)
	if err != nil {
		return false, err
	}
	grace := t.MissedGrace
	if grace <= 0 {
		grace = DefaultMissedGrace
	}
	due, err := pol.Policy.Schedule.Prev(now.Add(-grace))
	if err != nil || due.IsZero() || due.Before(m.RegisteredAt) || !due.After(m.LastMissed) {
		return false, err
	}
	// A backup started a little early (an on-demand one, or a clock a
	// minute fast) still counts.
	js, err := t.Jobs.List(ctx, m.VaultID, jobs.Filter{MachineID: m.ID, Type: wire.JobBackup, Since: due.Add(-30 * time.Minute), Limit: 1})
	if err != nil || len(js) > 0 {
		return false, err
	}
	v, _ := t.Registry.Vault(ctx, m.VaultID)
	loc, _ := time.LoadLocation(pol.Policy.Schedule.TimeZone)
	t.raise(ctx, wire.Alert{VaultID: m.VaultID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
		Severity: wire.SeverityWarning, Kind: wire.AlertMissedBackup,
		Title: "Missed backup on " + m.Name,
		Detail: fmt.Sprintf("The backup scheduled for %s (%s) did not start within %s. Check that %s is on, connected, and that the coffer service is running.",
			due.In(loc).Format("Mon 2 Jan 2006 15:04 MST"), due.UTC().Format(time.RFC3339), grace, m.Name)})
	_, err = t.Registry.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error {
		mm.LastMissed = due
		return nil
	})
	return true, err
}

func (t *Timers) raise(ctx context.Context, a wire.Alert) {
	if _, err := t.Alerts.Raise(ctx, a); err != nil {
		t.log().Warn("alert not yet delivered", "kind", a.Kind, "err", err)
	}
}
