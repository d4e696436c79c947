package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/wire"
)

// SecretName is the Key Vault secret that escrows a machine's passphrase.
func SecretName(machineID string) string { return registry.SecretName(machineID) }

// KeyVaultGranter assigns a machine's Key Vault identity the machine
// passphrase role on one secret (kvgrant.Granter).
type KeyVaultGranter interface {
	Grant(ctx context.Context, secret, principalID string) error
}

var objectIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// grantKeyVault gives the new machine's Key Vault identity its role on the
// machine's secret, before the agent tries to escrow there. A failure does
// not fail the registration: the agent waits for the role and logs the
// command an admin can run instead.
func (s *server) grantKeyVault(ctx context.Context, machineID, principalID string) {
	if s.KeyVaultGrants == nil || principalID == "" {
		return
	}
	if err := s.KeyVaultGrants.Grant(ctx, SecretName(machineID), principalID); err != nil {
		s.Log.Error("could not assign the machine its Key Vault role; an admin must (the agent logs the command)",
			"machine", machineID, "principal", principalID, "err", err)
		return
	}
	s.Log.Info("machine's Key Vault identity may now escrow in its secret", "machine", machineID, "principal", principalID, "secret", SecretName(machineID))
}

func (s *server) register(c echo.Context) error {
	var reg wire.Register
	if err := bind(c, &reg); err != nil {
		return err
	}
	if reg.KeyVaultPrincipalID != "" && !objectIDRE.MatchString(reg.KeyVaultPrincipalID) {
		return fail(http.StatusBadRequest, wire.CodeValidation, "keyVaultPrincipalId %q is not an object ID (a GUID)", reg.KeyVaultPrincipalID)
	}
	ctx := c.Request().Context()
	if err := s.Registry.CheckCredentials(ctx, reg.VaultID, reg.CredentialID, reg.Secret); err != nil {
		switch {
		case errors.Is(err, registry.ErrExpired):
			return fail(http.StatusUnauthorized, wire.CodeCredentialsExpired, "%v", err)
		case errors.Is(err, registry.ErrSuperseded):
			return fail(http.StatusUnauthorized, wire.CodeCredentialsSuperseded, "%v", err)
		case errors.Is(err, registry.ErrBadSecret):
			return fail(http.StatusUnauthorized, wire.CodeUnauthenticated, "%v", err)
		}
		return err
	}
	v, err := s.Registry.Vault(ctx, reg.VaultID)
	if err != nil {
		return err
	}
	m, err := s.Registry.Register(ctx, reg)
	if err != nil {
		return err
	}
	if err := s.Blobs.Ensure(ctx, m.Container); err != nil {
		// Roll back so the name can be registered again once storage answers.
		full, _ := s.Registry.Machine(ctx, m.ID)
		if rerr := s.Registry.RemoveMachine(ctx, full); rerr != nil {
			s.Log.Error("could not roll back a half-done registration", "machine", m.ID, "err", rerr)
		}
		return fmt.Errorf("create container for machine %s: %w", m.Name, err)
	}
	full, err := s.Registry.Machine(ctx, m.ID)
	if err != nil {
		return err
	}
	s.grantKeyVault(ctx, m.ID, reg.KeyVaultPrincipalID)
	s.adminJob(ctx, full, wire.JobRegister)
	s.Log.Info("machine registered", "vault", v.ID, "machine", m.ID, "name", m.Name)
	return c.JSON(http.StatusCreated, wire.Registration{MachineID: m.ID, MachineName: m.Name, VaultID: v.ID,
		Container: m.Container, BlobEndpoint: s.BlobEndpoint, KeyVaultURL: s.KeyVaultURL, SecretName: SecretName(m.ID)})
}

func (s *server) agentMachine(c echo.Context) error {
	m := machine(c)
	return c.JSON(http.StatusOK, m.Machine)
}

func (s *server) agentPolicy(c echo.Context) error {
	m := machine(c)
	if m.Policy == "" {
		return fail(http.StatusNotFound, wire.CodeNotFound, "machine %s has no policy yet; an admin assigns one with PUT %s/vaults/%s/machines/%s/policy", m.Name, wire.Version, m.VaultID, m.ID)
	}
	p, err := s.Registry.Policy(c.Request().Context(), m.VaultID, m.Policy)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", p.Doc.ETag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && strings.Contains(match, p.Doc.ETag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSON(http.StatusOK, p.Doc)
}

func (s *server) agentSAS(c echo.Context) error {
	m := machine(c)
	var (
		g   sas.Grant
		err error
	)
	switch m.State {
	case wire.MachineDeleted:
		return fail(http.StatusForbidden, wire.CodeForbidden, "machine %s's backup data is deleted; an admin can undelete it until it is purged", m.Name)
	case wire.MachineProtected:
		g, err = s.SAS.Container(c.Request().Context(), m.Container, sas.MaxTTL)
	default:
		// Stopped: its points stay restorable, but nothing new is written
		// until an admin resumes protection.
		g, err = s.SAS.ReadOnly(c.Request().Context(), m.Container, sas.MaxTTL)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wire.SAS{ContainerURL: g.ContainerURL, SAS: g.SAS, ExpiresOn: g.ExpiresOn})
}

