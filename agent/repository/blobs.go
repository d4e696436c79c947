package repository

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
)

// NewChunker returns a chunker that cuts content where every backup to this
// repository cuts it: the repository's parameters with its secret seed, so
// chunk boundaries reveal nothing about the content to the storage.
func (r *Repository) NewChunker() *chunker.Chunker {
	return chunker.New(r.key.Chunker, r.cfg.Chunker)
}

// BlobID is the keyed hash that names a blob of plaintext.
func (r *Repository) BlobID(plain []byte) crypto.ID { return r.key.ChunkID(plain) }

// HasBlob reports whether a blob is stored, according to the index.
func (r *Repository) HasBlob(id crypto.ID) bool { return r.index.Has(id) }

// BlobPack is the pack that holds a blob, according to the index.
func (r *Repository) BlobPack(id crypto.ID) (crypto.ID, bool) {
	loc, ok := r.index.Lookup(id)
	return loc.Pack, ok
}

// BlobWriterOptions tune a BlobWriter.
type BlobWriterOptions struct {
	// Savers is how many goroutines call SaveBlob at once; it sizes the
	// queues in front of the packs. 0 means GOMAXPROCS.
	Savers int
	// Uploads is how many packs are uploaded at once; 0 means 2. Each holds
	// a pack in memory.
	Uploads int
	// IndexEvery saves the index after this many packs, so a backup killed
	// midway leaves its uploads indexed for the next one; 0 means 8.
	IndexEvery int
	// Stored, if set, is told the size of each pack once it is stored.
	Stored func(bytes int64)
	// StoredPlain, if set, is told the plaintext size of the blobs in each
	// pack once it is stored: how much of what was handed in is uploaded,
	// for a progress display that follows a slow upload.
	StoredPlain func(bytes int64)
	// Failed, if set, is told of a failure as soon as it happens, so the
	// caller can stop its own work at once rather than at Finish.
	Failed func(error)
}

// packSlack is room past the pack size for the header, so a full pack's
// buffer never grows.
const packSlack = 256 << 10

// BlobWriter seals blobs, gathers them into packs (one for data, one for
// trees) and uploads each pack when it is full, saving the index every few
// packs. It is for one backup: many goroutines call SaveBlob, then one
// calls Finish.
//
// Memory is bounded: a fixed set of pack buffers, one filling and one per
// upload, is reused for the whole backup, and SaveBlob waits while every
// buffer is uploading.
type BlobWriter struct {
	r    *Repository
	o    BlobWriterOptions
	size int // close a pack before a blob would take it past this

	// ctx ends when the parent's does or on the first failure, its cause.
	ctx    context.Context
	cancel context.CancelCauseFunc

	data, trees chan sealedBlob
	groups      groupSet
	packers     sync.WaitGroup
	uploads     errgroup.Group
	packs       atomic.Int64 // stored so far

	spooler storage.Spooler // data packs are spooled to it, if set

	bufSize int       // sealed blobs above a quarter of this use pooled buffers
	sealds  sync.Pool // sealed blobs on their way into a pack
	scratch sync.Pool // compression output
}

type sealedBlob struct {
	t      BlobType
	id     crypto.ID
	data   []byte
	rawLen int
	method compress.Method
	// A sealed group's blobs (data is the group); nil for one blob.
	members []BlobEntry
}

// groupBuilder is a group filling for one locality key.
type groupBuilder struct {
	GroupBuilder
	near uint64 // the locality key its blobs were saved with
	used uint64 // when a blob was last added, for eviction
}

// maxOpenGroups bounds the groups filling at once, one per locality key
// (a backup's folder): GroupTarget bytes each at most.
const maxOpenGroups = 16

// groupSet is the groups filling, by locality key. A restore reads a
// point's files in tree order, a few thousand at a time, and opens a
// whole group for any member: groups that mixed the files of the folders
// a backup walked at once were each opened by most of those batches
// (source's restore decompressed every group 6 times over).
type groupSet struct {
	// A group is sealed at target bytes or members blobs, so that one
	// fits an empty pack with its header entries.
	target, members int

	mu    sync.Mutex
	open  map[uint64]*groupBuilder
	spare []*groupBuilder
	tick  uint64
}

// add appends a blob to the group filling for near and returns the
// groups to seal now: that one if full, and the least recently used one
// if a new group had to be opened past the bound.
func (s *groupSet) add(near uint64, id crypto.ID, plain []byte) (full, evicted *groupBuilder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[uint64]*groupBuilder{}
	}
	g := s.open[near]
	if g == nil {
		if len(s.open) >= maxOpenGroups {
			for _, o := range s.open {
				if evicted == nil || o.used < evicted.used {
					evicted = o
				}
			}
			delete(s.open, evicted.near)
		}
		if n := len(s.spare); n > 0 {
			g, s.spare = s.spare[n-1], s.spare[:n-1]
		} else {
			g = new(groupBuilder)
		}
		g.near = near
		s.open[near] = g
	}
	s.tick++
	g.used = s.tick
	g.Add(DataBlob, id, plain)
	if g.Full(s.target, s.members) {
		delete(s.open, near)
		full = g
	}
	return full, evicted
}

