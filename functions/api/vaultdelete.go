package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

// deleteVault removes a vault nothing is left in. A vault with machines,
// even ones whose data is soft-deleted and still undeletable, is 409
// before the PIN is looked at, so a refused request does not use it up;
// the registry checks again as it deletes.
func (s *server) deleteVault(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	ms, err := s.Registry.Machines(ctx, v.ID)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = fmt.Sprintf("%s (%s)", m.Name, m.State)
		}
		return fail(http.StatusConflict, wire.CodeConflict,
			"vault %s still has %d machine(s): %s; stop each one's protection with deleteData and delete the vault after the purge (%s after)",
			v.Name, len(ms), strings.Join(names, ", "), days(s.SoftDelete))
	}
	if err := s.usePIN(c, v, "delete vault "+v.Name); err != nil {
		return err
	}
	if err := s.Registry.DeleteVault(ctx, v.ID); err != nil {
		return err
	}
	s.Log.Info("vault deleted", "vault", v.ID, "name", v.Name, "by", principal(c).Name)
	// Every PIN use is recorded as a critical alert; the vault has no
	// recipients any more, so this one is history in the alerts table.
	s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title:  "Vault " + v.Name + " deleted",
		Detail: principal(c).Name + " deleted vault " + v.Name + " (" + v.ID + "), which had no machine left, with a security PIN."})
	return c.NoContent(http.StatusNoContent)
}
