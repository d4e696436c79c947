// Package treerefs finds the blobs a recovery point uses: its trees and
// the data chunks of its files. It keeps, for each tree it has read, only
// the IDs of its subtrees and chunks, so walking many points, or the same
// points twice (prune does), reads each tree once.
package treerefs

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// TreeLoader loads a tree by ID (repository.Repository does).
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// Cache walks trees, remembering what each holds. Not safe for
// concurrent use.
type Cache struct {
	l     TreeLoader
	trees map[crypto.ID]*refs
}

type refs struct {
	subtrees []crypto.ID
	blobs    []crypto.ID
}

// New is an empty cache reading trees through l.
func New(l TreeLoader) *Cache { return &Cache{l: l, trees: map[crypto.ID]*refs{}} }

func (c *Cache) load(ctx context.Context, id crypto.ID) (*refs, error) {
	if t, ok := c.trees[id]; ok {
		return t, nil
	}
	t, err := c.l.LoadTree(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id, err)
	}
	var r refs
	for _, n := range t.Nodes {
		switch n.Type {
		case tree.Dir:
			if n.Subtree != nil {
				r.subtrees = append(r.subtrees, *n.Subtree)
			}
		case tree.File:
			for _, ref := range n.Content {
				if !ref.Hole {
					r.blobs = append(r.blobs, ref.ID)
				}
			}
		}
	}
	c.trees[id] = &r
	return &r, nil
}

// Walk calls fn for the tree id, every tree below it and every data blob
// of their files: once each, with seen holding the trees already walked
// (a fresh map per point gives every blob of that point once).
func (c *Cache) Walk(ctx context.Context, id crypto.ID, seen map[crypto.ID]bool, fn func(crypto.ID)) error {
	if seen[id] {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	seen[id] = true
	fn(id)
	t, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	for _, b := range t.blobs {
		fn(b)
	}
	for _, s := range t.subtrees {
		if err := c.Walk(ctx, s, seen, fn); err != nil {
			return err
		}
	}
	return nil
}
