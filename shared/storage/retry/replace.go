package retry

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/shared/storage"
)

type replacer interface {
	Replace(ctx context.Context, name string, data []byte) error
}

// Replace retries a failed atomic replace, when the wrapped backend has
// one. Replacing twice with the same bytes is the same as once, so every
// transient failure may be retried.
func (r *backend) Replace(ctx context.Context, name string, data []byte) error {
	rp, ok := r.b.(replacer)
	if !ok {
		return fmt.Errorf("replace %s: %w: %s cannot replace objects", name, storage.ErrPermission, r.b.Location())
	}
	return r.do(ctx, "replace", name, func(int) (bool, error) {
		return false, rp.Replace(ctx, name, data)
	})
}
