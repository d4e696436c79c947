//go:build !linux && !darwin

package mount

import (
	"context"
	"time"
)

// Supported reports whether this system can mount points.
const Supported = false

// Options configure a mount.
type Options struct {
	Points     PointLister
	Trees      TreeLoader
	Blobs      BlobLoader
	Packs      PackReader
	CacheBytes int64
	Refresh    time.Duration
	AllowOther bool
	Debug      bool
}

// Mounted is a running mount; there is none on this system.
type Mounted struct{}

// Mount always fails here: go-fuse does not serve this system.
func Mount(ctx context.Context, dir string, o Options) (*Mounted, error) { return nil, ErrNotSupported }

// Wait returns at once.
func (*Mounted) Wait() {}

// Unmount does nothing.
func (*Mounted) Unmount() error { return nil }
