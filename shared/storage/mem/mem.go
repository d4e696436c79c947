// Package mem keeps a repository in memory, for tests: the engine above the
// storage interface runs against it exactly as against a folder or a
// container, without a disk or an emulator. It passes the storagetest
// conformance suite, so what works here works there.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Backend is a repository in a map. The zero Backend is not usable; call New.
type Backend struct {
	name string

	mu      sync.RWMutex
	objects map[string][]byte // never modified once stored: readers share them
}

var _ storage.Backend = (*Backend)(nil)

// New returns an empty repository. name appears in Location, to tell two
// in-memory repositories apart in messages.
func New(name string) *Backend {
	if name == "" {
		name = "repository"
	}
	return &Backend{name: name, objects: map[string][]byte{}}
}

// Location names the repository.
func (b *Backend) Location() string { return "mem:" + b.name }

// Create stores a copy of data, so the caller may reuse its buffer.
func (b *Backend) Create(ctx context.Context, name string, data []byte) error {
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
	if _, ok := b.objects[name]; ok {
		return fmt.Errorf("create %s: %w", name, storage.ErrExists)
	}
	b.objects[name] = obj
	return nil
}

func (b *Backend) get(name string) ([]byte, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, ok := b.objects[name]
	return obj, ok
}

// Read opens length bytes of name from offset.
func (b *Backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.CheckName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", name, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, ok := b.get(name)
	if !ok {
		return nil, fmt.Errorf("read %s: %w", name, storage.ErrNotFound)
	}
	size := int64(len(obj))
	if offset > size {
		return nil, fmt.Errorf("read %s: offset %d is beyond the object's end (%d bytes)", name, offset, size)
	}
	if length < 0 || offset+length > size {
		length = size - offset
	}
	return io.NopCloser(bytes.NewReader(obj[offset : offset+length])), nil
}

// Stat describes name.
func (b *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := storage.CheckName(name); err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	obj, ok := b.get(name)
	if !ok {
		return storage.Info{}, fmt.Errorf("stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.Info{Name: name, Size: int64(len(obj))}, nil
}

// List calls fn for every object whose name starts with prefix, in name
// order. It calls fn without holding the lock, so fn may use the backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var found []storage.Info
	b.mu.RLock()
	for name, obj := range b.objects {
		if strings.HasPrefix(name, prefix) {
			found = append(found, storage.Info{Name: name, Size: int64(len(obj))})
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(found, func(x, y storage.Info) int { return strings.Compare(x.Name, y.Name) })
	for _, info := range found {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes name.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := storage.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[name]; !ok {
		return fmt.Errorf("delete %s: %w", name, storage.ErrNotFound)
	}
	delete(b.objects, name)
	return nil
}
