package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

func queryTime(c echo.Context, name string) (time.Time, error) {
	v := c.QueryParam(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter %s must be an RFC 3339 time such as 2026-11-22T10:00:00Z", name)
	}
	return t, nil
}

func queryLimit(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter limit must be a whole number from 1 to 1000")
	}
	return n, nil
}
