package mem

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Replace stores a copy of data under name in place of the object of that
// name, which must exist. Readers holding the old bytes keep them: the old
// slice is dropped, never modified.
func (b *Backend) Replace(ctx context.Context, name string, data []byte) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	obj := bytes.Clone(data)
	if obj == nil {
		obj = []byte{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[name]; !ok {
		return fmt.Errorf("replace %s: %w", name, storage.ErrNotFound)
	}
	b.objects[name] = obj
	return nil
}