// recycle keeps a sealed builder's buffers for the next group.
func (s *groupSet) recycle(g *groupBuilder) {
	g.Reset()
	s.mu.Lock()
	s.spare = append(s.spare, g)
	s.mu.Unlock()
}

// drain takes every group still filling.
func (s *groupSet) drain() []*groupBuilder {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*groupBuilder, 0, len(s.open))
	for _, g := range s.open {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *groupBuilder) int { return cmp.Compare(a.used, b.used) })
	s.open, s.spare = nil, nil
	return out
}

// NewBlobWriter starts the packers. Uploads stop when ctx ends.
func (r *Repository) NewBlobWriter(ctx context.Context, o BlobWriterOptions) *BlobWriter {
	if o.Savers <= 0 {
		o.Savers = runtime.GOMAXPROCS(0)
	}
	if o.Uploads <= 0 {
		o.Uploads = 2
	}
	if o.IndexEvery <= 0 {
		o.IndexEvery = 8
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := &BlobWriter{
		r: r, o: o, size: r.cfg.PackSize, ctx: ctx, cancel: cancel,
		data:  make(chan sealedBlob, o.Savers*2),
		trees: make(chan sealedBlob, o.Savers),
		// Most chunks are near the average; the rare large one grows its buffer.
		bufSize: 2 * r.cfg.Chunker.Avg,
	}
	w.sealds.New = func() any { b := make([]byte, 0, w.bufSize+64<<10); return &b }
	w.scratch.New = func() any { var b []byte; return &b }
	w.uploads.SetLimit(o.Uploads)
	w.groups.target, w.groups.members = GroupLimits(w.size)
	// A local folder takes data packs spooled to a temp file as they fill,
	// so no pack is held in memory (two 16 MiB buffers were the largest
	// item of a big backup's heap); other stores get them from memory.
	dataSize := w.size + packSlack
	if sp, ok := storage.AsSpooler(r.be); ok {
		w.spooler, dataSize = sp, 0
	}
	// Tree packs are small and grow as needed.
	dataPacks := newPackPool(o.Uploads+1, dataSize)
	treePacks := newPackPool(2, 1<<20)
	w.packers.Go(func() { w.runPacker(w.data, dataPacks, w.spooler) })
	w.packers.Go(func() { w.runPacker(w.trees, treePacks, nil) })
	return w
}

// fail stops the writer with err as its cause unless err is nil or the
// writer stopped already.
func (w *BlobWriter) fail(err error) {
	if err != nil && w.ctx.Err() == nil {
		w.cancel(err)
		if w.o.Failed != nil {
			w.o.Failed(context.Cause(w.ctx))
		}
	}
}

// err is what stopped the writer, if anything.
func (w *BlobWriter) err() error {
	if w.ctx.Err() == nil {
		return nil
	}
	return context.Cause(w.ctx)
}

// SaveBlob compresses and encrypts a blob in the caller's goroutine and
// queues it for a pack. It waits while the packs are full and uploading.
// The caller may reuse plain once it returns. It does not look for the
// blob in the index: callers decide what is new.
func (w *BlobWriter) SaveBlob(ctx context.Context, t BlobType, id crypto.ID, plain []byte) error {
	return w.SaveBlobNear(ctx, 0, t, id, plain)
}

// SaveBlobNear is SaveBlob for a blob read near others saved with the
// same key (a backup passes the file's folder): a small data blob goes
// into the group filling for that key, so that a group holds neighbours
// a restore writes together.
func (w *BlobWriter) SaveBlobNear(ctx context.Context, near uint64, t BlobType, id crypto.ID, plain []byte) error {
	if err := w.err(); err != nil {
		return err
	}
	if t == DataBlob && len(plain) < GroupBlobMax && w.r.cfg.Groups() {
		full, evicted := w.groups.add(near, id, plain)
		var err error
		for _, g := range []*groupBuilder{evicted, full} {
			if g != nil {
				if err == nil {
					err = w.sealGroup(ctx, g)
				}
				w.groups.recycle(g)
			}
		}
		return err
	}
	var dst []byte
	if len(plain) > w.bufSize/4 {
		dst = (*w.sealds.Get().(*[]byte))[:0]
	}
	sp := w.scratch.Get().(*[]byte)
	data, m, scratch := w.r.SealBlob(dst, t, id, plain, *sp)
	*sp = scratch
	w.scratch.Put(sp)
	ch := w.data
	if t == TreeBlob {
		ch = w.trees
	}
	return w.queue(ctx, ch, sealedBlob{t: t, id: id, data: data, rawLen: len(plain), method: m})
}

// queue hands a sealed blob or group to its packer, or releases it if the
// caller's context or the writer stops first.
func (w *BlobWriter) queue(ctx context.Context, ch chan sealedBlob, s sealedBlob) error {
	select {
	case ch <- s:
		return nil
	case <-ctx.Done():
		w.releaseSealed(s.data)
		return context.Cause(ctx)
	case <-w.ctx.Done():
		w.releaseSealed(s.data)
		return w.err()
	}
}

// sealGroup compresses and encrypts a group and queues it for a pack.
func (w *BlobWriter) sealGroup(ctx context.Context, g *groupBuilder) error {
	dst := (*w.sealds.Get().(*[]byte))[:0]
	sp := w.scratch.Get().(*[]byte)
	data, m, members, scratch := w.r.SealGroupOf(&g.GroupBuilder, dst, *sp)
	*sp = scratch
	w.scratch.Put(sp)
	return w.queue(ctx, w.data, sealedBlob{t: DataBlob, data: data, method: m, members: members})
}

// flushGroups seals the groups still filling, once every SaveBlob has
// returned.
func (w *BlobWriter) flushGroups(ctx context.Context) {
	for _, g := range w.groups.drain() {
		if w.err() == nil {
			w.fail(w.sealGroup(ctx, g))
		}
	}
}

// releaseSealed returns a sealed blob's buffer once the packer copied it;
// small ones were allocated to size and are left to the collector.
func (w *BlobWriter) releaseSealed(b []byte) {
	if cap(b) >= w.bufSize {
		b = b[:0]
		w.sealds.Put(&b)
	}
}

// Finish stores the packs still filling, waits for every upload and saves
// the index. Call it once, after every SaveBlob has returned. If the writer
// failed or its context ended, the packs still filling are dropped and
// Finish returns the cause; the index still records every pack stored, so
// the next backup reuses them.
func (w *BlobWriter) Finish(ctx context.Context) error {
	w.flushGroups(ctx)
	close(w.data)
	close(w.trees)
	w.packers.Wait()
	w.fail(w.uploads.Wait())
	defer w.cancel(nil)
	if err := w.err(); err != nil {
		_ = w.r.SaveIndex(context.WithoutCancel(ctx))
		return err
	}
	return w.r.SaveIndex(ctx)
}

// packPool holds the packs not in use.
type packPool chan *Packer

func newPackPool(n, size int) packPool {
	p := make(packPool, n)
	for range n {
		p <- NewPacker(size)
	}
	return p
}

// runPacker fills packs and hands each full one to an upload. A pack is
// closed before a blob would take it past the pack size.
func (w *BlobWriter) runPacker(in chan sealedBlob, pool packPool, sp storage.Spooler) {
	p := <-pool
	defer func() {
		if p.Count() > 0 {
			p.Reset() // not stored: drops its spool
		}
	}()
	flush := func() {
		if p.Count() == 0 {
			return
		}
		full := p
		p = <-pool // waits while every buffer is uploading: back-pressure
		w.uploads.Go(func() error {
			defer func() { full.Reset(); pool <- full }()
			if err := w.upload(full); err != nil {
				w.fail(err)
				return err
			}
			return nil
		})
	}
	for s := range in {
		if p.Count() > 0 && (p.Size()+len(s.data) > w.size || p.SizeWithGroup(len(s.data), max(len(s.members), 1)) > w.size+packSlack) {
			flush()
		}
		if sp != nil && p.Count() == 0 {
			spool, err := sp.Spool(w.ctx, layout.DataPrefix)
			if err != nil {
				w.releaseSealed(s.data)
				w.fail(fmt.Errorf("start a pack: %w", err))
				continue // drain: the writer has failed
			}
			p.spoolTo(spool)
		}
		if s.members != nil {
			p.AddGroup(s.data, s.method, s.members)
		} else {
			p.Add(s.t, s.id, s.data, s.rawLen, s.method)
		}
		w.releaseSealed(s.data)
		if p.Size() >= w.size {
			flush()
		}
	}
	if w.err() == nil {
		flush()
	}
}

// upload stores one pack, and the index every IndexEvery packs.
func (w *BlobWriter) upload(p *Packer) error {
	data, id, entries, err := p.Finish(w.r.key)
	if err != nil {
		return err
	}
	size := int64(len(data))
	store := func(name string) error { return w.r.be.Create(w.ctx, name, data) }
	if p.Spooled() {
		size = int64(p.Size())
		store = func(name string) error { return p.spool.Commit(w.ctx, name) }
	}
	if err := w.r.storePack(id, size, entries, store); err != nil {
		return err
	}
	if w.o.Stored != nil {
		w.o.Stored(size)
	}
	if w.o.StoredPlain != nil {
		var plain int64
		for _, e := range entries {
			plain += int64(e.RawLength)
		}
		w.o.StoredPlain(plain)
	}
	if w.packs.Add(1)%int64(w.o.IndexEvery) == 0 {
		return w.r.SaveIndex(w.ctx)
	}
	return nil
}
