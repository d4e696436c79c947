package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/version"
	"github.com/coffer-backup/coffer/shared/wire"
)

// access is who may call a route: an admin with at least a role, a
// registered machine signing its request, or anyone.
type access struct {
	role          Role // for admin routes: the least role
	securityAdmin bool // the Backup Security Admin role, whatever the rank; no rank, Contributor included, reaches these routes
	agent         bool // signed by a registered machine (shared/reqsign)
	public        bool // no authentication: health, and register, which checks the credentials file in its body
}

func (a access) String() string {
	switch {
	case a.public:
		return "public"
	case a.agent:
		return "agent-signed"
	case a.securityAdmin:
		return RoleSecurityAdmin.String()
	}
	return a.role.String()
}

func admin(r Role) access { return access{role: r} }

var (
	reader        = admin(RoleReader)
	operator      = admin(RoleOperator)
	contributor   = admin(RoleContributor)
	securityAdmin = access{securityAdmin: true}
	agentSigned   = access{agent: true}
	public        = access{public: true}
)

// route is one row of the API.
type route struct {
	method, path string // path under wire.Version
	who          access
	what         string // for "… needs the Backup Contributor role"
	handle       func(*server, echo.Context) error
}

// routes is the whole API: every route says who may call it, so no handler
// checks a role of its own and no middleware guesses by path. A handler
// may ask for more than its row (stop protection with deleteData follows
// the registry's protection rules), never less.
var routes = []route{
	{http.MethodGet, "/health", public, "checking health", (*server).health},
	{http.MethodPost, "/register", public, "registering a machine", (*server).register},

	{http.MethodPost, "/vaults", contributor, "creating a vault", (*server).createVault},
	{http.MethodGet, "/vaults", reader, "listing vaults", (*server).listVaults},
	{http.MethodGet, "/vaults/:vault", reader, "reading a vault", (*server).getVault},
	{http.MethodPatch, "/vaults/:vault", contributor, "changing a vault", (*server).updateVault},
	{http.MethodDelete, "/vaults/:vault", contributor, "deleting a vault", (*server).deleteVault},
	{http.MethodPost, "/vaults/:vault/credentials", operator, "downloading vault credentials", (*server).newCredentials},
	{http.MethodPost, "/vaults/:vault/pin", contributor, "generating a security PIN", (*server).newPIN},
	{http.MethodGet, "/vaults/:vault/policies", reader, "listing policies", (*server).listPolicies},
	{http.MethodGet, "/vaults/:vault/policies/:policy", reader, "reading a policy", (*server).getPolicy},
	{http.MethodPut, "/vaults/:vault/policies/:policy", contributor, "changing a policy", (*server).putPolicy},
	{http.MethodPost, "/vaults/:vault/policies/:policy/preview", reader, "previewing a policy's retention", (*server).previewPolicy},
	{http.MethodDelete, "/vaults/:vault/policies/:policy", contributor, "deleting a policy", (*server).deletePolicy},
	{http.MethodGet, "/vaults/:vault/machines", reader, "listing machines", (*server).listMachines},
	{http.MethodGet, "/vaults/:vault/machines/:machine", reader, "reading a machine", (*server).getMachine},
	{http.MethodPut, "/vaults/:vault/machines/:machine/policy", contributor, "assigning a policy", (*server).assignPolicy},
	{http.MethodPost, "/vaults/:vault/machines/:machine/stop", operator, "stopping protection", (*server).stopProtection},
	{http.MethodPost, "/vaults/:vault/machines/:machine/resume", operator, "resuming protection", (*server).resumeProtection},
	{http.MethodPost, "/vaults/:vault/machines/:machine/undelete", contributor, "undeleting backup data", (*server).undeleteMachine},
	{http.MethodPost, "/vaults/:vault/machines/:machine/restore-grant", operator, "allowing a restore from another machine", (*server).grantRestore},
	{http.MethodGet, "/vaults/:vault/machines/:machine/usage", reader, "reading a machine's storage history", (*server).machineUsage},
	{http.MethodGet, "/vaults/:vault/machines/:machine/points", reader, "listing recovery points", (*server).listPoints},
	{http.MethodDelete, "/vaults/:vault/machines/:machine/points/:point", contributor, "deleting a recovery point", (*server).deletePoint},
	{http.MethodPatch, "/vaults/:vault/machines/:machine/points/:point", contributor, "changing how long a recovery point is kept", (*server).updatePoint},
	{http.MethodPost, "/vaults/:vault/machines/:machine/points/:point/undelete", contributor, "undeleting a recovery point", (*server).undeletePoint},
	{http.MethodGet, "/vaults/:vault/machines/:machine/deleted-keys", reader, "listing soft-deleted key files", (*server).listDeletedKeys},
	{http.MethodPost, "/vaults/:vault/machines/:machine/deleted-keys/:key/undelete", contributor, "undeleting a key file", (*server).undeleteKey},
	{http.MethodGet, "/vaults/:vault/jobs", reader, "listing jobs", (*server).listJobs},
	{http.MethodGet, "/vaults/:vault/machines/:machine/jobs/:job", reader, "reading a job", (*server).getJob},
	{http.MethodGet, "/vaults/:vault/alerts", reader, "listing alerts", (*server).listAlerts},
	{http.MethodPost, "/vaults/:vault/alerts/:alert/acknowledge", operator, "acknowledging an alert", (*server).ackAlert},
	{http.MethodGet, "/vaults/:vault/approvals", reader, "listing approval requests", (*server).listApprovals},
	{http.MethodGet, "/vaults/:vault/approvals/:approval", reader, "reading an approval request", (*server).getApproval},
	{http.MethodPost, "/vaults/:vault/approvals/:approval/approve", securityAdmin, "approving a request", (*server).approve},
	{http.MethodPost, "/vaults/:vault/approvals/:approval/reject", securityAdmin, "rejecting a request", (*server).reject},

	{http.MethodGet, "/agent/machine", agentSigned, "", (*server).agentMachine},
	{http.MethodGet, "/agent/policy", agentSigned, "", (*server).agentPolicy},
	{http.MethodPost, "/agent/sas", agentSigned, "", (*server).agentSAS},
	{http.MethodPost, "/agent/jobs", agentSigned, "", (*server).agentCreateJob},
	{http.MethodGet, "/agent/jobs", agentSigned, "", (*server).agentJobs},
	{http.MethodPost, "/agent/jobs/:job", agentSigned, "", (*server).agentReport},
	{http.MethodPost, "/agent/points", agentSigned, "", (*server).agentAddPoint},
	{http.MethodGet, "/agent/points", agentSigned, "", (*server).agentPoints},
	{http.MethodPost, "/agent/passphrase-change", agentSigned, "", (*server).agentPassphraseChange},
	{http.MethodPost, "/agent/restore-access", agentSigned, "", (*server).agentRestoreAccess},
	{http.MethodPost, "/agent/retire-key", agentSigned, "", (*server).agentRetireKey},
}

