package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

// UsageStore is what the API needs of the storage history: *usage.Store.
type UsageStore interface {
	// Since returns a machine's daily samples from since's UTC day on,
	// oldest first.
	Since(ctx context.Context, machineID string, since time.Time) ([]wire.UsageSample, error)
}

// DefaultUsageDays is the history GET .../usage answers without ?days=.
const DefaultUsageDays = 30

// machineUsage answers a machine's storage over the last N days (?days=,
// 1 to wire.MaxUsageDays, default 30, today included): one sample a day,
// oldest first, as the MonitorBackups timer recorded them. A day the timer
// did not run has no sample; the current size is the machine's
// item.storageBytes.
func (s *server) machineUsage(c echo.Context) error {
	days := DefaultUsageDays
	if q := c.QueryParam("days"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > wire.MaxUsageDays {
			return fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter days must be a whole number from 1 to %d", wire.MaxUsageDays)
		}
		days = n
	}
	_, m, err := s.vaultMachine(c)
	if err != nil {
		return err
	}
	out := []wire.UsageSample{}
	if s.Usage != nil {
		since := s.Now().UTC().AddDate(0, 0, -(days - 1))
		got, err := s.Usage.Since(c.Request().Context(), m.ID, since)
		if err != nil {
			return err
		}
		out = append(out, got...)
	}
	return c.JSON(http.StatusOK, out)
}
