package mount

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
)

// PackReader is what read-ahead needs to fetch a run of neighbouring
// chunks with one read of their pack: where each chunk is, and the read
// of a run. The repository is one (RepositoryPacks).
type PackReader interface {
	Lookup(id crypto.ID) (repository.Location, bool)
	LoadRun(ctx context.Context, pack crypto.ID, entries []repository.BlobEntry, fn func(e repository.BlobEntry, plain []byte, err error))
}

// repoPacks adapts a repository, whose index does the lookups.
type repoPacks struct{ *repository.Repository }

func (p repoPacks) Lookup(id crypto.ID) (repository.Location, bool) { return p.Index().Lookup(id) }

// RepositoryPacks lets the mount read runs of chunks from r's packs.
func RepositoryPacks(r *repository.Repository) PackReader { return repoPacks{r} }

// maxSpan bounds one read-ahead request: a backup stores a file's chunks
// one after another in its packs, so a few MiB in one request replace a
// request per chunk, which matters most against Azure.
const maxSpan = 8 << 20

// warmRun prefetches chunks, in file order, reading neighbours in the same
// pack with one request. Chunks cached or loading already are skipped; a
// run that finds no free prefetch slot is left for the reader.
func (c *blobCache) warmRun(ids []crypto.ID) {
	if c.packs == nil {
		for _, id := range ids {
			c.warm(id)
		}
		return
	}
	var run []repository.Location
	flush := func() {
		if len(run) > 0 {
			c.startRun(run)
			run = nil
		}
	}
	for _, id := range ids {
		loc, ok := c.packs.Lookup(id)
		if !ok {
			continue // the reader reports it
		}
		if n := len(run); n > 0 {
			first, last := run[0], run[n-1]
			end := int64(loc.Offset) + int64(loc.Length)
			// Members of one group share its bytes; other blobs follow on.
			if loc.Pack != first.Pack || (loc.Offset < last.Offset+last.Length && !loc.SameGroup(&last.BlobEntry)) || end-int64(first.Offset) > maxSpan {
				flush()
			}
		}
		run = append(run, loc)
	}
	flush()
}

// startRun claims the run's chunks that nobody has or loads, then reads
// them from their pack in the background.
func (c *blobCache) startRun(run []repository.Location) {
	select {
	case c.prefetch <- struct{}{}:
	default:
		return
	}
	c.mu.Lock()
	var mine []repository.Location
	var loads []*load
	for _, loc := range run {
		if _, ok := c.entries[loc.ID]; ok {
			continue
		}
		if _, ok := c.loading[loc.ID]; ok {
			continue
		}
		l := &load{done: make(chan struct{})}
		c.loading[loc.ID] = l
		mine, loads = append(mine, loc), append(loads, l)
	}
	c.mu.Unlock()
	if len(mine) == 0 {
		<-c.prefetch
		return
	}
	go func() {
		defer func() { <-c.prefetch }()
		entries := make([]repository.BlobEntry, len(mine))
		for i, loc := range mine {
			entries[i] = loc.BlobEntry
		}
		i := 0
		c.packs.LoadRun(context.Background(), mine[0].Pack, entries, func(e repository.BlobEntry, plain []byte, err error) {
			l := loads[i]
			i++
			if err != nil {
				err = fmt.Errorf("read pack %s: %w", mine[0].Pack, err)
			}
			l.data, l.err = plain, err
			c.finish(e.ID, l)
		})
	}()
}
