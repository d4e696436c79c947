package archiver_test

import (
	"context"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/shared/storage"
)

// onCreate calls fn once, after the first object whose name has prefix is
// stored: a test acts at a known point of a backup without polling.
type onCreate struct {
	storage.Backend
	prefix string
	after  int // successful creates under prefix before fn runs; 0 means 1
	fn     func()

	mu sync.Mutex
	n  int
}

func (b *onCreate) Create(ctx context.Context, name string, data []byte) error {
	err := b.Backend.Create(ctx, name, data)
	if err != nil || !strings.HasPrefix(name, b.prefix) {
		return err
	}
	b.mu.Lock()
	b.n++
	run := b.fn != nil && b.n == max(b.after, 1)
	b.mu.Unlock()
	if run {
		b.fn()
	}
	return nil
}
