package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/pin"
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
		return s.pinRefused(c, v, "generate a PIN", err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, p)
}

// usePIN redeems the request's PIN (header, or body where a route allows
// it). The handler raises the critical alert every PIN use gets once its
// operation is done; a refused PIN goes through pinRefused.
//
// With multi-user authorization on, a PIN is not enough: the request
// becomes an approval request instead (needApproval).
func (s *server) usePIN(c echo.Context, v wire.Vault, operation string) error {
	if v.MultiUserAuth {
		return s.needApproval(c, v, operation)
	}
	p := requestPIN(c)
	if p == "" {
		return fail(http.StatusForbidden, wire.CodePINRequired, "to %s, generate a security PIN (POST %s/vaults/%s/pin, valid 5 minutes) and send it in the %s header", operation, wire.Version, v.ID, wire.PINHeader)
	}
	if err := s.PINs.Use(c.Request().Context(), v.ID, p, operation, source(c)); err != nil {
		return s.pinRefused(c, v, operation, err)
	}
	return nil
}

// pinRefused answers a PIN the store did not accept. Every wrong PIN is
// logged with who sent it; a locked vault is 429 pin_locked with
// Retry-After, and the try that locked it raises the critical alert that
// names the sources, so guessing is neither quiet nor unbounded.
func (s *server) pinRefused(c echo.Context, v wire.Vault, operation string, err error) error {
	var le *pin.LockedError
	switch {
	case errors.As(err, &le):
		wait := le.RetryAfter(s.Now())
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		s.Log.Warn("security PIN refused: the vault is locked after wrong PINs", "vault", v.ID, "source", source(c), "operation", operation, "until", le.Until, "started", le.Started)
		if le.Started {
			s.raise(context.WithoutCancel(c.Request().Context()), wire.Alert{VaultID: v.ID, VaultName: v.Name,
				MachineID: machine(c).ID, MachineName: machine(c).Name,
				Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
				Title: fmt.Sprintf("%d wrong security PINs for vault %s: PINs locked", le.Failures, v.Name),
				Detail: fmt.Sprintf("%d wrong security PINs were sent for vault %s within %s, the last to %s. Every outstanding PIN of the vault is void and PINs are refused until %s.\nSent by:\n- %s\n"+
					"If nobody on your team was typing PINs, treat this as an attack: remove the access of the principals named above (or the machines: stop their protection and rotate their keys) before generating a new PIN.",
					le.Failures, v.Name, pin.FailureWindow, operation, le.Until.UTC().Format(time.RFC1123), strings.Join(le.Sources, "\n- "))})
		}
		return &httpError{http.StatusTooManyRequests, wire.Error{Code: wire.CodePINLocked,
			Message: fmt.Sprintf("%v (retry in %s)", le, wait)}}
	case errors.Is(err, pin.ErrInvalid):
		s.Log.Warn("security PIN not accepted", "vault", v.ID, "source", source(c), "operation", operation, "err", err)
	}
	return err
}

// bodyPIN is where a handler puts a PIN its request carried in the body
// (wire.AssignPolicy.PIN) instead of the header.
const bodyPIN = "coffer.body-pin"

// requestPIN is the request's PIN: the header's, or else the body's.
func requestPIN(c echo.Context) string {
	if p := c.Request().Header.Get(wire.PINHeader); p != "" {
		return p
	}
	p, _ := c.Get(bodyPIN).(string)
	return p
}

// source names who sent a request, for the PIN store's record of wrong PINs.
func source(c echo.Context) string {
	if m := machine(c); m.ID != "" {
		return "machine " + m.Name + " (" + m.ID + ")"
	}
	return principal(c).Name
}
