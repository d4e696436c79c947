package api

import (
	"github.com/labstack/echo/v4"
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
