package restorer

import (
	"context"
	"sync"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// treeBytesLoader is a TreeLoader that also hands over a listing still
// encoded, which the plan decodes an entry at a time (tree.Each): a
// folder of 100,000 files decoded whole held 30 MB for as long as its
// files took to restore.
type treeBytesLoader interface {
	LoadTreeBytes(ctx context.Context, id crypto.ID) ([]byte, error)
}

// listing is a folder's entries: encoded, or decoded by a loader that
// cannot hand over the encoding.
type listing struct {
	raw     []byte
	decoded *tree.Tree
}

// each calls fn with each entry in order; the node is fn's only during the
// call.
func (l listing) each(fn func(*tree.Node) error) error {
	if l.decoded == nil {
		return tree.Each(l.raw, fn)
	}
	for i := range l.decoded.Nodes {
		if err := fn(&l.decoded.Nodes[i]); err != nil {
			return err
		}
	}
	return nil
}

// subfolders lists the listings of the folders in l. A listing that does
// not decode has none: the plan reports it when it gets there.
func (l listing) subfolders() []crypto.ID {
	var ids []crypto.ID
	l.each(func(n *tree.Node) error {
		if n.Type == tree.Dir && n.Subtree != nil {
			ids = append(ids, *n.Subtree)
		}
		return nil
	})
	return ids
}

// treeAhead loads the listings of the folders the plan is about to enter
// while it plans the folder it is in. The plan reads listings one at a
// time and most are cold files in the cache: on the 50,000-file benchmark
// set, 2,000 such reads in a row were a tenth of the restore, with the
// cores idle.
type treeAhead struct {
	trees TreeLoader
	// deep: every listing loaded has its own subfolders loaded ahead too,
	// so the loads run ahead of the plan down the tree and not only one
	// level. Only for a whole restore: an --include restore needs few
	// listings, and the plan asks for those itself (prefetch).
	deep bool

	mu      sync.Mutex
	pending map[crypto.ID]*loadingTree
	slots   chan struct{} // loads in flight
}

type loadingTree struct {
	done chan struct{}
	l    listing
	err  error
}

const (
	treeLoadsInFlight = 8
	// maxTreesAhead bounds the listings loaded but not yet planned, so a
	// folder with thousands of subfolders does not hold them all at once.
	maxTreesAhead = 256
)

func newTreeAhead(trees TreeLoader, deep bool) *treeAhead {
	return &treeAhead{trees: trees, deep: deep, pending: map[crypto.ID]*loadingTree{}, slots: make(chan struct{}, treeLoadsInFlight)}
}

// prefetch starts loading ids, in order, as far as the bound allows.
func (a *treeAhead) prefetch(ctx context.Context, ids []crypto.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		if len(a.pending) >= maxTreesAhead {
			return
		}
		if _, ok := a.pending[id]; ok {
			continue
		}
		l := &loadingTree{done: make(chan struct{})}
		a.pending[id] = l
		go func() {
			defer close(l.done)
			select {
			case a.slots <- struct{}{}:
			case <-ctx.Done():
				l.err = ctx.Err()
				return
			}
			l.l, l.err = a.read(ctx, id)
			<-a.slots
		}()
	}
}

// read loads one listing, encoded if the loader can, and in deep mode
// starts on its subfolders.
func (a *treeAhead) read(ctx context.Context, id crypto.ID) (listing, error) {
	var l listing
	var err error
	if bl, ok := a.trees.(treeBytesLoader); ok {
		l.raw, err = bl.LoadTreeBytes(ctx, id)
	} else {
		l.decoded, err = a.trees.LoadTree(ctx, id)
	}
	if err == nil && a.deep {
		a.prefetch(ctx, l.subfolders())
	}
	return l, err
}

// load returns a listing, from a load already started if there is one.
func (a *treeAhead) load(ctx context.Context, id crypto.ID) (listing, error) {
	a.mu.Lock()
	l, ok := a.pending[id]
	delete(a.pending, id)
	a.mu.Unlock()
	if !ok {
		return a.read(ctx, id)
	}
	select {
	case <-l.done:
		return l.l, l.err
	case <-ctx.Done():
		return listing{}, ctx.Err()
	}
}
