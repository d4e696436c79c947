package faulty

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/shared/storage"
)

// replacer is the optional atomic replace of the backend underneath.
type replacer interface {
	Replace(ctx context.Context, name string, data []byte) error
}

// Replace passes an atomic replace through when the wrapped backend has
// one. It counts as a write, and as a Create for Fail and for the record:
// like a Create, it makes an object's new content visible all at once.
func (f *Backend) Replace(ctx context.Context, name string, data []byte) error {
	rp, ok := f.b.(replacer)
	if !ok {
		return fmt.Errorf("replace %s: %w: %s cannot replace objects", name, storage.ErrPermission, f.b.Location())
	}
	return f.write(Create, name, func() error { return rp.Replace(ctx, name, data) })
}
