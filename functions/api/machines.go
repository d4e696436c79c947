package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// vaultMachine loads the vault and one of its machines from the path.
func (s *server) vaultMachine(c echo.Context) (wire.Vault, registry.Machine, error) {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return wire.Vault{}, registry.Machine{}, err
	}
	m, err := s.Registry.VaultMachine(ctx, v.ID, c.Param("machine"))
	return v, m, err
}

func (s *server) listMachines(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	limit, after, err := page(c, maxPage, maxPage)
	if err != nil {
		return err
	}
	if after != "" && tables.CheckID("machine", after) != nil {
		return badContinuation()
	}
	ms, err := s.Registry.Machines(ctx, v.ID)
	if err != nil {
		return err
	}
	// Paged by machine ID; only a page's machines get their (costlier)
	// backup item summary.
	slices.SortFunc(ms, func(a, b registry.Machine) int { return strings.Compare(a.ID, b.ID) })
	ms, next := cut(ms, func(m registry.Machine) string { return m.ID }, after, limit)
	if next != "" {
		c.Response().Header().Set(ContinuationHeader, next)
	}
	out := make([]wire.Machine, len(ms))
	for i, m := range ms {
		out[i] = m.Machine
		if item, err := s.item(ctx, m); err == nil {
			out[i].Item = item
		} else {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *server) getMachine(c echo.Context) error {
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	out := m.Machine
	if out.Item, err = s.item(c.Request().Context(), m); err != nil {
		return err
	}
	// The next scheduled backup, by the machine's policy, as the agent
	// computes it (DST included); a policy that cannot be read leaves it out.
	if m.Policy != "" && m.State == wire.MachineProtected {
		if p, err := s.Registry.Policy(c.Request().Context(), m.VaultID, m.Policy); err == nil {
			if next, err := p.Policy.Schedule.Next(s.Now()); err == nil {
				out.Item.NextRun = &next
			}
		}
	}
	return c.JSON(http.StatusOK, out)
}

// item is the backup item summary, as the portal shows it for MARS.
func (s *server) item(ctx context.Context, m registry.Machine) (*wire.Item, error) {
	it := &wire.Item{}
	// One summary row per machine, however many points it has.
	sum, err := s.Points.Summary(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	it.Points, it.OldestPoint, it.LatestPoint = sum.Active, sum.Oldest, sum.Latest
	js, err := s.Jobs.List(ctx, m.VaultID, jobs.Filter{MachineID: m.ID, Type: wire.JobBackup, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(js) > 0 {
		it.LastBackupStatus = js[0].Status
		at := js[0].StartedAt
		it.LastBackupAt = &at
	}
	u, err := s.Blobs.Usage(ctx, m.Container)
	if err != nil {
		return nil, err
	}
	it.StorageBytes = u.Bytes
	return it, nil
}

func (s *server) assignPolicy(c echo.Context) error {
	var ap wire.AssignPolicy
	if err := bind(c, &ap); err != nil {
		return err
	}
	c.Set(bodyPIN, ap.PIN)
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	next, err := s.Registry.Policy(ctx, v.ID, ap.Policy)
	if err != nil {
		return err
	}
	done, err := s.guardAssign(c, v, m, next)
	if err != nil {
		return err
	}
	updated, err := s.Registry.ModifyMachine(ctx, m.ID, func(m *registry.Machine) error {
		m.Policy = ap.Policy
		return nil
	})
	if err != nil {
		return err
	}
	done()
	return c.JSON(http.StatusOK, updated.Machine)
}

func (s *server) stopProtection(c echo.Context) error {
	var sp wire.StopProtection
	if err := bind(c, &sp); err != nil {
		return err
	}
	if sp.DeleteData {
		return s.transition(c, registry.StopDelete)
	}
	return s.transition(c, registry.Stop)
}

func (s *server) resumeProtection(c echo.Context) error { return s.transition(c, registry.Resume) }

// undeleteMachine returns the data to "stopped, data retained", as in MARS.
func (s *server) undeleteMachine(c echo.Context) error { return s.transition(c, registry.Undelete) }

// transition changes a machine's protection state by the registry's rule
// for t: its role, its PIN, its from-states. The registry checks the state
// again on the record it writes, so a racing request cannot slip between.
func (s *server) transition(c echo.Context, t registry.Transition) error {
	rule, err := registry.RuleFor(t)
	if err != nil {
		return err
	}
	if err := need(c, rule.Role, string(t)); err != nil {
		return err
	}
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	// Checked on this copy first so a request that cannot succeed does not
	// use up the admin's PIN.
	if err := rule.Allows(m.Machine); err != nil {
		return err
	}
	if rule.PIN {
		if err := s.usePIN(c, v, string(t)+" of "+m.Name); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	updated, changed, err := s.Registry.Transition(ctx, m.ID, t)
	if err != nil {
		return err
	}
	if changed {
		s.Log.Info("machine "+string(t), "vault", v.ID, "machine", m.ID, "name", m.Name, "state", updated.State, "by", principal(c).Name)
		s.afterTransition(ctx, principal(c), v, updated, t)
	}
	return c.JSON(http.StatusOK, updated.Machine)
}

// afterTransition records the job MARS shows for the change and raises its
// alert: stopping protection means no more backups, so it is a warning
// even though no data is lost; deleting data is critical.
func (s *server) afterTransition(ctx context.Context, by Principal, v wire.Vault, m registry.Machine, t registry.Transition) {
	switch t {
	case registry.Stop:
		s.adminJob(ctx, m, wire.JobDisable)
		s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
			Severity: wire.SeverityWarning, Kind: wire.AlertProtectionStopped,
			Title: "Protection of " + m.Name + " stopped",
			Detail: by.Name + " stopped protection of " + m.Name + ". Its recovery points are kept, but no backup runs and no missed backup is alerted " +
				"until a Backup Operator resumes protection (POST " + wire.Version + "/vaults/" + v.ID + "/machines/" + m.ID + "/resume)."})
	case registry.StopDelete:
		s.adminJob(ctx, m, wire.JobDeleteData)
		s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
			Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title: "Backup data of " + m.Name + " deleted",
			Detail: by.Name + " stopped protection of " + m.Name + " and deleted its backup data with a security PIN. " +
				"The data can be undeleted until " + m.PurgeAfter.Format(time.RFC1123) + "; after that it is purged for good."})
	}
}

// adminJob records an operation an admin ran on a machine as a finished job.
func (s *server) adminJob(ctx context.Context, m registry.Machine, jobType string) {
	j, err := s.Jobs.Create(ctx, m.VaultID, m.ID, m.Name, jobType)
	if err == nil {
		_, err = s.Jobs.Report(ctx, m.VaultID, m.ID, j.ID, wire.JobReport{Status: wire.StatusCompleted})
	}
	if err != nil {
		s.Log.Warn("could not record job", "type", jobType, "machine", m.ID, "err", err)
	}
}

// RestoreGrantTTL is how long a machine may read another's data.
const RestoreGrantTTL = 24 * time.Hour

// grantRestore lets the path's machine restore another machine's data, as
// MARS restores to an alternate machine of the same vault.
func (s *server) grantRestore(c echo.Context) error {
	var g wire.RestoreGrant
	if err := bind(c, &g); err != nil {
		return err
	}
	v, target, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	src, err := s.Registry.FindMachine(ctx, v.ID, g.Source)
	if err != nil {
		return err
	}
	if src.ID == target.ID {
		return fail(http.StatusBadRequest, wire.CodeValidation, "a machine restores its own data without a grant")
	}
	until := s.Now().Add(RestoreGrantTTL)
	updated, err := s.Registry.ModifyMachine(ctx, target.ID, func(m *registry.Machine) error {
		m.RestoreSource, m.RestoreUntil = src.ID, until
		return nil
	})
	if err != nil {
		return err
	}
	s.Log.Info("restore granted", "target", target.Name, "source", src.Name, "until", until, "by", principal(c).Name)
	return c.JSON(http.StatusOK, updated.Machine)
}
