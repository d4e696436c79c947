// Package mount shows a repository's recovery points as a read-only file
// system through FUSE (github.com/hanwen/go-fuse): latest/, points/<ID>/
// and by-time/<time>/, each holding the tree `coffer restore` writes.
// Files are read on demand, chunk by chunk, through the index and a
// bounded in-memory cache shared by every file of the mount.
package mount

import (
	"context"
	"errors"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// TreeLoader loads folder listings.
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// PointLister lists the points to show. It may return the points it could
// read together with an error naming the others.
type PointLister func(ctx context.Context) ([]*repository.Point, error)

// ErrNotSupported is returned where this build cannot mount.
var ErrNotSupported = errors.New("coffer mount is not supported on this system yet: use `coffer restore` (on Windows, mounting would go through WinFsp; see docs/mount.md)")
