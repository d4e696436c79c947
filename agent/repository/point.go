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

// SavePoint writes the point, then its plaintext pack reference list.
// packs are every pack holding a blob the point references.
func (r *Repository) SavePoint(ctx context.Context, p *Point, packs []crypto.ID) error {
	plain, err := encMode.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode point: %w", err)
	}
	id, err := r.saveSealed(ctx, pointsPrefix, plain, adPoint)
	if err != nil {
		return fmt.Errorf("write point: %w", err)
	}
	p.ID = id
	names := make([]string, len(packs))
	for i, pk := range packs {
		names[i] = hex.EncodeToString(pk[:])
	}
	refs, err := packrefs.New(id, names).Encode()
	if err != nil {
		return err
	}
	if err := r.be.Create(ctx, packrefs.Name(id), refs); err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("write the pack reference list of point %s: %w", id, err)
	}
	return nil
}

// LoadPoint reads one point by its full ID.
func (r *Repository) LoadPoint(ctx context.Context, id string) (*Point, error) {
	plain, err := r.loadSealed(ctx, pointsPrefix+id, adPoint)
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

// Points lists every point, oldest first. Damaged points are reported in
// the error alongside the ones that loaded.
func (r *Repository) Points(ctx context.Context) ([]*Point, error) {
	var ids []string
	if err := r.be.List(ctx, pointsPrefix, func(fi storage.Info) error {
		ids = append(ids, strings.TrimPrefix(fi.Name, pointsPrefix))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list points: %w", err)
	}
	var (
		mu   sync.Mutex
		out  []*Point
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range ids {
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

// FindPoint resolves "latest" or a unique prefix of a point ID.
func FindPoint(points []*Point, ref string) (*Point, error) {
	if len(points) == 0 {
		return nil, errors.New("the repository has no recovery points yet: run `coffer backup` first")
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
		return nil, fmt.Errorf("no recovery point %q (see `coffer points`)", ref)
	}
	return found, nil
}
