package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/shared/wire"
)

// Listings that can grow large (a vault's machines, a machine's points) are
// paged: ?limit=N gives at most N items, and when more remain the answer
// carries their continuation token in ContinuationHeader, which the next
// request passes as ?continuation=. The body stays a JSON array, so a
// client that never pages gets the same answer as before, up to the
// default page.
const (
	ContinuationHeader = "X-Coffer-Continuation"
	maxPage            = 1000
)

// page reads ?limit (1 to max, def when absent) and ?continuation.
func page(c echo.Context, def, max int) (limit int, after string, err error) {
	limit = def
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, "", fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter limit must be a whole number from 1 to %d", max)
		}
		limit = n
	}
	return limit, c.QueryParam("continuation"), nil
}

// cut returns the items after the one whose key is after (all if after is
// ""), at most limit of them, and the continuation token when more remain.
// items must be sorted by key.
func cut[T any](items []T, key func(T) string, after string, limit int) ([]T, string) {
	start := 0
	if after != "" {
		for start < len(items) && key(items[start]) <= after {
			start++
		}
	}
	items = items[start:]
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], key(items[limit-1])
}

func badContinuation() error {
	return fail(http.StatusBadRequest, wire.CodeBadRequest, "query parameter continuation is not a token this listing gave; start again without it")
}
