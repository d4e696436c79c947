package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/shared/wire"
)

var jobTypes = map[string]bool{wire.JobBackup: true, wire.JobRestore: true, wire.JobRegister: true, wire.JobConfigure: true, wire.JobDisable: true, wire.JobDeleteData: true}

var jobStatuses = map[string]bool{wire.StatusInProgress: true, wire.StatusCompleted: true, wire.StatusCompletedWithWarnings: true, wire.StatusFailed: true, wire.StatusCancelled: true}

func (s *server) listJobs(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	f := jobs.Filter{MachineID: c.QueryParam("machine"), Type: c.QueryParam("type"), Status: c.QueryParam("status")}
	if f.Type != "" && !jobTypes[f.Type] {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "unknown job type %q", f.Type)
	}
	if f.Status != "" && !jobStatuses[f.Status] {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "unknown job status %q", f.Status)
	}
	if f.MachineID != "" {
		if _, err := s.Registry.VaultMachine(ctx, v.ID, f.MachineID); err != nil {
			return err
		}
	}
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(c); err != nil {
		return err
	}
	js, err := s.Jobs.List(ctx, v.ID, f)
	if err != nil {
		return err
	}
	if js == nil {
		js = []wire.Job{}
	}
	return c.JSON(http.StatusOK, js)
}

func (s *server) getJob(c echo.Context) error {
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	j, err := s.Jobs.Get(c.Request().Context(), v.ID, m.ID, c.Param("job"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, j)
}
