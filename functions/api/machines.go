package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/registry"
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
	ms, err := s.Registry.Machines(ctx, v.ID)
	if err != nil {
		return err
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
	return c.JSON(http.StatusOK, out)
}

// item is the backup item summary, as the portal shows it for MARS.
func (s *server) item(ctx context.Context, m registry.Machine) (*wire.Item, error) {
	it := &wire.Item{}
	ps, err := s.Points.List(ctx, m.ID, false)
	if err != nil {
		return nil, err
	}
	it.Points = len(ps)
	if len(ps) > 0 {
		oldest, latest := ps[0].Time, ps[len(ps)-1].Time
		it.OldestPoint, it.LatestPoint = &oldest, &latest
	}
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
	if err := need(c, RoleContributor, "assigning a policy"); err != nil {
		return err
	}
	var ap wire.AssignPolicy
	if err := bind(c, &ap); err != nil {
		return err
	}
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.Registry.Policy(ctx, v.ID, ap.Policy); err != nil {
		return err
	}
	updated, err := s.Registry.ModifyMachine(ctx, m.ID, func(m *registry.Machine) error {
		m.Policy = ap.Policy
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, updated.Machine)
}

func (s *server) stopProtection(c echo.Context) error {
	var sp wire.StopProtection
	if err := bind(c, &sp); err != nil {
		return err
	}
	role, what := RoleOperator, "stopping protection"
	if sp.DeleteData {
		role, what = RoleContributor, "stopping protection and deleting data"
	}
	if err := need(c, role, what); err != nil {
		return err
	}
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if m.State == wire.MachineDeleted {
		return fail(http.StatusConflict, wire.CodeConflict, "machine %s's data is already deleted; undelete it first if you meant to keep it", m.Name)
	}
	if sp.DeleteData {
		if err := s.usePIN(c, v, "delete the backup data of "+m.Name); err != nil {
			return err
		}
	}
	now := s.Now().UTC()
	updated, err := s.Registry.ModifyMachine(ctx, m.ID, func(m *registry.Machine) error {
		if m.StoppedAt == nil {
			m.StoppedAt = &now
		}
		m.State = wire.MachineStopped
		if sp.DeleteData {
			m.State, m.DeletedAt = wire.MachineDeleted, &now
		}
		return nil
	})
	if err != nil {
		return err
	}
	jobType := wire.JobDisable
	if sp.DeleteData {
		jobType = wire.JobDeleteData
		s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
			Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title: "Backup data of " + m.Name + " deleted",
			Detail: principal(c).Name + " stopped protection of " + m.Name + " and deleted its backup data with a security PIN. " +
				"The data can be undeleted until " + updated.PurgeAfter.Format(time.RFC1123) + "; after that it is purged for good."})
	}
	s.adminJob(ctx, updated, jobType)
	return c.JSON(http.StatusOK, updated.Machine)
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

func (s *server) resumeProtection(c echo.Context) error {
	if err := need(c, RoleOperator, "resuming protection"); err != nil {
		return err
	}
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	if m.State != wire.MachineStopped {
		return fail(http.StatusConflict, wire.CodeConflict, "machine %s is %s; only a stopped machine with retained data can resume", m.Name, m.State)
	}
	updated, err := s.Registry.ModifyMachine(c.Request().Context(), m.ID, func(m *registry.Machine) error {
		m.State, m.StoppedAt = wire.MachineProtected, nil
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, updated.Machine)
}

func (s *server) undeleteMachine(c echo.Context) error {
	if err := need(c, RoleContributor, "undeleting backup data"); err != nil {
		return err
	}
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	if m.State != wire.MachineDeleted {
		return fail(http.StatusConflict, wire.CodeConflict, "machine %s's data is not deleted", m.Name)
	}
	// As in MARS, undelete returns the item to "stopped, data retained".
	updated, err := s.Registry.ModifyMachine(c.Request().Context(), m.ID, func(m *registry.Machine) error {
		m.State, m.DeletedAt = wire.MachineStopped, nil
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, updated.Machine)
}

// RestoreGrantTTL is how long a machine may read another's data.
const RestoreGrantTTL = 24 * time.Hour

// grantRestore lets the path's machine restore another machine's data, as
// MARS restores to an alternate machine of the same vault.
func (s *server) grantRestore(c echo.Context) error {
	if err := need(c, RoleOperator, "allowing a restore from another machine"); err != nil {
		return err
	}
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
