package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

func (s *server) adminRoutes(g *echo.Group) {
	g.POST("/vaults", s.createVault)
	g.GET("/vaults", s.listVaults)
	g.GET("/vaults/:vault", s.getVault)
	g.PATCH("/vaults/:vault", s.updateVault)
	g.POST("/vaults/:vault/credentials", s.newCredentials)
	g.POST("/vaults/:vault/pin", s.newPIN)
	g.GET("/vaults/:vault/policies", s.listPolicies)
	g.GET("/vaults/:vault/policies/:policy", s.getPolicy)
	g.PUT("/vaults/:vault/policies/:policy", s.putPolicy)
	g.GET("/vaults/:vault/machines", s.listMachines)
	g.GET("/vaults/:vault/machines/:machine", s.getMachine)
	g.PUT("/vaults/:vault/machines/:machine/policy", s.assignPolicy)
	g.POST("/vaults/:vault/machines/:machine/stop", s.stopProtection)
	g.POST("/vaults/:vault/machines/:machine/resume", s.resumeProtection)
	g.POST("/vaults/:vault/machines/:machine/undelete", s.undeleteMachine)
	g.POST("/vaults/:vault/machines/:machine/restore-grant", s.grantRestore)
	g.GET("/vaults/:vault/machines/:machine/points", s.listPoints)
	g.DELETE("/vaults/:vault/machines/:machine/points/:point", s.deletePoint)
	g.POST("/vaults/:vault/machines/:machine/points/:point/undelete", s.undeletePoint)
	g.GET("/vaults/:vault/jobs", s.listJobs)
	g.GET("/vaults/:vault/machines/:machine/jobs/:job", s.getJob)
	g.GET("/vaults/:vault/alerts", s.listAlerts)
	g.POST("/vaults/:vault/alerts/:alert/acknowledge", s.ackAlert)
}

func (s *server) createVault(c echo.Context) error {
	if err := need(c, RoleContributor, "creating a vault"); err != nil {
		return err
	}
	var nv wire.NewVault
	if err := bind(c, &nv); err != nil {
		return err
	}
	v, err := s.Registry.CreateVault(c.Request().Context(), nv)
	if err != nil {
		return err
	}
	s.Log.Info("vault created", "vault", v.ID, "name", v.Name, "by", principal(c).Name)
	return c.JSON(http.StatusCreated, v)
}

func (s *server) listVaults(c echo.Context) error {
	vs, err := s.Registry.Vaults(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, vs)
}

func (s *server) getVault(c echo.Context) error {
	v, err := s.Registry.Vault(c.Request().Context(), c.Param("vault"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *server) updateVault(c echo.Context) error {
	if err := need(c, RoleContributor, "changing a vault"); err != nil {
		return err
	}
	var u wire.VaultUpdate
	if err := bind(c, &u); err != nil {
		return err
	}
	ctx := c.Request().Context()
	old, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	turningOff := u.SecurityFeatures != nil && !*u.SecurityFeatures && old.SecurityFeatures
	if turningOff {
		if err := s.usePIN(c, old, "turn security features off"); err != nil {
			return err
		}
	}
	v, err := s.Registry.UpdateVault(ctx, old.ID, u)
	if err != nil {
		return err
	}
	if turningOff {
		s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title:  "Security features turned off for vault " + v.Name,
			Detail: principal(c).Name + " turned security features off. Minimum retention no longer applies. If this was not intended, turn them on again at once."})
	}
	return c.JSON(http.StatusOK, v)
}

func (s *server) newCredentials(c echo.Context) error {
	if err := need(c, RoleOperator, "downloading vault credentials"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	id, secret, exp, err := s.Registry.NewCredentials(ctx, v.ID)
	if err != nil {
		return err
	}
	s.Log.Info("vault credentials generated; older ones no longer work", "vault", v.ID, "by", principal(c).Name)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, wire.Credentials{Version: wire.CredentialsVersion, ControlPlaneURL: s.PublicURL, VaultID: v.ID,
		VaultName: v.Name, CredentialID: id, Secret: secret, KeyVaultURL: s.KeyVaultURL, BlobEndpoint: s.BlobEndpoint,
		TenantID: s.TenantID, ExpiresAt: exp})
}

func (s *server) newPIN(c echo.Context) error {
	if err := need(c, RoleContributor, "generating a security PIN"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	p, err := s.PINs.Generate(ctx, v.ID, principal(c).Name)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, p)
}

// usePIN redeems the request's PIN and raises the critical-operation alert
// every PIN use gets.
func (s *server) usePIN(c echo.Context, v wire.Vault, operation string) error {
	p := c.Request().Header.Get(wire.PINHeader)
	if p == "" {
		return fail(http.StatusForbidden, wire.CodePINRequired, "to %s, generate a security PIN (POST %s/vaults/%s/pin, valid 5 minutes) and send it in the %s header", operation, wire.Version, v.ID, wire.PINHeader)
	}
	if err := s.PINs.Use(c.Request().Context(), v.ID, p, operation); err != nil {
		return err
	}
	return nil
}