func (s *server) agentCreateJob(c echo.Context) error {
	var nj wire.NewJob
	if err := agentBind(c, &nj); err != nil {
		return err
	}
	m := machine(c)
	// The other job types record what an admin did; an agent cannot
	// claim them (issue 10: it could mark delete_backup_data completed).
	if nj.Type != wire.JobBackup && nj.Type != wire.JobRestore {
		return fail(http.StatusBadRequest, wire.CodeValidation, "an agent creates only backup and restore jobs, not %q", nj.Type)
	}
	if nj.Type == wire.JobBackup && m.State != wire.MachineProtected {
		return fail(http.StatusConflict, wire.CodeConflict, "protection of %s is %s; an admin must resume it before it can back up", m.Name, m.State)
	}
	j, err := s.Jobs.Create(c.Request().Context(), m.VaultID, m.ID, m.Name, nj.Type)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, j)
}

func (s *server) agentJobs(c echo.Context) error {
	m := machine(c)
	f := jobs.Filter{MachineID: m.ID, Type: c.QueryParam("type"), Status: c.QueryParam("status")}
	var err error
	if f.Limit, err = queryLimit(c); err != nil {
		return err
	}
	js, err := s.Jobs.List(c.Request().Context(), m.VaultID, f)
	if err != nil {
		return err
	}
	if js == nil {
		js = []wire.Job{}
	}
	return c.JSON(http.StatusOK, js)
}

func (s *server) agentReport(c echo.Context) error {
	var r wire.JobReport
	if err := agentBind(c, &r); err != nil {
		return err
	}
	m := machine(c)
	ctx := c.Request().Context()
	// The job is looked up under this machine's partition only, so another
	// machine's job is simply not found.
	j, err := s.Jobs.Report(ctx, m.VaultID, m.ID, c.Param("job"), r)
	if err != nil {
		return err
	}
	s.alertOnOutcome(ctx, m, j)
	s.checkRansomware(ctx, m, j)
	return c.JSON(http.StatusOK, j)
}

func (s *server) alertOnOutcome(ctx context.Context, m registry.Machine, j wire.Job) {
	v, err := s.Registry.Vault(ctx, m.VaultID)
	if err != nil {
		s.Log.Warn("no alert: vault unreadable", "err", err)
		return
	}
	a := wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name, JobID: j.ID}
	switch j.Status {
	case wire.StatusFailed:
		a.Severity, a.Kind = wire.SeverityCritical, wire.AlertJobFailed
		a.Title = fmt.Sprintf("%s failed on %s", jobTitle(j.Type), m.Name)
		a.Detail = fmt.Sprintf("Job %s failed with %s: %s", j.ID, j.ErrorCode, j.Message)
		a.Reported = fmt.Sprintf("error code: %s\nmessage: %s", j.ErrorCode, j.Message)
	case wire.StatusCompletedWithWarnings:
		a.Severity, a.Kind = wire.SeverityWarning, wire.AlertJobWarnings
		a.Title = fmt.Sprintf("%s on %s completed with warnings", jobTitle(j.Type), m.Name)
		var b strings.Builder
		fmt.Fprintf(&b, "Job %s skipped %d file(s):", j.ID, len(j.Skipped))
		for i, sk := range j.Skipped {
			if i == 20 {
				fmt.Fprintf(&b, "\n… and %d more; see the job", len(j.Skipped)-20)
				break
			}
			fmt.Fprintf(&b, "\n%s: %s", sk.Path, sk.Reason)
		}
		a.Detail = b.String()
		// Paths and reasons come from the machine: emails quote them.
		a.Reported = b.String()
	default:
		return
	}
	s.raise(ctx, a)
}

func jobTitle(t string) string {
	switch t {
	case wire.JobBackup:
		return "Backup"
	case wire.JobRestore:
		return "Restore"
	}
	return strings.ReplaceAll(t, "_", " ")
}

func (s *server) agentAddPoint(c echo.Context) error {
	var np wire.NewPoint
	if err := agentBind(c, &np); err != nil {
		return err
	}
	m := machine(c)
	ctx := c.Request().Context()
	if err := points.AcceptsNew(m.Name, m.State); err != nil {
		return err
	}
	if err := points.CheckID(np.ID); err != nil {
		return err
	}
	// Streams the point's pack list against the listing of data/, at most
	// one at a time per machine and a few in all (containers.CheckPoint).
	missing, err := s.Blobs.CheckPoint(ctx, m.Container, np.ID)
	if err != nil {
		if cerr := classify(err); cerr != nil {
			return cerr
		}
		if unavailable(err) {
			return err
		}
		return fail(http.StatusConflict, wire.CodePointIncomplete, "the point's pack list could not be read: %v; upload refs/%s before registering the point", err, np.ID)
	}
	if missing.Count > 0 {
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodePointIncomplete,
			Message: fmt.Sprintf("the point names %d pack(s) that are not in storage (first: %s); run the backup again", missing.Count, missing.First[0])}}
	}
	p, err := s.Points.Add(ctx, m.VaultID, m.ID, np.ID, np.JobID, np.RetainUntil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, p)
}

