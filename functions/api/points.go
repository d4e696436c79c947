package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/shared/wire"
)

func (s *server) listPoints(c echo.Context) error {
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	withDeleted := c.QueryParam("deleted") == "include"
	// A machine has at most points.MaxPoints, so the default page is all.
	limit, after, err := page(c, points.MaxPoints, points.MaxPoints)
	if err != nil {
		return err
	}
	if after != "" && !validPointKey(after) {
		return badContinuation()
	}
	ps, err := s.Points.List(c.Request().Context(), m.ID, withDeleted)
	if err != nil {
		return err
	}
	slices.SortFunc(ps, func(a, b wire.Point) int { return strings.Compare(pointKey(a), pointKey(b)) })
	ps, next := cut(ps, pointKey, after, limit)
	if next != "" {
		c.Response().Header().Set(ContinuationHeader, next)
	}
	if ps == nil {
		ps = []wire.Point{}
	}
	return c.JSON(http.StatusOK, ps)
}

func (s *server) deletePoint(c echo.Context) error {
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
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	p, err := s.Points.Undelete(c.Request().Context(), m.ID, c.Param("point"))
	if errors.Is(err, points.ErrNotFound) {
		return fail(http.StatusNotFound, wire.CodeNotFound, "recovery point %s is gone: it was purged %s after it was deleted, or never existed", c.Param("point"), days(s.SoftDelete))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// days renders a soft-delete period as admins set it, in whole days.
func days(d time.Duration) string {
	n := int(d.Round(24*time.Hour) / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

// pointKey orders points as List does, by server time, then ID: the time
// in a fixed-width form (so text order is time order) and the ID.
func pointKey(p wire.Point) string {
	return p.Time.UTC().Format(pointKeyTime) + "_" + p.ID
}

const pointKeyTime = "20060102T150405.000000000Z"

func validPointKey(k string) bool {
	t, id, ok := strings.Cut(k, "_")
	if !ok || points.CheckID(id) != nil {
		return false
	}
	_, err := time.Parse(pointKeyTime, t)
	return err == nil
}
