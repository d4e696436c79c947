package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/approvals"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Multi-user authorization. In a vault with it on, every check that would
// take a security PIN (usePIN: the protection rules' PIN, a point's
// deletion, a passphrase change, the retention guard) and turning the
// setting off instead store the whole request as an approval request and
// answer 202. A Backup Security Admin who is not the requester approves it
// within the time limit, and the stored request then runs through its own
// route's handler as the requester sent it, once (the decision is written
// under the row's ETag), with its checks satisfied by the approval. The
// handler checks everything else again, so an approval of a request that
// no longer applies (the machine was undeleted meanwhile, say) is recorded
// as failed, not forced through.

// ApprovalStore is what the API needs of multi-user authorization
// requests: *approvals.Store.
type ApprovalStore interface {
	Create(ctx context.Context, r approvals.Request) (approvals.Stored, error)
	Get(ctx context.Context, vaultID, id string) (approvals.Stored, error)
	List(ctx context.Context, vaultID, status string, limit int) ([]wire.Approval, error)
	Decide(ctx context.Context, vaultID, id, by string, approve bool, note string) (approvals.Stored, error)
	Finish(ctx context.Context, vaultID, id string, res wire.ApprovalResult) (approvals.Stored, error)
}

// errPending is returned once needApproval has answered 202 with the new
// request: the handler stops, and handleError sees the answer committed.
var errPending = errors.New("the operation waits for a Backup Security Admin's approval")

const (
	approvedKey = "coffer.approved" // the approval a replayed request runs under
	rawBodyKey  = "coffer.raw-body" // the body as received, for the request's record
)

// approvedRun marks a request replayed under an approval.
type approvedRun struct{ vaultID, id string }

// needApproval lets a request replayed under an approval of vault v
// through; any other request becomes an approval request, answered 202.
func (s *server) needApproval(c echo.Context, v wire.Vault, operation string) error {
	if run, ok := c.Get(approvedKey).(*approvedRun); ok && run.vaultID == v.ID {
		return nil
	}
	if s.Approvals == nil {
		return fmt.Errorf("vault %s has multi-user authorization on but this control plane has no approval store", v.ID)
	}
	req := c.Request()
	body, _ := c.Get(rawBodyKey).([]byte)
	if c.Get(rawBodyKey) == nil {
		body, _ = c.Get(fmt.Sprint(bodyKey)).([]byte) // an agent's body, read by its guard
	}
	body, err := withoutPIN(body)
	if err != nil {
		return err
	}
	r := approvals.Request{VaultID: v.ID, Operation: operation, Method: req.Method,
		Path: strings.TrimPrefix(req.URL.Path, wire.Version), Body: body, Reason: req.Header.Get(wire.ReasonHeader),
		RequestedBy: source(c), Rank: int(principal(c).Role), Machine: machine(c).ID}
	a, err := s.Approvals.Create(req.Context(), r)
	if err != nil {
		return err
	}
	s.Log.Warn("operation waits for approval", "vault", v.ID, "approval", a.ID, "operation", operation, "by", r.RequestedBy)
	s.raise(context.WithoutCancel(req.Context()), wire.Alert{VaultID: v.ID, VaultName: v.Name, MachineID: machine(c).ID, MachineName: machine(c).Name,
		Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title: "Approval requested in vault " + v.Name + ": " + operation,
		Detail: fmt.Sprintf("%s asked to %s (%s %s%s).\nReason given: %s\nNothing happens unless a Backup Security Admin other than %s approves request %s before %s "+
			"(coffer admin approvals approve %s %s). If nobody on your team asked for this, reject it (coffer admin approvals reject %s %s) and remove the requester's access.",
			r.RequestedBy, operation, r.Method, wire.Version, r.Path, orNone(a.Reason), r.RequestedBy, a.ID, a.ExpiresAt.UTC().Format(time.RFC1123),
			v.Name, a.ID, v.Name, a.ID)})
	c.Response().Header().Set(wire.ApprovalHeader, a.ID)
	c.Response().Header().Set("Location", wire.Version+"/vaults/"+v.ID+"/approvals/"+a.ID)
	if err := c.JSON(http.StatusAccepted, a.Approval); err != nil {
		return err
	}
	return errPending
}

func orNone(s string) string {
	if s == "" {
		return "(none; send one in the " + wire.ReasonHeader + " header)"
	}
	return s
}

// maxStoredBody bounds the body a request stores: a Table property holds
// 32K UTF-16 characters, and the bodies of operations that need a PIN (a
// policy, a stop) are a few kilobytes.
const maxStoredBody = 30000

// withoutPIN drops a "pin" a body carried (wire.AssignPolicy): a request
// never stores a PIN, and runs without one. A body that is not JSON is one
// its handler never reads (an agent's passphrase change), so none is kept.
func withoutPIN(body []byte) ([]byte, error) {
	if len(bytes.TrimSpace(body)) == 0 || !json.Valid(body) {
		return nil, nil
	}
	if len(body) > maxStoredBody {
		return nil, fail(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "a request that needs an approval carries at most %d bytes", maxStoredBody)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body, nil
	}
	if _, ok := m["pin"]; !ok {
		return body, nil
	}
	delete(m, "pin")
	return json.Marshal(m)
}

