// Package api is the control plane's HTTP API on echo: the admin routes
// (vaults, credentials, policies, machines, points, jobs, alerts, PINs) and
// the agent routes (registration, then Ed25519-signed requests for policy,
// SAS, jobs and points). Every client mistake is a 4xx with a stable code.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/pin"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// MaxBody bounds every request body; the largest legitimate one, a job
// report with skipped files, fits with room to spare.
const MaxBody = 1 << 20

// Deps are the API's collaborators and settings.
type Deps struct {
	Registry Registry
	Points   PointStore
	PINs     PINStore
	Nonces   NonceStore
	Jobs     JobStore
	Alerts   AlertStore
	SAS      SASIssuer
	Blobs    Blobs
	Auth     Authenticator
	Now      func() time.Time
	Log      *slog.Logger

	// What a credentials file tells an agent.
	PublicURL    string
	KeyVaultURL  string
	BlobEndpoint string
	TenantID     string

	// SoftDelete is how long deleted data stays undeletable
	// (COFFER_SOFT_DELETE_DAYS), for the messages that name it; 0 means
	// registry.SoftDeleteRetention.
	SoftDelete time.Duration

	// Health returns the last check of each dependency for /health; nil
	// reports none.
	Health func() map[string]Dependency

	// KeyVaultGrants assigns a registering machine's Key Vault identity its
	// role on its own passphrase secret; nil leaves that to an admin.
	KeyVaultGrants KeyVaultGranter

	// Approvals keeps multi-user authorization requests; nil refuses
	// every operation that needs one.
	Approvals ApprovalStore

	// Usage is the history of each machine's storage (usage.go); nil
	// answers an empty history.
	Usage UsageStore
}

type server struct{ Deps }

// New builds the echo server with every route.
func New(d Deps) *echo.Echo {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.SoftDelete <= 0 {
		d.SoftDelete = registry.SoftDeleteRetention
	}
	s := &server{d}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(middleware.BodyLimit(fmt.Sprint(MaxBody)))

	s.addRoutes(e)
	return e
}

// httpError carries a status and an API error through echo.
type httpError struct {
	status int
	body   wire.Error
}

func (e *httpError) Error() string { return e.body.Message }

func fail(status int, code, format string, args ...any) error {
	return &httpError{status: status, body: wire.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// classify maps the stores' errors to answers; anything unknown is the
// server's fault and is logged, not shown.
func classify(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	msg := err.Error()
	switch {
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, points.ErrNotFound), errors.Is(err, jobs.ErrNotFound), errors.Is(err, alerts.ErrNotFound):
		return &httpError{http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: msg}}
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, points.ErrInvalid), errors.Is(err, jobs.ErrInvalid), errors.Is(err, alerts.ErrInvalid):
		return &httpError{http.StatusBadRequest, wire.Error{Code: wire.CodeValidation, Message: msg}}
	case errors.Is(err, registry.ErrConflict), errors.Is(err, points.ErrState), errors.Is(err, points.ErrLimit):
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodeConflict, Message: msg}}
	case errors.Is(err, approvals.ErrNotFound):
		return &httpError{http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: msg}}
	case errors.Is(err, approvals.ErrInvalid):
		return &httpError{http.StatusBadRequest, wire.Error{Code: wire.CodeValidation, Message: msg}}
	case errors.Is(err, approvals.ErrSelf):
		return &httpError{http.StatusForbidden, wire.Error{Code: wire.CodeForbidden, Message: msg}}
	case errors.Is(err, approvals.ErrExpired):
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodeApprovalExpired, Message: msg}}
	case errors.Is(err, approvals.ErrDecided):
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodeApprovalDecided, Message: msg}}
	case errors.Is(err, jobs.ErrFinished):
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodeJobFinished, Message: msg}}
	case errors.Is(err, pin.ErrInvalid):
		return &httpError{http.StatusForbidden, wire.Error{Code: wire.CodePINInvalid, Message: msg}}
	case errors.Is(err, pin.ErrLocked):
		return &httpError{http.StatusTooManyRequests, wire.Error{Code: wire.CodePINLocked, Message: msg}}
	case errors.Is(err, containers.ErrNoSuchKey), errors.Is(err, containers.ErrLastKey), errors.Is(err, containers.ErrBadReplacement):
		return &httpError{http.StatusConflict, wire.Error{Code: wire.CodeConflict, Message: msg}}
	case errors.Is(err, containers.ErrNotDeleted):
		return &httpError{http.StatusNotFound, wire.Error{Code: wire.CodeNotFound, Message: msg}}
	case errors.Is(err, containers.ErrBusy):
		return &httpError{http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable, Message: msg}}
	case errors.Is(err, jobs.ErrBusy), errors.Is(err, points.ErrContended):
		return &httpError{http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable, Message: msg + "; retry in a few seconds"}}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &httpError{http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable, Message: "the request timed out inside the control plane; retry"}}
	}
	return nil
}

func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	he := classify(err)
	var ee *echo.HTTPError
	switch {
	case he != nil:
	case errors.As(err, &ee):
		he = &httpError{status: ee.Code, body: wire.Error{Code: echoCode(ee.Code), Message: echoMessage(ee)}}
	default:
		s.Log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		he = &httpError{http.StatusInternalServerError, wire.Error{Code: wire.CodeInternal,
			Message: "the control plane could not complete the request; retry, and if it keeps failing see the control plane's log"}}
		switch {
		case unavailable(err):
			he = &httpError{http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable,
				Message: "a storage service the control plane depends on did not answer; retry later"}}
		case storageRefused(err):
			he = &httpError{http.StatusServiceUnavailable, wire.Error{Code: wire.CodeUnavailable,
				Message: "storage refused the control plane's identity; right after a deployment its role assignments may still be spreading, so retry in a few minutes, and if it lasts see GET " + wire.Version + "/health"}}
		}
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(he.status)
		return
	}
	c.JSON(he.status, he.body)
}

func echoCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return wire.CodeNotFound
	case http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case http.StatusUnauthorized:
		return wire.CodeUnauthenticated
	case http.StatusForbidden:
		return wire.CodeForbidden
	}
	if status >= 500 {
		return wire.CodeInternal
	}
	return wire.CodeBadRequest
}

func echoMessage(e *echo.HTTPError) string {
	switch e.Code {
	case http.StatusNotFound:
		return "no such route; the API lives under " + wire.Version
	case http.StatusMethodNotAllowed:
		return "this route does not accept that method"
	case http.StatusRequestEntityTooLarge:
		return fmt.Sprintf("the request body is larger than %d bytes", MaxBody)
	}
	return fmt.Sprint(e.Message)
}

// decode reads a JSON body strictly: one value, known fields only.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "the request needs a JSON body")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "the JSON body is not valid: %s", jsonProblem(err))
	}
	if _, err := d.Token(); err != io.EOF {
		return fail(http.StatusBadRequest, wire.CodeBadRequest, "the body must hold exactly one JSON value")
	}
	return nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be a %s, not a %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// readBody returns the body; BodyLimit has already bounded it.
func readBody(c echo.Context) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.Request().Body, MaxBody+1))
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
		err, b = nil, make([]byte, MaxBody+1)
	}
	if err != nil {
		return nil, fail(http.StatusBadRequest, wire.CodeBadRequest, "could not read the request body: %v", err)
	}
	if len(b) > MaxBody {
		return nil, fail(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "the request body is larger than %d bytes", MaxBody)
	}
	c.Set(rawBodyKey, b) // what an approval request records
	return b, nil
}

func bind(c echo.Context, v any) error {
	b, err := readBody(c)
	if err != nil {
		return err
	}
	return decode(b, v)
}
