// Package approvals keeps multi-user authorization requests in Table
// storage and decides them: an operation that needs a security PIN, asked
// for in a vault with multi-user authorization on, is stored as a request
// (who asked, what exactly, why) and runs only once a Backup Security
// Admin who is not the requester approves it within the time limit.
//
// Table approvals: PartitionKey vault ID, RowKey the inverted request time
// and a random suffix, so a vault's newest requests come first. Each
// decision is written under the row's ETag, so of two concurrent
// approvals exactly one wins and the operation runs once.
package approvals

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// DefaultTTL is how long a request waits for a decision (COFFER_APPROVAL_TTL).
const DefaultTTL = 24 * time.Hour

// MaxReason bounds the requester's and approver's words.
const MaxReason = 1000

// Errors the API maps to answers; each is wrapped with what to do.
var (
	ErrNotFound = errors.New("no such approval request")
	ErrInvalid  = errors.New("invalid approval request")
	ErrDecided  = errors.New("approval request already decided")
	ErrExpired  = errors.New("approval request expired")
	ErrSelf     = errors.New("the requester cannot decide its own request")
)

// Store keeps the requests.
type Store struct {
	t   *aztables.Client
	now func() time.Time
	// TTL is how long a request can be approved after it was made.
	TTL time.Duration
}

// New uses the approvals table of svc.
func New(svc *aztables.ServiceClient, now func() time.Time, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{t: svc.NewClient("approvals"), now: now, TTL: ttl}
}

// EnsureTable creates the table if it is missing.
func (s *Store) EnsureTable(ctx context.Context) error { return tables.Ensure(ctx, s.t) }

type entity struct {
	PartitionKey  string
	RowKey        string
	Operation     string
	Method        string
	Path          string
	Body          string
	Reason        string
	RequestedBy   string
	RequesterRank int // the requester's rank, so the operation runs with what the requester held
	Machine       string
	RequestedAt   string
	ExpiresAt     string
	Status        string
	DecidedBy     string
	DecidedAt     string
	Note          string
	ResultStatus  int
	ResultCode    string
	ResultMsg     string
}

// Request is what the API stores for a new request.
type Request struct {
	VaultID   string
	Operation string
	Method    string
	Path      string
	Body      []byte
	Reason    string
	// RequestedBy names the requester's session (an admin principal, or
	// "machine NAME (ID)"); Rank is its admin rank; Machine the signing
	// machine's ID for an agent's request.
	RequestedBy string
	Rank        int
	Machine     string
}

// Stored is a request with what only the control plane needs to run it.
type Stored struct {
	wire.Approval
	Rank    int
	Machine string
}

func (e *entity) stored(now time.Time) Stored {
	a := wire.Approval{ID: e.RowKey, VaultID: e.PartitionKey, Operation: e.Operation, Method: e.Method, Path: e.Path,
		Reason: e.Reason, RequestedBy: e.RequestedBy, RequestedAt: tables.ParseTime(e.RequestedAt),
		ExpiresAt: tables.ParseTime(e.ExpiresAt), Status: e.Status, DecidedBy: e.DecidedBy, Note: e.Note}
	if e.Body != "" {
		a.Body = json.RawMessage(e.Body)
	}
	if e.DecidedAt != "" {
		t := tables.ParseTime(e.DecidedAt)
		a.DecidedAt = &t
	}
	if e.ResultStatus != 0 {
		a.Result = &wire.ApprovalResult{Status: e.ResultStatus, Code: e.ResultCode, Message: e.ResultMsg}
	}
	// Expiry is read, never written: nothing has to run for a request to
	// lapse.
	if a.Status == wire.ApprovalPending && !now.Before(a.ExpiresAt) {
		a.Status = wire.ApprovalExpired
	}
	return Stored{Approval: a, Rank: e.RequesterRank, Machine: e.Machine}
}

func clean(s string) (string, error) {
	if len(s) > MaxReason {
		return "", fmt.Errorf("%w: a reason or note is at most %d bytes", ErrInvalid, MaxReason)
	}
	for _, c := range s {
		if c < 0x20 && c != '\n' || c == 0x7f {
			return "", fmt.Errorf("%w: a reason or note must not contain control characters", ErrInvalid)
		}
	}
	return strings.TrimSpace(s), nil
}

