package points

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// MaxPoints is how many recovery points a machine may have, soft-deleted
// ones included until they are purged: MARS's limit. It keeps a machine's
// partition, and so every listing of it, bounded.
const MaxPoints = 9999

// ErrLimit: the machine has MaxPoints points.
var ErrLimit = errors.New("too many recovery points")

// summaryKey is the row key of each machine's summary row. '~' sorts after
// every hex digit, so the row is last in the partition, and it is never a
// valid point ID.
const summaryKey = "~summary"

// summaryEntity counts a machine's points, and every write of a point
// updates it in the same entity group transaction, so the count is exact
// under concurrent writers: the limit holds and a machine listing reads one
// row per machine instead of all its points.
type summaryEntity struct {
	PartitionKey string
	RowKey       string
	Count        int    // every point record, soft-deleted ones included
	Active       int    // active points
	Oldest       string // active points' oldest and latest times (tables.Time)
	Latest       string
	// Stale: an active point at Oldest or Latest went, so those two need a
	// recount, done by the next reader that needs them.
	Stale bool
}

// Summary is what a machine listing shows of its points.
type Summary struct {
	Count          int // every point record, soft-deleted ones included
	Active         int
	Oldest, Latest *time.Time // of active points; nil without any
}

// Summary returns a machine's point counts and oldest and latest active
// points, from its summary row: one read, whatever the number of points.
func (s *Store) Summary(ctx context.Context, machineID string) (Summary, error) {
	if err := tables.CheckID("machine", machineID); err != nil {
		return Summary{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	sum, etag, err := s.summary(ctx, machineID)
	if err != nil {
		return Summary{}, err
	}
	if (etag == "" && sum.Count > 0) || sum.Stale {
		// Store the recount so the next reader has it; another writer got
		// there first if the ETag no longer matches, which is fine.
		sum.Stale = false
		if etag == "" {
			err = tables.Add(ctx, s.c, &sum)
		} else {
			err = tables.Replace(ctx, s.c, &sum, etag)
		}
		if err != nil && !tables.Exists(err) && !tables.Changed(err) {
			return Summary{}, fmt.Errorf("store point summary: %w", err)
		}
	}
	out := Summary{Count: sum.Count, Active: sum.Active}
	if sum.Active > 0 {
		o, l := tables.ParseTime(sum.Oldest), tables.ParseTime(sum.Latest)
		out.Oldest, out.Latest = &o, &l
	}
	return out, nil
}

// summary reads the summary row, recounting if it is missing (points
// recorded before summaries existed) or stale; the ETag is "" when the row
// does not exist yet.
func (s *Store) summary(ctx context.Context, machineID string) (summaryEntity, azcore.ETag, error) {
	var sum summaryEntity
	etag, err := tables.Get(ctx, s.c, machineID, summaryKey, &sum)
	switch {
	case tables.NotFound(err):
		etag = ""
	case err != nil:
		return sum, "", fmt.Errorf("read point summary: %w", err)
	case !sum.Stale:
		return sum, etag, nil
	}
	es, err := tables.Query[entity](ctx, s.c, "PartitionKey eq '"+machineID+"' and RowKey lt '~'", 0)
	if err != nil {
		return sum, "", fmt.Errorf("count points: %w", err)
	}
	sum = summaryEntity{PartitionKey: machineID, RowKey: summaryKey}
	for i := range es {
		sum.count(&es[i], +1)
	}
	return sum, etag, nil
}

// count adds (+1) or takes away (-1) one point.
func (sum *summaryEntity) count(e *entity, sign int) {
	sum.Count += sign
	if e.State != wire.PointActive {
		return
	}
	sum.Active += sign
	if sign > 0 {
		if sum.Oldest == "" || e.Time < sum.Oldest {
			sum.Oldest = e.Time
		}
		if e.Time > sum.Latest {
			sum.Latest = e.Time
		}
		return
	}
	if sum.Active == 0 {
		sum.Oldest, sum.Latest, sum.Stale = "", "", false
	} else if e.Time == sum.Oldest || e.Time == sum.Latest {
		sum.Stale = true
	}
}

// commit writes one point change and the summary row in one transaction:
// both or neither. A failed transaction does not say which action failed
// (the SDK reports the batch), so callers read again and retry.
func (s *Store) commit(ctx context.Context, point aztables.TransactionAction, sum summaryEntity, etag azcore.ETag) error {
	b, err := json.Marshal(&sum)
	if err != nil {
		return err
	}
	actions := []aztables.TransactionAction{point}
	switch {
	case sum.Count == 0 && etag == "":
		// The last point went and no summary was stored.
	case sum.Count == 0:
		// The last point went: so does the summary, and the partition is empty.
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: b, IfMatch: &etag})
	case etag == "":
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: b})
	default:
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeUpdateReplace, Entity: b, IfMatch: &etag})
	}
	_, err = s.c.SubmitTransaction(ctx, actions, nil)
	return err
}

func action(t aztables.TransactionType, e *entity, etag azcore.ETag) (aztables.TransactionAction, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return aztables.TransactionAction{}, err
	}
	a := aztables.TransactionAction{ActionType: t, Entity: b}
	if etag != "" {
		a.IfMatch = &etag
	}
	return a, nil
}

// attempts bounds the read-and-retry loops of writers racing on one machine.
const attempts = 10

func limitError(machineID string, max int) error {
	return fmt.Errorf("%w: machine %s has %d recovery points, the most a machine may have (soft-deleted points count until they are purged); "+
		"shorten the policy's retention or delete points", ErrLimit, machineID, max)
}

// machineLocks serializes one instance's writes to a machine's points, so
// its own writers never race on the summary row's ETag (an agent sending
// registrations in parallel would otherwise make most of them retry); the
// ETag still guards against other instances.
type machineLocks struct {
	mu    sync.Mutex
	locks map[string]*machineLock
}

type machineLock struct {
	sync.Mutex
	users int
}

func (l *machineLocks) lock(machineID string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*machineLock{}
	}
	ml := l.locks[machineID]
	if ml == nil {
		ml = &machineLock{}
		l.locks[machineID] = ml
	}
	ml.users++
	l.mu.Unlock()
	ml.Lock()
	return func() {
		ml.Unlock()
		l.mu.Lock()
		if ml.users--; ml.users == 0 {
			delete(l.locks, machineID)
		}
		l.mu.Unlock()
	}
}
