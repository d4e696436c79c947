package cpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/shared/wire"
)

// One typed method per route the agent and the admin CLI call, so a path
// is spelt once and every caller gets the same handling of its answer.

// path joins escaped segments under /api/v1, with an optional query.
func path(q url.Values, segs ...string) string {
	var b strings.Builder
	b.WriteString(wire.Version)
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// call sends one request and decodes its answer as a T.
func call[T any](ctx context.Context, c *Client, method, p string, in any, extra ...http.Header) (T, error) {
	var v T
	_, err := c.send(ctx, method, p, in, &v, extra...)
	return v, err
}

// pinHeader is the PIN header, or none for an empty PIN, so the server
// answers pin_required rather than pin_invalid when none was given.
func pinHeader(pin string) []http.Header {
	if pin == "" {
		return nil
	}
	return []http.Header{PIN(pin)}
}

// ---- Registration ----

// Register enrols a machine with the secret of a vault credentials file.
// It needs no token or key: the secret is the authentication.
func (c *Client) Register(ctx context.Context, r wire.Register) (wire.Registration, error) {
	return call[wire.Registration](ctx, c, http.MethodPost, path(nil, "register"), r)
}

// ---- Agent routes, signed with the machine's key ----

// ErrNoPolicy: no policy is assigned to the machine yet.
var ErrNoPolicy = errors.New("no policy is assigned to this machine yet")

// AgentMachine returns the calling machine as the vault knows it.
func (c *Client) AgentMachine(ctx context.Context) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodGet, path(nil, "agent", "machine"), nil)
}

// AgentPolicy returns the machine's policy. With the ETag of the policy
// the caller holds, an unchanged policy answers changed == false and an
// empty document. No policy assigned is an error that errors.Is ErrNoPolicy.
func (c *Client) AgentPolicy(ctx context.Context, etag string) (doc wire.PolicyDoc, changed bool, err error) {
	var extra []http.Header
	if etag != "" {
		extra = append(extra, http.Header{"If-None-Match": {etag}})
	}
	a, err := c.send(ctx, http.MethodGet, path(nil, "agent", "policy"), nil, &doc, extra...)
	switch {
	case Code(err) == wire.CodeNotFound:
		return doc, false, fmt.Errorf("%w: %w", ErrNoPolicy, err)
	case err != nil:
		return doc, false, err
	case a.status == http.StatusNotModified:
		return doc, false, nil
	}
	return doc, true, nil
}

// SAS returns a create, read and list token for the machine's container.
func (c *Client) SAS(ctx context.Context) (wire.SAS, error) {
	return call[wire.SAS](ctx, c, http.MethodPost, path(nil, "agent", "sas"), nil)
}

// StartJob starts a job of the given type on the calling machine.
func (c *Client) StartJob(ctx context.Context, typ string) (wire.Job, error) {
	return call[wire.Job](ctx, c, http.MethodPost, path(nil, "agent", "jobs"), wire.NewJob{Type: typ})
}

// ReportJob reports a job's progress, or its outcome when the status is
// not in_progress.
func (c *Client) ReportJob(ctx context.Context, jobID string, r wire.JobReport) error {
	_, err := c.send(ctx, http.MethodPost, path(nil, "agent", "jobs", jobID), r, nil)
	return err
}

// JobFilter narrows a job list; zero fields filter nothing.
type JobFilter struct {
	Machine string    // machine ID (admin lists only; an agent sees its own)
	Type    string    // a wire.Job* type
	Status  string    // a wire.Status* status
	Since   time.Time // started at or after
	Limit   int       // at most this many; 0 is the server's default
}