// Create stores a new pending request.
func (s *Store) Create(ctx context.Context, r Request) (Stored, error) {
	if err := tables.CheckID("vault", r.VaultID); err != nil {
		return Stored{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	reason, err := clean(r.Reason)
	if err != nil {
		return Stored{}, err
	}
	now := s.now().UTC()
	var b [4]byte
	rand.Read(b[:])
	e := entity{PartitionKey: r.VaultID, RowKey: tables.Inverted(now) + "-" + hex.EncodeToString(b[:]),
		Operation: r.Operation, Method: r.Method, Path: r.Path, Body: string(r.Body), Reason: reason,
		RequestedBy: r.RequestedBy, RequesterRank: r.Rank, Machine: r.Machine,
		RequestedAt: tables.Time(now), ExpiresAt: tables.Time(now.Add(s.TTL)), Status: wire.ApprovalPending}
	if err := tables.Add(ctx, s.t, &e); err != nil {
		return Stored{}, fmt.Errorf("store approval request: %w", err)
	}
	return e.stored(now), nil
}

func (s *Store) get(ctx context.Context, vaultID, id string) (*entity, azcore.ETag, error) {
	if tables.CheckID("vault", vaultID) != nil || tables.CheckID("approval request", id) != nil {
		return nil, "", fmt.Errorf("%w %s in vault %s", ErrNotFound, id, vaultID)
	}
	var e entity
	etag, err := tables.Get(ctx, s.t, vaultID, id, &e)
	if tables.NotFound(err) {
		return nil, "", fmt.Errorf("%w %s in vault %s; list them with GET /api/v1/vaults/%s/approvals", ErrNotFound, id, vaultID, vaultID)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read approval request %s: %w", id, err)
	}
	return &e, etag, nil
}

// Get returns one request.
func (s *Store) Get(ctx context.Context, vaultID, id string) (Stored, error) {
	e, _, err := s.get(ctx, vaultID, id)
	if err != nil {
		return Stored{}, err
	}
	return e.stored(s.now()), nil
}

// List returns a vault's requests, newest first; status "" is all, else
// only those with that status (expiry included).
func (s *Store) List(ctx context.Context, vaultID, status string, limit int) ([]wire.Approval, error) {
	if err := tables.CheckID("vault", vaultID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	es, err := tables.Query[entity](ctx, s.t, "PartitionKey eq '"+vaultID+"'", 0)
	if err != nil {
		return nil, fmt.Errorf("list approval requests: %w", err)
	}
	now := s.now()
	out := []wire.Approval{}
	for i := range es {
		a := es[i].stored(now).Approval
		if status != "" && a.Status != status {
			continue
		}
		out = append(out, a)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// Decide approves or rejects a pending request. It refuses the requester
// (by the name of its session, whatever roles it holds), a request past
// its time limit, and one already decided; the write is conditional on the
// row's ETag, so of concurrent decisions exactly one succeeds and the
// others get ErrDecided. An approved request is returned as approved: the
// caller runs it and records the outcome with Finish.
func (s *Store) Decide(ctx context.Context, vaultID, id, by string, approve bool, note string) (Stored, error) {
	note, err := clean(note)
	if err != nil {
		return Stored{}, err
	}
	for {
		e, etag, err := s.get(ctx, vaultID, id)
		if err != nil {
			return Stored{}, err
		}
		now := s.now().UTC()
		cur := e.stored(now)
		switch {
		case cur.Status == wire.ApprovalExpired:
			return Stored{}, fmt.Errorf("%w: request %s (%s) could be approved until %s; the requester must ask again", ErrExpired, id, e.Operation, cur.ExpiresAt.Format(time.RFC3339))
		case cur.Status != wire.ApprovalPending:
			return Stored{}, fmt.Errorf("%w: request %s was %s by %s", ErrDecided, id, cur.Status, orSomeone(cur.DecidedBy))
		case strings.EqualFold(by, e.RequestedBy):
			return Stored{}, fmt.Errorf("%w: %s asked for %s, so another Backup Security Admin must decide it", ErrSelf, by, e.Operation)
		}
		e.Status, e.DecidedBy, e.DecidedAt, e.Note = wire.ApprovalRejected, by, tables.Time(now), note
		if approve {
			e.Status = wire.ApprovalApproved
		}
		err = tables.Replace(ctx, s.t, e, etag)
		if tables.Changed(err) {
			continue // decided meanwhile: the next read says by whom
		}
		if err != nil {
			return Stored{}, fmt.Errorf("record decision on approval request %s: %w", id, err)
		}
		return e.stored(now), nil
	}
}

func orSomeone(s string) string {
	if s == "" {
		return "someone"
	}
	return s
}

// Finish records what the approved operation answered when it ran.
func (s *Store) Finish(ctx context.Context, vaultID, id string, res wire.ApprovalResult) (Stored, error) {
	for attempt := 0; ; attempt++ {
		e, etag, err := s.get(ctx, vaultID, id)
		if err != nil {
			return Stored{}, err
		}
		if e.Status != wire.ApprovalApproved {
			return Stored{}, fmt.Errorf("%w: request %s is %s, not approved", ErrDecided, id, e.Status)
		}
		e.Status = wire.ApprovalExecuted
		if res.Status >= 300 {
			e.Status = wire.ApprovalFailed
		}
		if len(res.Message) > 2000 {
			res.Message = res.Message[:2000]
		}
		e.ResultStatus, e.ResultCode, e.ResultMsg = res.Status, res.Code, res.Message
		err = tables.Replace(ctx, s.t, e, etag)
		if tables.Changed(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return Stored{}, fmt.Errorf("record outcome of approval request %s: %w", id, err)
		}
		return e.stored(s.now()), nil
	}
}

// InterruptedAfter is how long an approved request may stay without an
// outcome before it counts as interrupted: its operation runs within the
// approving call, in seconds.
const InterruptedAfter = 15 * time.Minute

// KeepDecided is how long a decided or lapsed request is kept, as the
// vault's record of who asked for what and who allowed it.
const KeepDecided = 365 * 24 * time.Hour

// MarkInterrupted finds approved requests decided before cutoff that have
// no outcome (the control plane stopped while it ran them, or before) and
// records them as failed, so they are neither shown as running for ever
// nor run again: whether the operation took effect is for an admin to
// check. It returns the requests it marked.
func (s *Store) MarkInterrupted(ctx context.Context, cutoff time.Time) ([]Stored, error) {
	es, err := tables.Query[entity](ctx, s.t, "Status eq '"+wire.ApprovalApproved+"' and DecidedAt lt '"+tables.Time(cutoff)+"'", 0)
	if err != nil {
		return nil, fmt.Errorf("list approved requests without an outcome: %w", err)
	}
	var out []Stored
	for _, found := range es {
		e, etag, err := s.get(ctx, found.PartitionKey, found.RowKey)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		if e.Status != wire.ApprovalApproved {
			continue // finished meanwhile
		}
		e.Status, e.ResultStatus, e.ResultCode = wire.ApprovalFailed, 500, wire.CodeInterrupted
		e.ResultMsg = "the control plane stopped while it ran the approved operation, or before: check whether it took effect, and ask again if it did not"
		err = tables.Replace(ctx, s.t, e, etag)
		if tables.Changed(err) {
			continue // finished meanwhile; the next sweep looks again if not
		}
		if err != nil {
			return out, fmt.Errorf("record approval request %s as interrupted: %w", e.RowKey, err)
		}
		out = append(out, e.stored(s.now()))
	}
	return out, nil
}

// Sweep deletes requests made before cutoff that are over: rejected,
// executed, failed or lapsed. Pending and approved ones are left to the
// time limit and MarkInterrupted.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	es, err := tables.Query[entity](ctx, s.t, "RequestedAt lt '"+tables.Time(cutoff)+"'", 0)
	if err != nil {
		return 0, fmt.Errorf("list old approval requests: %w", err)
	}
	n := 0
	for _, e := range es {
		if st := e.stored(s.now()).Status; st == wire.ApprovalPending || st == wire.ApprovalApproved {
			continue
		}
		if err := tables.Delete(ctx, s.t, e.PartitionKey, e.RowKey); err != nil { // a missing row is no error
			return n, fmt.Errorf("delete old approval request %s: %w", e.RowKey, err)
		}
		n++
	}
	return n, nil
}