func (s *server) listApprovals(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	status := c.QueryParam("status")
	switch status {
	case "", wire.ApprovalPending, wire.ApprovalApproved, wire.ApprovalExecuted, wire.ApprovalFailed, wire.ApprovalRejected, wire.ApprovalExpired:
	default:
		return fail(http.StatusBadRequest, wire.CodeValidation, "status must be pending, approved, executed, failed, rejected or expired")
	}
	limit := 0
	if l := c.QueryParam("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 1000 {
			return fail(http.StatusBadRequest, wire.CodeValidation, "limit must be a number from 1 to 1000")
		}
	}
	as, err := s.Approvals.List(ctx, v.ID, status, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, as)
}

func (s *server) getApproval(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	a, err := s.Approvals.Get(ctx, v.ID, c.Param("approval"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.Approval)
}

func (s *server) approve(c echo.Context) error { return s.decide(c, true) }
func (s *server) reject(c echo.Context) error  { return s.decide(c, false) }

// decide approves or rejects; an approved request runs at once.
func (s *server) decide(c echo.Context, approve bool) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var d wire.ApprovalDecision
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decode(body, &d); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	by := principal(c).Name
	a, err := s.Approvals.Decide(ctx, v.ID, c.Param("approval"), by, approve, d.Note)
	if err != nil {
		return err
	}
	// From here on the decision is stored: finish whatever the client does.
	ctx = context.WithoutCancel(ctx)
	verb := "rejected"
	if approve {
		verb = "approved"
	}
	s.Log.Warn("approval request "+verb, "vault", v.ID, "approval", a.ID, "operation", a.Operation, "requestedBy", a.RequestedBy, "by", by)
	alert := wire.Alert{VaultID: v.ID, VaultName: v.Name, Severity: wire.SeverityCritical, Kind: wire.AlertCriticalOperation,
		Title: "Approval " + verb + " in vault " + v.Name + ": " + a.Operation,
		Detail: fmt.Sprintf("%s %s request %s by %s to %s.\nReason given: %s\nNote: %s", by, verb, a.ID, a.RequestedBy, a.Operation,
			orNone(a.Reason), orDash(d.Note))}
	if !approve {
		s.raise(ctx, alert)
		return c.JSON(http.StatusOK, a.Approval)
	}
	res := s.run(ctx, a)
	done, err := s.Approvals.Finish(ctx, v.ID, a.ID, res)
	if err != nil {
		return err
	}
	if res.Status < 300 {
		alert.Detail += "\nThe operation ran."
	} else {
		alert.Detail += fmt.Sprintf("\nThe operation was refused when it ran (%d %s): %s", res.Status, res.Code, res.Message)
	}
	s.raise(ctx, alert)
	return c.JSON(http.StatusOK, done.Approval)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// run executes an approved request through its route's handler, as its
// requester sent it, and returns what it answered.
func (s *server) run(ctx context.Context, a approvals.Stored) wire.ApprovalResult {
	rt, names, values, ok := findRoute(a.Method, a.Path)
	if !ok || rt.who.public {
		return wire.ApprovalResult{Status: http.StatusBadRequest, Code: wire.CodeBadRequest, Message: "the request names no route that needs an approval"}
	}
	req, err := http.NewRequestWithContext(ctx, a.Method, wire.Version+a.Path, bytes.NewReader(a.Body))
	if err != nil {
		return wire.ApprovalResult{Status: http.StatusBadRequest, Code: wire.CodeBadRequest, Message: err.Error()}
	}
	if len(a.Body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c := echo.New().NewContext(req, rec)
	c.SetPath(wire.Version + rt.path)
	c.SetParamNames(names...)
	c.SetParamValues(values...)
	c.Set(approvedKey, &approvedRun{vaultID: a.VaultID, id: a.ID})
	if rt.who.agent {
		m, err := s.Registry.Machine(ctx, a.Machine)
		if err != nil {
			return result(s, err)
		}
		c.Set(fmt.Sprint(machineKey), m)
		c.Set(fmt.Sprint(bodyKey), []byte(a.Body))
	} else {
		c.Set(fmt.Sprint(principalKey), Principal{Name: a.RequestedBy, Role: Role(a.Rank)})
	}
	if err := rt.handle(s, c); err != nil {
		return result(s, err)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return wire.ApprovalResult{Status: rec.status}
}

func result(s *server, err error) wire.ApprovalResult {
	if errors.Is(err, errPending) {
		return wire.ApprovalResult{Status: http.StatusConflict, Code: wire.CodeConflict, Message: "the operation asked for another approval"}
	}
	if he := classify(err); he != nil {
		return wire.ApprovalResult{Status: he.status, Code: he.body.Code, Message: he.body.Message}
	}
	s.Log.Error("approved operation failed", "err", err)
	return wire.ApprovalResult{Status: http.StatusInternalServerError, Code: wire.CodeInternal, Message: "the operation failed inside the control plane; see its log"}
}

// replayable is the route table as run sees it: set in init, since the
// table names the handlers that run it.
var replayable []route

func init() { replayable = routes }

// findRoute matches a concrete path under wire.Version to the route table.
func findRoute(method, path string) (route, []string, []string, bool) {
	segs := strings.Split(path, "/")
	for _, r := range replayable {
		if r.method != method {
			continue
		}
		tsegs := strings.Split(r.path, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		var names, values []string
		ok := true
		for i, t := range tsegs {
			switch {
			case strings.HasPrefix(t, ":"):
				names, values = append(names, t[1:]), append(values, segs[i])
			case t != segs[i]:
				ok = false
			}
		}
		if ok {
			return r, names, values, true
		}
	}
	return route{}, nil, nil, false
}

// recorder keeps what a replayed handler answered.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) { r.status = status }
