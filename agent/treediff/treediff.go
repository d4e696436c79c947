// Package treediff compares two recovery points' trees: what was added,
// removed or modified (content or metadata), with sizes, as restic's diff
// does. Subtrees with the same ID are the same, so unchanged folders cost
// nothing to compare.
package treediff

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// TreeLoader loads a tree by ID (repository.Repository does).
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// Kind of a change.
const (
	Added    = "added"
	Removed  = "removed"
	Modified = "modified"
)

// Change is one path that differs.
type Change struct {
	Path    string   `json:"path"` // slash-separated, from the point's root, with a leading slash
	Kind    string   `json:"kind"`
	Type    string   `json:"type"`              // the entry's type (the new one when modified)
	OldSize int64    `json:"oldSize,omitempty"` // removed and modified
	NewSize int64    `json:"newSize,omitempty"` // added and modified
	What    []string `json:"what,omitempty"`    // modified: content, type, mode, owner, mtime, xattrs, target, attributes
}

// Summary counts the changes.
type Summary struct {
	Added        int   `json:"added"`
	Removed      int   `json:"removed"`
	Modified     int   `json:"modified"`
	BytesAdded   int64 `json:"bytesAdded"`   // sizes of files added, and the growth of modified ones
	BytesRemoved int64 `json:"bytesRemoved"` // sizes of files removed, and the shrinkage of modified ones
}

// Compare calls fn for each change between the trees a and b, in path
// order; a node that is only on one side is reported with everything below
// it.
func Compare(ctx context.Context, l TreeLoader, a, b crypto.ID, fn func(Change) error) (Summary, error) {
	d := differ{l: l, fn: fn}
	err := d.trees(ctx, &a, &b, "/")
	return d.sum, err
}

type differ struct {
	l   TreeLoader
	fn  func(Change) error
	sum Summary
}

func (d *differ) emit(c Change) error {
	switch c.Kind {
	case Added:
		d.sum.Added++
		d.sum.BytesAdded += c.NewSize
	case Removed:
		d.sum.Removed++
		d.sum.BytesRemoved += c.OldSize
	case Modified:
		d.sum.Modified++
		if c.NewSize > c.OldSize {
			d.sum.BytesAdded += c.NewSize - c.OldSize
		} else {
			d.sum.BytesRemoved += c.OldSize - c.NewSize
		}
	}
	return d.fn(c)
}

func (d *differ) load(ctx context.Context, id *crypto.ID) ([]tree.Node, error) {
	if id == nil {
		return nil, nil
	}
	t, err := d.l.LoadTree(ctx, *id)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id, err)
	}
	return t.Nodes, nil
}

// trees compares two folders' listings, either of which may be absent.
func (d *differ) trees(ctx context.Context, a, b *crypto.ID, dir string) error {
	if a != nil && b != nil && *a == *b {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	na, err := d.load(ctx, a)
	if err != nil {
		return err
	}
	nb, err := d.load(ctx, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(na) || j < len(nb) {
		var x, y *tree.Node
		switch {
		case j >= len(nb):
			x = &na[i]
		case i >= len(na):
			y = &nb[j]
		default:
			switch c := bytes.Compare(na[i].Name, nb[j].Name); {
			case c < 0:
				x = &na[i]
			case c > 0:
				y = &nb[j]
			default:
				x, y = &na[i], &nb[j]
			}
		}
		if x != nil {
			i++
		}
		if y != nil {
			j++
		}
		if err := d.node(ctx, x, y, dir); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) node(ctx context.Context, x, y *tree.Node, dir string) error {
	var name []byte
	if x != nil {
		name = x.Name
	} else {
		name = y.Name
	}
	p := path.Join(dir, string(name))
	switch {
	case y == nil:
		if err := d.emit(Change{Path: p, Kind: Removed, Type: x.Type.String(), OldSize: size(x)}); err != nil {
			return err
		}
		if x.Type == tree.Dir {
			return d.trees(ctx, x.Subtree, nil, p)
		}
		return nil
	case x == nil:
		if err := d.emit(Change{Path: p, Kind: Added, Type: y.Type.String(), NewSize: size(y)}); err != nil {
			return err
		}
		if y.Type == tree.Dir {
			return d.trees(ctx, nil, y.Subtree, p)
		}
		return nil
	}
	if what := changed(x, y); len(what) > 0 {
		if err := d.emit(Change{Path: p, Kind: Modified, Type: y.Type.String(), OldSize: size(x), NewSize: size(y), What: what}); err != nil {
			return err
		}
	}
	var sa, sb *crypto.ID
	if x.Type == tree.Dir {
		sa = x.Subtree
	}
	if y.Type == tree.Dir {
		sb = y.Subtree
	}
	if sa != nil || sb != nil {
		return d.trees(ctx, sa, sb, p)
	}
	return nil
}

// size is a file's size; other entries count as nothing.
func size(n *tree.Node) int64 {
	if n.Type == tree.File {
		return n.Size
	}
	return 0
}

// changed says what differs between two entries of the same name. Times
// of change (ctime) and inode numbers are for change detection only and
// not reported.
func changed(x, y *tree.Node) []string {
	var what []string
	if x.Type != y.Type {
		return []string{"type"}
	}
	if x.Size != y.Size || !slices.Equal(x.Content, y.Content) {
		what = append(what, "content")
	}
	if x.Mode != y.Mode {
		what = append(what, "mode")
	}
	if x.UID != y.UID || x.GID != y.GID || x.User != y.User || x.Group != y.Group {
		what = append(what, "owner")
	}
	if x.ModTime != y.ModTime {
		what = append(what, "mtime")
	}
	if !bytes.Equal(x.LinkTarget, y.LinkTarget) {
		what = append(what, "target")
	}
	if !slices.EqualFunc(x.Xattrs, y.Xattrs, func(a, b tree.Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
		what = append(what, "xattrs")
	}
	if x.WinAttrs != y.WinAttrs || !bytes.Equal(x.WinSD, y.WinSD) || x.Rdev != y.Rdev {
		what = append(what, "attributes")
	}
	return what
}
