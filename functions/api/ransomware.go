package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/ransomware"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// When the ransomware alarm fires, the newest ProtectPoints points before
// the suspicious one are kept at least ProtectFor, whatever the policy
// says: encryption may have begun a backup or two before it was loud enough
// to fire, and retention must not expire the clean copies while an admin
// investigates. Extending retention needs no PIN; undoing it does.
const (
	ProtectPoints = 7
	ProtectFor    = 30 * 24 * time.Hour
)

// checkRansomware judges a finished backup's change counters against the
// machine's baseline: the counters of its recent backups whose points are
// not flagged (an acknowledged false positive counts again, which is how
// the baseline learns). On a suspicious verdict it flags the point,
// protects the points before it and raises a critical alert. Failures are
// logged, never returned: the agent's report is already recorded.
func (s *server) checkRansomware(ctx context.Context, m registry.Machine, j wire.Job) {
	if j.Type != wire.JobBackup || j.Change == nil ||
		(j.Status != wire.StatusCompleted && j.Status != wire.StatusCompletedWithWarnings) {
		return
	}
	log := s.Log.With("machine", m.ID, "job", j.ID, "point", j.PointID)
	ps, err := s.Points.List(ctx, m.ID, false)
	if err != nil {
		log.Error("ransomware check skipped: points unreadable", "err", err)
		return
	}
	flagged := map[string]bool{} // job IDs of points still under suspicion
	for _, p := range ps {
		if p.Suspicious != "" && p.FalsePositive == "" && p.JobID != "" {
			flagged[p.JobID] = true
		}
	}
	past, err := s.Jobs.List(ctx, m.VaultID, jobs.Filter{MachineID: m.ID, Type: wire.JobBackup, Limit: 2 * ransomware.Default.History})
	if err != nil {
		log.Error("ransomware check skipped: job history unreadable", "err", err)
		return
	}
	var baseline []wire.ChangeCounters
	for _, h := range past { // newest first
		if h.ID == j.ID || h.Change == nil || flagged[h.ID] ||
			(h.Status != wire.StatusCompleted && h.Status != wire.StatusCompletedWithWarnings) {
			continue
		}
		baseline = append(baseline, *h.Change)
	}
	v := ransomware.Judge(*j.Change, baseline, ransomware.Default)
	if !v.Suspicious {
		return
	}
	log.Warn("possible ransomware", "reason", v.Reason())

	var suspect *wire.Point
	for i := range ps {
		if ps[i].ID == j.PointID {
			suspect = &ps[i]
		}
	}
	flag := "possible ransomware: " + v.Reason()
	if suspect != nil {
		if _, err := s.Points.Flag(ctx, m.ID, suspect.ID, flag); err != nil {
			log.Error("could not flag the suspicious point", "err", err)
		}
	}
	kept, until := s.protectBefore(ctx, m, ps, suspect)

	vault, err := s.Registry.Vault(ctx, m.VaultID)
	if err != nil {
		log.Error("no ransomware alert: vault unreadable", "err", err)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The backup of %s (job %s) changed its files the way ransomware does: %s.", m.Name, j.ID, v.Reason())
	if suspect != nil {
		fmt.Fprintf(&b, "\nIts recovery point %s (%s) is flagged: it may hold encrypted files, do not restore it.", suspect.ID, suspect.Time.Format(time.RFC1123))
	}
	if len(kept) > 0 {
		fmt.Fprintf(&b, "\nThe %d newest point(s) before it are kept at least until %s, whatever the policy: restore from them (newest: %s).",
			len(kept), until.Format(time.RFC1123), kept[0])
	} else {
		b.WriteString("\nThere is no earlier recovery point to protect.")
	}
	fmt.Fprintf(&b, "\nCheck the machine now. If the change was expected (a bulk re-encoding, a migration), a Contributor acknowledges this alert as a false positive (coffer admin alert ack --false-positive, or POST %s/vaults/%s/alerts/ID/acknowledge?falsePositive=true); the alarm then learns this machine's pattern.",
		wire.Version, vault.ID)
	s.raise(ctx, wire.Alert{VaultID: vault.ID, VaultName: vault.Name, MachineID: m.ID, MachineName: m.Name, JobID: j.ID,
		Severity: wire.SeverityCritical, Kind: wire.AlertRansomware,
		Title:  "Possible ransomware on " + m.Name,
		Detail: b.String()})
}

// protectBefore keeps the newest ProtectPoints active, unflagged points
// older than suspect (all of them when suspect is unknown) at least
// ProtectFor from now, never shortening a longer retainUntil. It returns
// the IDs it protected, newest first, and until.
func (s *server) protectBefore(ctx context.Context, m registry.Machine, ps []wire.Point, suspect *wire.Point) ([]string, time.Time) {
	until := s.Now().Add(ProtectFor).UTC().Truncate(time.Second)
	var kept []string
	for i := len(ps) - 1; i >= 0 && len(kept) < ProtectPoints; i-- { // ps is oldest first
		p := ps[i]
		if p.State != wire.PointActive || (p.Suspicious != "" && p.FalsePositive == "") {
			continue
		}
		if suspect != nil && (p.ID == suspect.ID || !p.Time.Before(suspect.Time)) {
			continue
		}
		if p.RetainUntil != nil && !p.RetainUntil.Before(until) {
			kept = append(kept, p.ID)
			continue
		}
		was := p.RetainUntil
		for range 3 {
			_, err := s.Points.SetRetainUntil(ctx, m.ID, p.ID, was, &until)
			if !errors.Is(err, points.ErrState) {
				if err != nil {
					s.Log.Error("could not protect a point before a ransomware alarm", "machine", m.ID, "point", p.ID, "err", err)
				} else {
					kept = append(kept, p.ID)
				}
				break
			}
			// Changed meanwhile: read it again, and keep a longer hold.
			cur, gerr := s.Points.Get(ctx, m.ID, p.ID)
			if gerr != nil || cur.State != wire.PointActive {
				break
			}
			if cur.RetainUntil != nil && !cur.RetainUntil.Before(until) {
				kept = append(kept, p.ID)
				break
			}
			was = cur.RetainUntil
		}
	}
	return kept, until
}

// FalsePositiveParam on an alert's acknowledgement says a ransomware alarm
// was wrong: the point is cleared and its backup joins the baseline.
const FalsePositiveParam = "falsePositive"

// falsePositive checks, before an alert is acknowledged, that a
// false-positive acknowledgement is allowed: only a Contributor may, since
// it teaches the alarm to let such changes pass, and only for a ransomware
// alert.
func (s *server) falsePositive(c echo.Context, vaultID, alertID string) (bool, error) {
	switch c.QueryParam(FalsePositiveParam) {
	case "", "false":
		return false, nil
	case "true":
	default:
		return false, fail(http.StatusBadRequest, wire.CodeValidation, "%s must be true or false", FalsePositiveParam)
	}
	if err := need(c, registry.RoleContributor, "acknowledging a ransomware alarm as a false positive"); err != nil {
		return false, err
	}
	a, err := s.Alerts.Get(c.Request().Context(), vaultID, alertID)
	if err != nil {
		return false, err
	}
	if a.Kind != wire.AlertRansomware {
		return false, fail(http.StatusBadRequest, wire.CodeValidation, "alert %s is a %s alert; only a %s alert can be a false positive", alertID, a.Kind, wire.AlertRansomware)
	}
	return true, nil
}

// clearSuspicion records the false positive on the alarm's point.
func (s *server) clearSuspicion(ctx context.Context, a wire.Alert, by string) error {
	j, err := s.Jobs.Get(ctx, a.VaultID, a.MachineID, a.JobID)
	if err != nil {
		return fmt.Errorf("find the backup the alarm was about: %w", err)
	}
	if j.PointID == "" {
		return nil // no point was registered: nothing is flagged
	}
	if _, err := s.Points.ClearFlag(ctx, a.MachineID, j.PointID, by); err != nil && !errors.Is(err, points.ErrNotFound) {
		return fmt.Errorf("clear the flag on point %s: %w", j.PointID, err)
	}
	s.Log.Info("ransomware alarm acknowledged as a false positive; the baseline learns it", "machine", a.MachineID, "job", j.ID, "point", j.PointID, "by", by)
	return nil
}
