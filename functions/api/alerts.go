package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/shared/wire"
)

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
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	fp, err := s.falsePositive(c, v.ID, c.Param("alert"))
	if err != nil {
		return err
	}
	a, err := s.Alerts.Acknowledge(ctx, v.ID, c.Param("alert"), principal(c).Name)
	if err != nil {
		return err
	}
	if fp {
		if err := s.clearSuspicion(ctx, a, principal(c).Name); err != nil {
			return err
		}
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