func (f JobFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("machine", f.Machine)
	set("type", f.Type)
	set("status", f.Status)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// AgentJobs lists the calling machine's jobs, newest first.
func (c *Client) AgentJobs(ctx context.Context, f JobFilter) ([]wire.Job, error) {
	f.Machine = ""
	return call[[]wire.Job](ctx, c, http.MethodGet, path(f.query(), "agent", "jobs"), nil)
}

// AddPoint registers a completed recovery point; its refs/<id> must be in
// storage.
func (c *Client) AddPoint(ctx context.Context, p wire.NewPoint) error {
	_, err := c.send(ctx, http.MethodPost, path(nil, "agent", "points"), p, nil)
	return err
}

// AgentPoints lists this machine's recovery points, without the
// soft-deleted ones.
func (c *Client) AgentPoints(ctx context.Context) ([]wire.Point, error) {
	return call[[]wire.Point](ctx, c, http.MethodGet, path(nil, "agent", "points"), nil)
}

// AgentPointsWithDeleted lists this machine's recovery points with the
// soft-deleted ones (state "deleted", until their purge). A control plane
// older than this answers without them.
func (c *Client) AgentPointsWithDeleted(ctx context.Context) ([]wire.Point, error) {
	return call[[]wire.Point](ctx, c, http.MethodGet, path(url.Values{"deleted": {"include"}}, "agent", "points"), nil)
}

// ApprovePassphraseChange asks the vault to allow a passphrase change,
// with a security PIN; the vault raises a critical alert.
func (c *Client) ApprovePassphraseChange(ctx context.Context, pin string) error {
	_, err := c.send(ctx, http.MethodPost, path(nil, "agent", "passphrase-change"), nil, nil, pinHeader(pin)...)
	return err
}

// RetireKey has the control plane retire the key file a passphrase change
// replaced (key), so the old passphrase stops working; replacement is the
// key file the new passphrase opens, which the control plane checks first.
func (c *Client) RetireKey(ctx context.Context, key, replacement string) error {
	_, err := c.send(ctx, http.MethodPost, path(nil, "agent", "retire-key"), wire.RetireKey{Key: key, Replacement: replacement}, nil)
	return err
}

// RestoreAccess returns read-only access to another machine's data, which
// an Operator's restore grant allows.
func (c *Client) RestoreAccess(ctx context.Context, source string) (wire.RestoreAccess, error) {
	return call[wire.RestoreAccess](ctx, c, http.MethodPost, path(nil, "agent", "restore-access"), wire.RestoreGrant{Source: source})
}

// ---- Admin routes, with a bearer token ----

// CreateVault creates a vault (Contributor).
func (c *Client) CreateVault(ctx context.Context, v wire.NewVault) (wire.Vault, error) {
	return call[wire.Vault](ctx, c, http.MethodPost, path(nil, "vaults"), v)
}

// Vaults lists the vaults.
func (c *Client) Vaults(ctx context.Context) ([]wire.Vault, error) {
	return call[[]wire.Vault](ctx, c, http.MethodGet, path(nil, "vaults"), nil)
}

// Vault reads one vault by ID.
func (c *Client) Vault(ctx context.Context, vault string) (wire.Vault, error) {
	return call[wire.Vault](ctx, c, http.MethodGet, path(nil, "vaults", vault), nil)
}

// UpdateVault changes the fields u sets (Contributor); turning security
// features off needs a PIN.
func (c *Client) UpdateVault(ctx context.Context, vault string, u wire.VaultUpdate, pin string) (wire.Vault, error) {
	return call[wire.Vault](ctx, c, http.MethodPatch, path(nil, "vaults", vault), u, pinHeader(pin)...)
}

// DeleteVault deletes a vault with no machine left (Contributor and a
// PIN, or an approval where multi-user authorization is on).
func (c *Client) DeleteVault(ctx context.Context, vault, pin string) error {
	_, err := c.send(ctx, http.MethodDelete, path(nil, "vaults", vault), nil, nil, pinHeader(pin)...)
	return err
}

// NewCredentials generates a vault credentials file (Operator); older
// files stop working.
func (c *Client) NewCredentials(ctx context.Context, vault string) (wire.Credentials, error) {
	return call[wire.Credentials](ctx, c, http.MethodPost, path(nil, "vaults", vault, "credentials"), nil)
}

// NewPIN generates a security PIN (Contributor).
func (c *Client) NewPIN(ctx context.Context, vault string) (wire.PIN, error) {
	return call[wire.PIN](ctx, c, http.MethodPost, path(nil, "vaults", vault, "pin"), nil)
}

// Policies lists a vault's policies.
func (c *Client) Policies(ctx context.Context, vault string) ([]wire.PolicyDoc, error) {
	return call[[]wire.PolicyDoc](ctx, c, http.MethodGet, path(nil, "vaults", vault, "policies"), nil)
}

// Policy reads one policy.
func (c *Client) Policy(ctx context.Context, vault, name string) (wire.PolicyDoc, error) {
	return call[wire.PolicyDoc](ctx, c, http.MethodGet, path(nil, "vaults", vault, "policies", name), nil)
}

// PutPolicy creates or replaces a policy (Contributor); p is a
// shared/policy.Policy or its JSON. A change that shortens a machine's
// retention needs a PIN.
func (c *Client) PutPolicy(ctx context.Context, vault, name string, p any, pin string) (wire.PolicyDoc, error) {
	return call[wire.PolicyDoc](ctx, c, http.MethodPut, path(nil, "vaults", vault, "policies", name), p, pinHeader(pin)...)
}

// DeletePolicy deletes a policy no machine follows (Contributor); pin is
// for a deletion the control plane finds shortens retention.
func (c *Client) DeletePolicy(ctx context.Context, vault, name, pin string) error {
	_, err := c.send(ctx, http.MethodDelete, path(nil, "vaults", vault, "policies", name), nil, nil, pinHeader(pin)...)
	return err
}

// Machines lists a vault's machines with their backup items.
func (c *Client) Machines(ctx context.Context, vault string) ([]wire.Machine, error) {
	return call[[]wire.Machine](ctx, c, http.MethodGet, path(nil, "vaults", vault, "machines"), nil)
}

// Machine reads one machine by ID.
func (c *Client) Machine(ctx context.Context, vault, machine string) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodGet, path(nil, "vaults", vault, "machines", machine), nil)
}

