// Package points records recovery points with the server's time, in Table
// storage: PK machine ID, RK point ID. A machine has at most 9,999 points,
// so its points are one partition read.
package points

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/wire"
)

// SoftDeleteRetention is how long a deleted point can be undeleted unless
// the deployment sets another period (COFFER_SOFT_DELETE_DAYS).
const SoftDeleteRetention = 14 * 24 * time.Hour

var (
	ErrNotFound = errors.New("recovery point not found")
	ErrInvalid  = errors.New("invalid recovery point")
	ErrState    = errors.New("recovery point is not in a state that allows this")
	// ErrContended: other writers on the same machine's points kept
	// winning the race (instances of the control plane side by side).
	ErrContended = errors.New("the machine's recovery points are being changed by other requests")
)

// contended marks the error of a read-and-retry loop that lost every race,
// so the caller is told to retry rather than shown a server fault.
func contended(what string, last error) error {
	if tables.Changed(last) || tables.Exists(last) {
		return fmt.Errorf("%s: %w: %w", what, ErrContended, last)
	}
	return fmt.Errorf("%s: %w", what, last)
}

// Store is the points table.
type Store struct {
	c   *aztables.Client
	now func() time.Time
	// SoftDeleteFor is how long a deleted point stays undeletable.
	SoftDeleteFor time.Duration
	// MaxPoints overrides the limit of points per machine (tests); 0 is
	// MaxPoints.
	MaxPoints int

	locks machineLocks
}

// New uses the "points" table of svc.
func New(svc *aztables.ServiceClient, now func() time.Time) *Store {
	return &Store{c: svc.NewClient("points"), now: now, SoftDeleteFor: SoftDeleteRetention}
}

// EnsureTable creates the table if it is missing.
func (s *Store) EnsureTable(ctx context.Context) error { return tables.Ensure(ctx, s.c) }

type entity struct {
	PartitionKey string
	RowKey       string
	VaultID      string
	Time         string
	JobID        string
	State        string
	DeletedAt    string
	PurgeAfter   string
	RetainUntil  string
	// Suspicious: why the ransomware alarm fired on the point's backup;
	// FalsePositive: who acknowledged that as a false positive.
	Suspicious    string
	FalsePositive string
}

func (e *entity) api() wire.Point {
	p := wire.Point{ID: e.RowKey, MachineID: e.PartitionKey, Time: tables.ParseTime(e.Time), JobID: e.JobID, State: e.State,
		Suspicious: e.Suspicious, FalsePositive: e.FalsePositive}
	if e.RetainUntil != "" {
		ru := tables.ParseTime(e.RetainUntil)
		p.RetainUntil = &ru
	}
	if e.DeletedAt != "" {
		d := tables.ParseTime(e.DeletedAt)
		purge := d.Add(SoftDeleteRetention) // rows written before PurgeAfter was stored
		if e.PurgeAfter != "" {
			purge = tables.ParseTime(e.PurgeAfter)
		}
		p.DeletedAt, p.PurgeAfter = &d, &purge
	}
	return p
}

// CheckID accepts a point ID: 64 lower-case hex digits.
func CheckID(id string) error {
	if !packrefs.ValidID(id) {
		return fmt.Errorf("%w: point ID must be 64 lower-case hex digits", ErrInvalid)
	}
	return nil
}

// AcceptsNew says whether a machine in state may add points: only a
// protected one. A stopped machine keeps its points but adds none until an
// admin resumes protection, so what it holds is what the admin stopped; a
// deleted machine's points are on their way to the purge.
func AcceptsNew(machineName, state string) error {
	switch state {
	case wire.MachineProtected:
		return nil
	case wire.MachineStopped:
		return fmt.Errorf("%w: protection of %s is stopped, so no new point can be added; an admin must resume protection first", ErrState, machineName)
	case wire.MachineDeleted:
		return fmt.Errorf("%w: machine %s's data is deleted, so no new point can be added", ErrState, machineName)
	}
	return fmt.Errorf("%w: machine %s is %q, so no new point can be added", ErrState, machineName, state)
}