func (s *server) agentPoints(c echo.Context) error {
	m := machine(c)
	// ?deleted=include, as for admins: the agent marks soft-deleted points,
	// whose objects stay in its container until the purge.
	ps, err := s.Points.List(c.Request().Context(), m.ID, c.QueryParam("deleted") == "include")
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []wire.Point{}
	}
	return c.JSON(http.StatusOK, ps)
}

func (s *server) agentPassphraseChange(c echo.Context) error {
	m := machine(c)
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, m.VaultID)
	if err != nil {
		return err
	}
	if _, replay := c.Get(approvedKey).(*approvedRun); v.MultiUserAuth && !replay && s.Now().Before(m.KeyChangeUntil) {
		// A Security Admin approved this machine's request: the agent
		// runs the change within KeyChangeTTL of the approval.
		return c.JSON(http.StatusOK, map[string]string{"status": "allowed"})
	}
	if err := s.usePIN(c, v, "change the passphrase of "+m.Name); err != nil {
		return err
	}
	until := s.Now().Add(KeyChangeTTL)
	if _, err := s.Registry.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error {
		mm.KeyChangeUntil = until
		return nil
	}); err != nil {
		return err
	}
	s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
		Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title:  "Passphrase of " + m.Name + " changed",
		Detail: "The agent on " + m.Name + " changed its encryption passphrase with a security PIN. The new passphrase is escrowed in Key Vault as a new version of " + SecretName(m.ID) + "."})
	return c.JSON(http.StatusOK, map[string]string{"status": "allowed"})
}

// agentRestoreAccess gives read-only access to another machine's container
// while an Operator's restore grant lasts.
func (s *server) agentRestoreAccess(c echo.Context) error {
	var g wire.RestoreGrant
	if err := agentBind(c, &g); err != nil {
		return err
	}
	m := machine(c)
	ctx := c.Request().Context()
	src, err := s.Registry.FindMachine(ctx, m.VaultID, g.Source)
	if err != nil {
		return err
	}
	if m.RestoreSource != src.ID || !s.Now().Before(m.RestoreUntil) {
		return fail(http.StatusForbidden, wire.CodeForbidden, "%s may not read %s's data; an Operator allows it for a day with POST %s/vaults/%s/machines/%s/restore-grant", m.Name, src.Name, wire.Version, m.VaultID, m.ID)
	}
	gr, err := s.SAS.ReadOnly(ctx, src.Container, sas.MaxTTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wire.RestoreAccess{SourceMachine: src.ID, SourceName: src.Name, ContainerURL: gr.ContainerURL,
		SAS: gr.SAS, ExpiresOn: gr.ExpiresOn, SecretName: SecretName(src.ID), KeyVaultURL: s.KeyVaultURL})
}

// KeyChangeTTL is how long after a PIN-approved passphrase change the
// agent may have its old key file retired.
const KeyChangeTTL = 15 * time.Minute

// agentRetireKey soft-deletes the old key file after a passphrase change
// the PIN allowed, so the old passphrase stops working. The agent names the
// key file it wrote for the new passphrase; the control plane checks that
// it exists and is a key file before it retires the old one, records it as
// the replacement, and keeps the old file undeletable for the soft-delete
// period. The agent cannot delete anything itself, and nothing it asks for
// is deleted for good.
func (s *server) agentRetireKey(c echo.Context) error {
	var rk wire.RetireKey
	if err := agentBind(c, &rk); err != nil {
		return err
	}
	m := machine(c)
	if !s.Now().Before(m.KeyChangeUntil) {
		return fail(http.StatusForbidden, wire.CodePINRequired, "retiring a key file needs a passphrase change approved with a security PIN in the last %s", KeyChangeTTL)
	}
	if rk.Replacement == "" {
		return fail(http.StatusBadRequest, wire.CodeValidation, "name the key file the new passphrase opens in \"replacement\"; the old one is retired only once it is checked")
	}
	ctx := c.Request().Context()
	dk, err := s.Blobs.RetireKey(ctx, m.Container, rk.Key, rk.Replacement)
	if err != nil {
		return err
	}
	if _, err := s.Registry.ModifyMachine(ctx, m.ID, func(mm *registry.Machine) error {
		mm.KeyChangeUntil = time.Time{}
		return nil
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "retired", "key": rk.Key, "replacement": rk.Replacement,
		"purgeAfter": dk.PurgeAfter.Format(time.RFC3339)})
}