// AssignPolicy makes a machine follow a policy (Contributor); a.PIN is
// needed when that shortens the machine's effective retention.
func (c *Client) AssignPolicy(ctx context.Context, vault, machine string, a wire.AssignPolicy) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodPut, path(nil, "vaults", vault, "machines", machine, "policy"), a)
}

// StopProtection stops a machine's backups (Operator), soft-deleting its
// data with DeleteData (Contributor and a PIN).
func (c *Client) StopProtection(ctx context.Context, vault, machine string, s wire.StopProtection, pin string) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "stop"), s, pinHeader(pin)...)
}

// ResumeProtection starts a stopped machine's backups again (Operator).
func (c *Client) ResumeProtection(ctx context.Context, vault, machine string) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "resume"), nil)
}

// UndeleteMachine brings back a machine's soft-deleted data (Contributor);
// protection stays stopped.
func (c *Client) UndeleteMachine(ctx context.Context, vault, machine string) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "undelete"), nil)
}

// GrantRestore lets machine restore source's data for a day (Operator);
// source is the other machine's ID or name.
func (c *Client) GrantRestore(ctx context.Context, vault, machine, source string) (wire.Machine, error) {
	return call[wire.Machine](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "restore-grant"), wire.RestoreGrant{Source: source})
}

// Usage is a machine's storage over the last days days (1 to
// wire.MaxUsageDays; 0 for the server's default of 30), one sample a day,
// oldest first.
func (c *Client) Usage(ctx context.Context, vault, machine string, days int) ([]wire.UsageSample, error) {
	var q url.Values
	if days > 0 {
		q = url.Values{"days": {strconv.Itoa(days)}}
	}
	return call[[]wire.UsageSample](ctx, c, http.MethodGet, path(q, "vaults", vault, "machines", machine, "usage"), nil)
}

// Points lists a machine's recovery points, with the soft-deleted ones
// when withDeleted.
func (c *Client) Points(ctx context.Context, vault, machine string, withDeleted bool) ([]wire.Point, error) {
	var q url.Values
	if withDeleted {
		q = url.Values{"deleted": {"include"}}
	}
	return call[[]wire.Point](ctx, c, http.MethodGet, path(q, "vaults", vault, "machines", machine, "points"), nil)
}

// DeletePoint soft-deletes a recovery point (Contributor and a PIN).
func (c *Client) DeletePoint(ctx context.Context, vault, machine, point, pin string) (wire.Point, error) {
	return call[wire.Point](ctx, c, http.MethodDelete, path(nil, "vaults", vault, "machines", machine, "points", point), nil, pinHeader(pin)...)
}

