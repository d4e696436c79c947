package mount

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
)

// BlobLoader reads, authenticates and decrypts one blob; the repository
// does it through its index.
type BlobLoader interface {
	LoadBlob(ctx context.Context, id crypto.ID) ([]byte, error)
}

// DefaultCacheBytes bounds the plaintext blobs a mount keeps in memory:
// enough for a few readers streaming at once with their read-ahead.
const DefaultCacheBytes = 256 << 20

// blobCache keeps recently read chunks in memory for every file of the
// mount, least recently used out first, within a byte bound. Concurrent
// readers of the same chunk share one load, so the kernel's parallel
// read-ahead requests and the mount's own prefetch never fetch a chunk
// twice.
type blobCache struct {
	src BlobLoader
	max int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *cached, most recent at the front
	entries map[crypto.ID]*list.Element
	loading map[crypto.ID]*load

	prefetch chan struct{} // slots for background loads
	packs    PackReader    // optional: read-ahead reads runs of chunks at once
}

type cached struct {
	id   crypto.ID
	data []byte
}

type load struct {
	done chan struct{}
	data []byte
	err  error
}

func newBlobCache(src BlobLoader, maxBytes int64, prefetchers int) *blobCache {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &blobCache{src: src, max: maxBytes, lru: list.New(),
		entries: map[crypto.ID]*list.Element{}, loading: map[crypto.ID]*load{},
		prefetch: make(chan struct{}, max(1, prefetchers))}
}

// get returns a blob's plaintext, loading it unless it is cached or being
// loaded. The caller must not modify the slice.
func (c *blobCache) get(ctx context.Context, id crypto.ID) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.entries[id]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*cached).data
		c.mu.Unlock()
		return data, nil
	}
	if l, ok := c.loading[id]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.data, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &load{done: make(chan struct{})}
	c.loading[id] = l
	c.mu.Unlock()
	// The load is shared, so one reader giving up must not fail the others.
	l.data, l.err = c.load(context.WithoutCancel(ctx), id)
	c.finish(id, l)
	return l.data, l.err
}

func (c *blobCache) load(ctx context.Context, id crypto.ID) (data []byte, err error) {
	if c.packs == nil {
		return c.src.LoadBlob(ctx, id)
	}
	loc, ok := c.packs.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("chunk %s is in no index: the repository is missing data (run `coffer check`)", id)
	}
	c.packs.LoadRun(ctx, loc.Pack, []repository.BlobEntry{loc.BlobEntry}, func(_ repository.BlobEntry, plain []byte, e error) {
		data, err = plain, e
	})
	return data, err
}

func (c *blobCache) finish(id crypto.ID, l *load) {
	c.mu.Lock()
	delete(c.loading, id)
	if l.err == nil && int64(len(l.data)) <= c.max/4 {
		c.entries[id] = c.lru.PushFront(&cached{id, l.data})
		c.size += int64(len(l.data))
		for c.size > c.max {
			old := c.lru.Back()
			o := old.Value.(*cached)
			c.lru.Remove(old)
			delete(c.entries, o.id)
			c.size -= int64(len(o.data))
		}
	}
	c.mu.Unlock()
	close(l.done)
}

// warm starts loading a blob in the background if it is neither cached nor
// loading and a prefetch slot is free; otherwise it does nothing, so a
// reader ahead of the prefetch simply loads what it needs itself.
func (c *blobCache) warm(id crypto.ID) {
	c.mu.Lock()
	_, cachedAlready := c.entries[id]
	_, loading := c.loading[id]
	c.mu.Unlock()
	if cachedAlready || loading {
		return
	}
	select {
	case c.prefetch <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-c.prefetch }()
		c.get(context.Background(), id) // an error is met again by the reader
	}()
}

// bytes is what the cache holds now.
func (c *blobCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}
