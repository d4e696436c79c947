package mount

import (
	"context"
	"errors"
	"sync"

	"github.com/coffer-backup/coffer/agent/repository"
)

// PointSource is a repository's point store.
type PointSource interface {
	ListPoints(ctx context.Context) (repository.PointIDs, error)
	LoadPoint(ctx context.Context, id string) (*repository.Point, error)
}

// RepositoryPoints lists a repository's complete points, reading each
// point object only once: points never change, and the mount lists them
// again every little while, which against Azure would otherwise be a
// request per point each time.
func RepositoryPoints(r PointSource) PointLister {
	var (
		mu     sync.Mutex
		loaded = map[string]*repository.Point{}
	)
	return func(ctx context.Context) ([]*repository.Point, error) {
		ids, err := r.ListPoints(ctx)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		var (
			out  []*repository.Point
			errs []error
		)
		for _, id := range ids.Complete {
			p := loaded[id]
			if p == nil {
				if p, err = r.LoadPoint(ctx, id); err != nil {
					errs = append(errs, err)
					continue
				}
				loaded[id] = p
			}
			out = append(out, p)
		}
		return out, errors.Join(errs...)
	}
}