// Add records a point at the server's time. Adding the same point again
// (an agent retrying after a lost answer) returns the first record.
func (s *Store) Add(ctx context.Context, vaultID, machineID, pointID, jobID string, retainUntil *time.Time) (wire.Point, error) {
	if err := CheckID(pointID); err != nil {
		return wire.Point{}, err
	}
	e := entity{PartitionKey: machineID, RowKey: pointID, VaultID: vaultID, Time: tables.Time(s.now()), JobID: jobID, State: wire.PointActive}
	if retainUntil != nil {
		if !retainUntil.After(s.now()) || retainUntil.After(s.now().AddDate(99, 0, 0)) {
			return wire.Point{}, fmt.Errorf("%w: retainUntil must be in the future and within 99 years", ErrInvalid)
		}
		e.RetainUntil = tables.Time(*retainUntil)
	}
	max := s.MaxPoints
	if max <= 0 {
		max = MaxPoints
	}
	defer s.locks.lock(machineID)()
	var last error
	for range attempts {
		if p, err := s.Get(ctx, machineID, pointID); err == nil {
			return p, nil
		} else if !errors.Is(err, ErrNotFound) {
			return wire.Point{}, err
		}
		sum, etag, err := s.summary(ctx, machineID)
		if err != nil {
			return wire.Point{}, err
		}
		if sum.Count >= max {
			return wire.Point{}, limitError(machineID, max)
		}
		sum.count(&e, +1)
		a, err := action(aztables.TransactionTypeAdd, &e, "")
		if err != nil {
			return wire.Point{}, err
		}
		if last = s.commit(ctx, a, sum, etag); last == nil {
			return e.api(), nil
		}
	}
	return wire.Point{}, contended("record point", last)
}

// Get returns one point of a machine.
func (s *Store) Get(ctx context.Context, machineID, pointID string) (wire.Point, error) {
	e, _, err := s.get(ctx, machineID, pointID)
	if err != nil {
		return wire.Point{}, err
	}
	return e.api(), nil
}

func (s *Store) get(ctx context.Context, machineID, pointID string) (*entity, string, error) {
	if err := CheckID(pointID); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var e entity
	etag, err := tables.Get(ctx, s.c, machineID, pointID, &e)
	if tables.NotFound(err) {
		return nil, "", fmt.Errorf("%w: machine %s has no point %s", ErrNotFound, machineID, pointID)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read point: %w", err)
	}
	return &e, string(etag), nil
}

