package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

func (s *server) newPIN(c echo.Context) error {
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
	if err := s.PINs.Use(c.Request().Context(), v.ID, p, operation, source(c)); err != nil {
		return err
	}
	return nil
}

// source names who sent a request, for the PIN store's record of wrong PINs.
func source(c echo.Context) string {
	if m := machine(c); m.ID != "" {
		return "machine " + m.Name + " (" + m.ID + ")"
	}
	return principal(c).Name
}