func (s *server) listPolicies(c echo.Context) error {
	ps, err := s.Registry.Policies(c.Request().Context(), c.Param("vault"))
	if err != nil {
		return err
	}
	out := make([]wire.PolicyDoc, len(ps))
	for i, p := range ps {
		out[i] = p.Doc
	}
	return c.JSON(http.StatusOK, out)
}

func (s *server) getPolicy(c echo.Context) error {
	p, err := s.Registry.Policy(c.Request().Context(), c.Param("vault"), c.Param("policy"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", p.Doc.ETag)
	return c.JSON(http.StatusOK, p.Doc)
}

func (s *server) putPolicy(c echo.Context) error {
	if err := need(c, RoleContributor, "changing a policy"); err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	p, err := policy.Decode(body)
	if err != nil {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "%v", err)
	}
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	name := c.Param("policy")
	if err := registry.CheckPolicyName(name); err != nil {
		return err
	}
	if err := p.Validate(v.SecurityFeatures); err != nil {
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			return &httpError{http.StatusUnprocessableEntity, wire.Error{Code: wire.CodeValidation,
				Message: "the policy breaks these rules: " + ve.Error(), Details: ve.Violations}}
		}
		return fail(http.StatusUnprocessableEntity, wire.CodeValidation, "%v", err)
	}
	old, err := s.Registry.Policy(ctx, v.ID, name)
	switch {
	case err == nil:
		if match := c.Request().Header.Get("If-Match"); match != "" && match != old.Doc.ETag {
			return fail(http.StatusPreconditionFailed, wire.CodeConflict, "the policy changed since you read it (ETag %s); read it again and reapply your change", old.Doc.ETag)
		}
		if policy.ReducesRetention(old.Policy.Retention, p.Retention) {
			if err := s.usePIN(c, v, "reduce retention of policy "+name); err != nil {
				return err
			}
			s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
				Title:  "Retention reduced in policy " + name,
				Detail: principal(c).Name + " reduced the retention of policy " + name + " with a security PIN. Older recovery points will expire sooner."})
		}
	case errors.Is(err, registry.ErrNotFound):
	default:
		return err
	}
	saved, err := s.Registry.PutPolicy(ctx, v.ID, name, *p)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", saved.Doc.ETag)
	return c.JSON(http.StatusOK, saved.Doc)
}

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

func (s *server) listPoints(c echo.Context) error {
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	withDeleted := c.QueryParam("deleted") == "include"
	ps, err := s.Points.List(c.Request().Context(), m.ID, withDeleted)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []wire.Point{}
	}
	return c.JSON(http.StatusOK, ps)
}

func (s *server) deletePoint(c echo.Context) error {
	if err := need(c, RoleContributor, "deleting a recovery point"); err != nil {
		return err
	}
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.Points.Get(ctx, m.ID, c.Param("point")); err != nil {
		return err
	}
	if err := s.usePIN(c, v, "delete a recovery point of "+m.Name); err != nil {
		return err
	}
	p, err := s.Points.SoftDelete(ctx, m.ID, c.Param("point"))
	if err != nil {
		return err
	}
	s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
		Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title:  "Recovery point of " + m.Name + " deleted",
		Detail: principal(c).Name + " deleted the recovery point of " + p.Time.Format(time.RFC1123) + " with a security PIN. It can be undeleted until " + p.PurgeAfter.Format(time.RFC1123) + "."})
	return c.JSON(http.StatusOK, p)
}

func (s *server) undeletePoint(c echo.Context) error {
	if err := need(c, RoleContributor, "undeleting a recovery point"); err != nil {
		return err
	}
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	p, err := s.Points.Undelete(c.Request().Context(), m.ID, c.Param("point"))
	if errors.Is(err, points.ErrNotFound) {
		return fail(http.StatusNotFound, wire.CodeNotFound, "recovery point %s is gone: it was purged 14 days after it was deleted, or never existed", c.Param("point"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

func queryTime(c echo.Context, name string) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter %s must be an RFC 3339 time such as 2026-11-22T10:00:00Z", name)
	}
	return t, nil
}

func queryLimit(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter limit must be a whole number from 1 to 1000")
	}
	return n, nil
}

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

func (s *server) listAlerts(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	f := alerts.Filter{MachineID: c.QueryParam("machine"), Severity: c.QueryParam("severity"), Kind: c.QueryParam("kind"),
		Unacknowledged: c.QueryParam("acknowledged") == "false"}
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(c); err != nil {
		return err
	}
	as, err := s.Alerts.List(ctx, v.ID, f)
	if err != nil {
		return err
	}
	if as == nil {
		as = []wire.Alert{}
	}
	return c.JSON(http.StatusOK, as)
}

func (s *server) ackAlert(c echo.Context) error {
	if err := need(c, RoleOperator, "acknowledging an alert"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	a, err := s.Alerts.Acknowledge(ctx, v.ID, c.Param("alert"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

// raise stores and publishes an alert. A publish failure is logged, not
// returned: the alert is stored and the monitor republishes it.
func (s *server) raise(ctx context.Context, a wire.Alert) {
	if _, err := s.Alerts.Raise(ctx, a); err != nil {
		s.Log.Warn("alert not yet delivered", "kind", a.Kind, "vault", a.VaultID, "err", err)
	}
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
