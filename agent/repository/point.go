package repository

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
	"github.com/coffer-backup/coffer/shared/storage"
)

// Point is a recovery point: the root tree of one backup and what it saw.
type Point struct {
	ID       string    `cbor:"-"`
	Time     time.Time `cbor:"1,keyasint"`
	Hostname string    `cbor:"2,keyasint,omitempty"`
	Username string    `cbor:"3,keyasint,omitempty"`
	Paths    []string  `cbor:"4,keyasint"`
	Tree     crypto.ID `cbor:"5,keyasint"`
	Parent   string    `cbor:"6,keyasint,omitempty"`
	Tags     []string  `cbor:"7,keyasint,omitempty"`
	Summary  Summary   `cbor:"8,keyasint"`
}

// Summary is what a backup did.
type Summary struct {
	Files       int64         `cbor:"1,keyasint" json:"files"`
	Dirs        int64         `cbor:"2,keyasint" json:"dirs"`
	Bytes       int64         `cbor:"3,keyasint" json:"bytes"`       // total size of the files in the point
	BytesRead   int64         `cbor:"4,keyasint" json:"bytesRead"`   // read from disk (unchanged files are not)
	BytesNew    int64         `cbor:"5,keyasint" json:"bytesNew"`    // plaintext of chunks not yet in the repository
	BytesStored int64         `cbor:"6,keyasint" json:"bytesStored"` // what those took in storage, compressed and sealed
	Warnings    int64         `cbor:"7,keyasint" json:"warnings"`
	Duration    time.Duration `cbor:"8,keyasint" json:"duration"`
}

// SavePoint stores a point: first its plaintext pack reference list, then
// the point itself. packs are every pack holding a blob the point
// references; they and the index files naming them must already be stored.
//
// The list goes first because the point's ID, the hash of its sealed
// bytes, is known before anything is stored. A backup killed between the
// two writes leaves a list without its point, which at worst keeps packs
// alive; the other order could leave a point without its list, whose packs
// the control plane would not know to keep. A point is complete, and a
// recovery point at all, only once both objects exist (see ListPoints).
func (r *Repository) SavePoint(ctx context.Context, p *Point, packs []crypto.ID) error {
	plain, err := encMode.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode point: %w", err)
	}
	sealed, id := r.seal(plain, adPoint)
	names := make([]string, len(packs))
	for i, pk := range packs {
		names[i] = hex.EncodeToString(pk[:])
	}
	refs, err := packrefs.New(id, names).Encode()
	if err != nil {
		return err
	}
	if err := r.create(ctx, layout.Refs(id), refs); err != nil {
		return fmt.Errorf("write the pack reference list of the new point %s: %w", id, err)
	}
	if err := r.checkConcurrentPrune(ctx, packs); err != nil {
		r.dropRefused(ctx, id)
		return err
	}
	if err := r.create(ctx, layout.Point(id), sealed); err != nil {
		return fmt.Errorf("write point %s: %w", id, err)
	}
	p.ID = id
	return nil
}

// LoadPoint reads one point by its full ID. It does not ask whether the
// point is complete; Points does.
func (r *Repository) LoadPoint(ctx context.Context, id string) (*Point, error) {
	plain, err := r.loadSealed(ctx, layout.Point(id), adPoint)
	if err != nil {
		return nil, fmt.Errorf("read point %s: %w", id, err)
	}
	var p Point
	if err := decMode.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("%w: point %s: %v", ErrDamaged, id, err)
	}
	p.ID = id
	return &p, nil
}

// PointIDs sorts the IDs under points/ and refs/ by which of the two
// objects exist. Each list is sorted.
type PointIDs struct {
	// Complete points have both points/<id> and refs/<id>: the recovery
	// points.
	Complete []string
	// Incomplete points have points/<id> but no refs/<id>. An older Coffer
	// wrote the point first, and a backup killed before the list was
	// written left such a point. Nothing protects its packs from the
	// control plane's purge, so it is never listed, restored, registered
	// or used as a parent; the next backup makes a complete one.
	Incomplete []string
	// Orphans are refs/<id> without points/<id>: a backup stopped between
	// the two writes, or the control plane stopped halfway through deleting
	// a point. They only keep packs from being purged.
	Orphans []string
}

// ListPoints lists points/ and refs/ and tells complete points from
// incomplete ones. It lists points/ first: SavePoint writes refs/ first,
// so any point seen is also seen with its list, even while a backup runs.
func (r *Repository) ListPoints(ctx context.Context) (PointIDs, error) {
	var ids PointIDs
	points := map[string]bool{}
	if err := r.be.List(ctx, layout.PointsPrefix, func(fi storage.Info) error {
		points[strings.TrimPrefix(fi.Name, layout.PointsPrefix)] = false
		return nil
	}); err != nil {
		return ids, fmt.Errorf("list points: %w", err)
	}
	if err := r.be.List(ctx, layout.RefsPrefix, func(fi storage.Info) error {
		id := strings.TrimPrefix(fi.Name, layout.RefsPrefix)
		if _, ok := points[id]; ok {
			points[id] = true
		} else {
			ids.Orphans = append(ids.Orphans, id)
		}
		return nil
	}); err != nil {
		return ids, fmt.Errorf("list pack reference lists: %w", err)
	}
	for id, hasRefs := range points {
		if hasRefs {
			ids.Complete = append(ids.Complete, id)
		} else {
			ids.Incomplete = append(ids.Incomplete, id)
		}
	}
	slices.Sort(ids.Complete)
	slices.Sort(ids.Incomplete)
	slices.Sort(ids.Orphans)
	return ids, nil
}

// Points loads every complete point, oldest first. Incomplete points (see
// PointIDs) are left out. Damaged points are reported in the error
// alongside the ones that loaded.
func (r *Repository) Points(ctx context.Context) ([]*Point, error) {
	listed, err := r.ListPoints(ctx)
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		out  []*Point
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range listed.Complete {
		g.Go(func() error {
			p, err := r.LoadPoint(gctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			out = append(out, p)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *Point) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, errors.Join(errs...)
}

// ErrNoPoint is what FindPoint's error wraps when no point matches: a
// failure (exit 1), where a reference too short or ambiguous is a usage error.
var ErrNoPoint = errors.New("no recovery point")

// noPoint says why no point matched, in its own words, and is ErrNoPoint.
type noPoint struct{ msg string }

func (e noPoint) Error() string        { return e.msg }
func (e noPoint) Is(target error) bool { return target == ErrNoPoint }

// FindPoint resolves "latest" or a unique prefix of a point ID.
func FindPoint(points []*Point, ref string) (*Point, error) {
	if len(points) == 0 {
		return nil, noPoint{"the repository has no recovery points yet: run `coffer backup` first"}
	}
	if ref == "latest" {
		return points[len(points)-1], nil
	}
	if len(ref) < 4 {
		return nil, fmt.Errorf("point ID %q is too short: give at least 4 characters, or `latest`", ref)
	}
	var found *Point
	for _, p := range points {
		if strings.HasPrefix(p.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("point ID %q is ambiguous: give more characters (see `coffer points`)", ref)
			}
			found = p
		}
	}
	if found == nil {
		return nil, noPoint{fmt.Sprintf("no recovery point %q (see `coffer points`)", ref)}
	}
	return found, nil
}