// List returns a machine's points, oldest first; soft-deleted ones only
// when withDeleted.
func (s *Store) List(ctx context.Context, machineID string, withDeleted bool) ([]wire.Point, error) {
	if err := tables.CheckID("machine", machineID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	es, err := tables.Query[entity](ctx, s.c, "PartitionKey eq '"+machineID+"' and RowKey lt '~'", 0)
	if err != nil {
		return nil, fmt.Errorf("list points: %w", err)
	}
	out := make([]wire.Point, 0, len(es))
	for i := range es {
		if es[i].State == wire.PointDeleted && !withDeleted {
			continue
		}
		out = append(out, es[i].api())
	}
	slices.SortFunc(out, func(a, b wire.Point) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// SoftDelete marks a point deleted; it is purged 14 days later.
func (s *Store) SoftDelete(ctx context.Context, machineID, pointID string) (wire.Point, error) {
	return s.modify(ctx, machineID, pointID, func(e *entity) error {
		if e.State == wire.PointDeleted {
			return nil
		}
		e.State, e.DeletedAt, e.PurgeAfter = wire.PointDeleted, tables.Time(s.now()), tables.Time(s.now().Add(s.SoftDeleteFor))
		return nil
	})
}

// Undelete returns a soft-deleted point to active, until it is purged.
func (s *Store) Undelete(ctx context.Context, machineID, pointID string) (wire.Point, error) {
	return s.modify(ctx, machineID, pointID, func(e *entity) error {
		if e.State != wire.PointDeleted {
			return fmt.Errorf("%w: point %s is not deleted", ErrState, pointID)
		}
		e.State, e.DeletedAt, e.PurgeAfter = wire.PointActive, "", ""
		return nil
	})
}

// modify changes a point and its machine's summary together.
func (s *Store) modify(ctx context.Context, machineID, pointID string, change func(*entity) error) (wire.Point, error) {
	defer s.locks.lock(machineID)()
	var last error
	for range attempts {
		e, etag, err := s.get(ctx, machineID, pointID)
		if err != nil {
			return wire.Point{}, err
		}
		before := *e
		if err := change(e); err != nil {
			return wire.Point{}, err
		}
		if e.State == before.State {
			return e.api(), nil // nothing the summary counts changed, nor anything else
		}
		sum, setag, err := s.summary(ctx, machineID)
		if err != nil {
			return wire.Point{}, err
		}
		sum.count(&before, -1)
		sum.count(e, +1)
		a, err := action(aztables.TransactionTypeUpdateReplace, e, azETag(etag))
		if err != nil {
			return wire.Point{}, err
		}
		if last = s.commit(ctx, a, sum, setag); last == nil {
			return e.api(), nil
		}
	}
	return wire.Point{}, contended("update point", last)
}

// Remove forgets a point whose objects are gone from storage. A point that
// is already gone is fine.
func (s *Store) Remove(ctx context.Context, machineID, pointID string) error {
	defer s.locks.lock(machineID)()
	var last error
	for range attempts {
		e, etag, err := s.get(ctx, machineID, pointID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		sum, setag, err := s.summary(ctx, machineID)
		if err != nil {
			return err
		}
		sum.count(e, -1)
		a, err := action(aztables.TransactionTypeDelete, e, azETag(etag))
		if err != nil {
			return err
		}
		if last = s.commit(ctx, a, sum, setag); last == nil {
			return nil
		}
	}
	return contended("delete point record", last)
}

// SetRetainUntil changes how long a point is kept past its policy's
// retention: until, or nil for no longer than the policy keeps it. It
// applies only if the point still holds was, the value the caller checked
// (the API asks for a PIN when the change shortens it), so a change made
// meanwhile is never overwritten unchecked: ErrState then.
func (s *Store) SetRetainUntil(ctx context.Context, machineID, pointID string, was, until *time.Time) (wire.Point, error) {
	if until != nil && (!until.After(s.now()) || until.After(s.now().AddDate(99, 0, 0))) {
		return wire.Point{}, fmt.Errorf("%w: retainUntil must be in the future and within 99 years", ErrInvalid)
	}
	defer s.locks.lock(machineID)()
	for range attempts {
		e, etag, err := s.get(ctx, machineID, pointID)
		if err != nil {
			return wire.Point{}, err
		}
		if e.State != wire.PointActive {
			return wire.Point{}, fmt.Errorf("%w: point %s is deleted; undelete it first", ErrState, pointID)
		}
		if cur := e.api().RetainUntil; !sameTime(cur, was) {
			return wire.Point{}, fmt.Errorf("%w: point %s's retainUntil changed meanwhile; read it again", ErrState, pointID)
		}
		e.RetainUntil = ""
		if until != nil {
			e.RetainUntil = tables.Time(*until)
		}
		err = tables.Replace(ctx, s.c, e, azETag(etag))
		switch {
		case err == nil:
			return e.api(), nil
		case tables.Changed(err):
			continue // the point changed: check it again
		default:
			return wire.Point{}, fmt.Errorf("update point %s: %w", pointID, err)
		}
	}
	return wire.Point{}, fmt.Errorf("%w: point %s keeps changing; retry", ErrState, pointID)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// Flag marks a point as possibly holding encrypted files (the ransomware
// alarm fired on its backup), with why, so nobody restores it by mistake.
func (s *Store) Flag(ctx context.Context, machineID, pointID, reason string) (wire.Point, error) {
	if reason == "" {
		return wire.Point{}, fmt.Errorf("%w: a flag needs its reason", ErrInvalid)
	}
	return s.annotate(ctx, machineID, pointID, func(e *entity) { e.Suspicious, e.FalsePositive = reason, "" })
}

// ClearFlag records that an admin acknowledged the alarm on the point as
// a false positive. The reason stays, beside who cleared it.
func (s *Store) ClearFlag(ctx context.Context, machineID, pointID, by string) (wire.Point, error) {
	if by == "" {
		return wire.Point{}, fmt.Errorf("%w: say who acknowledged the false positive", ErrInvalid)
	}
	return s.annotate(ctx, machineID, pointID, func(e *entity) { e.FalsePositive = by })
}

// annotate changes what a point says of itself, not its state, so the
// machine's summary is untouched.
func (s *Store) annotate(ctx context.Context, machineID, pointID string, change func(*entity)) (wire.Point, error) {
	defer s.locks.lock(machineID)()
	for range attempts {
		e, etag, err := s.get(ctx, machineID, pointID)
		if err != nil {
			return wire.Point{}, err
		}
		change(e)
		err = tables.Replace(ctx, s.c, e, azETag(etag))
		switch {
		case err == nil:
			return e.api(), nil
		case tables.Changed(err):
			continue
		default:
			return wire.Point{}, fmt.Errorf("update point %s: %w", pointID, err)
		}
	}
	return wire.Point{}, fmt.Errorf("%w: point %s keeps changing; retry", ErrState, pointID)
}
