package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

func (s *server) createVault(c echo.Context) error {
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
	var u wire.VaultUpdate
	if err := bind(c, &u); err != nil {
		return err
	}
	ctx := c.Request().Context()
	old, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	done := func() {}
	// Turning multi-user authorization off needs an approval itself, or a
	// stolen Contributor session would turn it off and go on with PINs.
	muaOff := u.MultiUserAuth != nil && !*u.MultiUserAuth && old.MultiUserAuth
	if muaOff {
		if err := s.needApproval(c, old, "turn multi-user authorization off"); err != nil {
			return err
		}
	}
	if u.SecurityFeatures != nil && !*u.SecurityFeatures && old.SecurityFeatures {
		changes, err := s.securityChanges(ctx, old)
		if err != nil {
			return err
		}
		if done, err = s.guardRetention(c, old, "turn security features off", changes); err != nil {
			return err
		}
	}
	v, err := s.Registry.UpdateVault(ctx, old.ID, u)
	if err != nil {
		return err
	}
	done()
	if muaOff {
		s.raise(ctx, wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
			Title:  "Multi-user authorization turned off in vault " + v.Name,
			Detail: principal(c).Name + " turned multi-user authorization off, with a Backup Security Admin's approval. From now on a security PIN alone allows deleting data and shortening retention; turn it on again with PATCH " + wire.Version + "/vaults/" + v.ID + ` {"multiUserAuth": true}.`})
	}
	return c.JSON(http.StatusOK, v)
}

func (s *server) newCredentials(c echo.Context) error {
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
