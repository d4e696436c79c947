package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Errors a client can act on map to their status; a store that lost every
// race to other writers is "retry", never a server fault.
func TestClassifyStoreErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("record point: %w: %w", points.ErrContended, errors.New("412")), http.StatusServiceUnavailable, wire.CodeUnavailable},
		{fmt.Errorf("x: %w", points.ErrNotFound), http.StatusNotFound, wire.CodeNotFound},
		{fmt.Errorf("x: %w", points.ErrLimit), http.StatusConflict, wire.CodeConflict},
		{errors.New("something else"), 0, ""},
	} {
		he := classify(tc.err)
		switch {
		case tc.status == 0 && he != nil:
			t.Errorf("%v: classified as %d %s, want unclassified", tc.err, he.status, he.body.Code)
		case tc.status != 0 && (he == nil || he.status != tc.status || he.body.Code != tc.code):
			t.Errorf("%v: got %+v, want %d %s", tc.err, he, tc.status, tc.code)
		}
	}
}

// Right after a deployment storage may refuse the control plane's identity
// for minutes: the answer says so and asks for a retry, never 500.
func TestStorageRefusingTheControlPlaneIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("list vaults: %w", &azcore.ResponseError{StatusCode: http.StatusForbidden, ErrorCode: "AuthorizationPermissionMismatch"}), http.StatusServiceUnavailable},
		{fmt.Errorf("list vaults: %w", &azcore.ResponseError{StatusCode: http.StatusServiceUnavailable}), http.StatusServiceUnavailable},
		{errors.New("a bug"), http.StatusInternalServerError},
	} {
		e := echo.New()
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/api/v1/vaults", nil), rec)
		s := &server{Deps{Log: slog.New(slog.DiscardHandler)}}
		s.handleError(tc.err, c)
		if rec.Code != tc.status {
			t.Errorf("%v: answered %d %s, want %d", tc.err, rec.Code, rec.Body, tc.status)
		}
	}
}