// addRoutes registers the table on e, each route behind its guard.
func (s *server) addRoutes(e *echo.Echo) {
	for _, r := range routes {
		var guard []echo.MiddlewareFunc
		switch {
		case r.who.public:
		case r.who.agent:
			guard = append(guard, s.agent)
		default:
			guard = append(guard, s.adminOnly(r.who, r.what))
		}
		e.Add(r.method, wire.Version+r.path, func(c echo.Context) error { return r.handle(s, c) }, guard...)
	}
}

// Dependency is the last check of something the control plane needs, as
// /health shows it.
type Dependency struct {
	OK      bool       `json:"ok"`
	Error   string     `json:"error,omitempty"`
	Checked *time.Time `json:"checked,omitempty"` // last check
	Since   *time.Time `json:"since,omitempty"`   // in this state since
}

// health answers from the last checks, never waiting on a dependency, so
// it answers at once even while storage is unreachable: 200 when every
// dependency answered, 503 (status "degraded") otherwise.
func (s *server) health(c echo.Context) error {
	body := map[string]any{"status": "ok", "version": version.String()}
	status := http.StatusOK
	if s.Health != nil {
		for name, d := range s.Health() {
			body[name] = d
			if !d.OK {
				body["status"], status = "degraded", http.StatusServiceUnavailable
			}
		}
	}
	return c.JSON(status, body)
}