// UndeletePoint brings back a soft-deleted recovery point (Contributor).
func (c *Client) UndeletePoint(ctx context.Context, vault, machine, point string) (wire.Point, error) {
	return call[wire.Point](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "points", point, "undelete"), nil)
}

// DeletedKeys lists a machine's key files retired by passphrase changes,
// kept in soft delete until their purge date.
func (c *Client) DeletedKeys(ctx context.Context, vault, machine string) ([]wire.DeletedKey, error) {
	return call[[]wire.DeletedKey](ctx, c, http.MethodGet, path(nil, "vaults", vault, "machines", machine, "deleted-keys"), nil)
}

// UndeleteKey puts a retired key file back (Contributor), so the
// passphrase it was written for opens the repository again.
func (c *Client) UndeleteKey(ctx context.Context, vault, machine, key string) (wire.DeletedKey, error) {
	return call[wire.DeletedKey](ctx, c, http.MethodPost, path(nil, "vaults", vault, "machines", machine, "deleted-keys", key, "undelete"), nil)
}

// Jobs lists a vault's jobs, newest first.
func (c *Client) Jobs(ctx context.Context, vault string, f JobFilter) ([]wire.Job, error) {
	return call[[]wire.Job](ctx, c, http.MethodGet, path(f.query(), "vaults", vault, "jobs"), nil)
}

// AlertFilter narrows an alert list; zero fields filter nothing.
type AlertFilter struct {
	Unacknowledged bool // only alerts nobody acknowledged yet
	Limit          int  // at most this many; 0 is the server's default
}

// Alerts lists a vault's alerts, newest first.
func (c *Client) Alerts(ctx context.Context, vault string, f AlertFilter) ([]wire.Alert, error) {
	q := url.Values{}
	if f.Unacknowledged {
		q.Set("acknowledged", "false")
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return call[[]wire.Alert](ctx, c, http.MethodGet, path(q, "vaults", vault, "alerts"), nil)
}

// AckAlert acknowledges an alert (Operator).
func (c *Client) AckAlert(ctx context.Context, vault, alert string) (wire.Alert, error) {
	return call[wire.Alert](ctx, c, http.MethodPost, path(nil, "vaults", vault, "alerts", alert, "acknowledge"), nil)
}

// AckFalsePositive acknowledges a ransomware alarm as a false positive
// (Contributor): its point's flag is cleared and the alarm's baseline
// learns from that backup.
func (c *Client) AckFalsePositive(ctx context.Context, vault, alert string) (wire.Alert, error) {
	return call[wire.Alert](ctx, c, http.MethodPost, path(url.Values{"falsePositive": {"true"}}, "vaults", vault, "alerts", alert, "acknowledge"), nil)
}

// Approvals lists a vault's multi-user authorization requests, newest
// first; status "" lists all, else only pending, executed, rejected, ….
func (c *Client) Approvals(ctx context.Context, vault, status string) ([]wire.Approval, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return call[[]wire.Approval](ctx, c, http.MethodGet, path(q, "vaults", vault, "approvals"), nil)
}

// Approval reads one request and its status.
func (c *Client) Approval(ctx context.Context, vault, id string) (wire.Approval, error) {
	return call[wire.Approval](ctx, c, http.MethodGet, path(nil, "vaults", vault, "approvals", id), nil)
}

// Approve approves a request (Backup Security Admin, never the
// requester); the operation runs at once, and the answer says how it went.
func (c *Client) Approve(ctx context.Context, vault, id, note string) (wire.Approval, error) {
	return call[wire.Approval](ctx, c, http.MethodPost, path(nil, "vaults", vault, "approvals", id, "approve"), wire.ApprovalDecision{Note: note})
}

// Reject rejects a request (Backup Security Admin, never the requester).
func (c *Client) Reject(ctx context.Context, vault, id, note string) (wire.Approval, error) {
	return call[wire.Approval](ctx, c, http.MethodPost, path(nil, "vaults", vault, "approvals", id, "reject"), wire.ApprovalDecision{Note: note})
}
