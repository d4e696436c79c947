package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/shared/wire"
)

// listDeletedKeys lists a machine's key files retired by passphrase
// changes and still in soft delete, newest first.
func (s *server) listDeletedKeys(c echo.Context) error {
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	dks, err := s.Blobs.DeletedKeys(c.Request().Context(), m.Container)
	if err != nil {
		return err
	}
	out := make([]wire.DeletedKey, len(dks))
	for i, dk := range dks {
		out[i] = deletedKey(dk)
	}
	return c.JSON(http.StatusOK, out)
}

// undeleteKey puts a retired key file back, so its passphrase opens the
// repository again: the way back from a passphrase change made with a
// forged or lost new key. It raises a critical alert, as the change did.
func (s *server) undeleteKey(c echo.Context) error {
	v, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	dk, err := s.Blobs.UndeleteKey(ctx, m.Container, c.Param("key"))
	if err != nil {
		return err
	}
	s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: m.ID, MachineName: m.Name,
		Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title: "Key file of " + m.Name + " undeleted",
		Detail: principal(c).Name + " undeleted key file " + dk.KeyID + ", retired on " + dk.DeletedAt.Format(time.RFC1123) +
			". The passphrase it was written for opens the repository again; its Key Vault secret version still holds it."})
	out := deletedKey(dk)
	return c.JSON(http.StatusOK, out)
}

func deletedKey(dk containers.DeletedKey) wire.DeletedKey {
	return wire.DeletedKey{KeyID: dk.KeyID, ReplacedBy: dk.ReplacedBy, Reason: dk.Reason, DeletedAt: dk.DeletedAt, PurgeAfter: dk.PurgeAfter, Size: dk.Size}
}
