package repository

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
)

// Location is where a blob is stored.
type Location struct {
	Pack crypto.ID
	BlobEntry
}

// PackInfo is what the index knows of a pack.
type PackInfo struct {
	Size  int64
	Blobs []BlobEntry
	slot  uint32 // in Index.slots
}

// Index maps blob IDs to their packs. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	blobs   map[crypto.ID]blobRef
	packs   map[crypto.ID]*PackInfo
	slots   []packSlot  // the packs by number, for blobRef; a dropped pack's is empty
	pending []crypto.ID // packs not yet recorded in an index file
}

// blobRef is where the index has a blob: its pack's slot and its entry in
// that pack's Blobs. The map holds these 8 bytes rather than a Location
// (88), which repeated the entry its pack holds anyway: for `office`'s
// 130,000 blobs that was about 12 MB more for every command to fill, page
// by page, before doing anything else, and held to its end.
type blobRef struct{ slot, entry uint32 }

type packSlot struct {
	id   crypto.ID
	info *PackInfo
}

// NewIndex is an empty index.
func NewIndex() *Index {
	return &Index{blobs: map[crypto.ID]blobRef{}, packs: map[crypto.ID]*PackInfo{}}
}

// Lookup finds a blob.
func (x *Index) Lookup(id crypto.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r, ok := x.blobs[id]
	if !ok {
		return Location{}, false
	}
	s := x.slots[r.slot]
	return Location{Pack: s.id, BlobEntry: s.info.Blobs[r.entry]}, true
}

// Has reports whether a blob is stored.
func (x *Index) Has(id crypto.ID) bool {
	_, ok := x.Lookup(id)
	return ok
}

// Pack describes a pack, if known.
func (x *Index) Pack(id crypto.ID) (*PackInfo, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p, ok := x.packs[id]
	return p, ok
}

// Packs lists every known pack.
func (x *Index) Packs() map[crypto.ID]*PackInfo {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[crypto.ID]*PackInfo, len(x.packs))
	for k, v := range x.packs {
		out[k] = v
	}
	return out
}

// Len is the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// add records a pack; pending packs are written by SaveIndex.
func (x *Index) add(pack crypto.ID, size int64, entries []BlobEntry, pending bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.packs[pack]; ok {
		return
	}
	info := &PackInfo{Size: size, Blobs: entries, slot: uint32(len(x.slots))}
	x.packs[pack] = info
	x.slots = append(x.slots, packSlot{id: pack, info: info})
	for i, e := range entries {
		if _, ok := x.blobs[e.ID]; !ok {
			x.blobs[e.ID] = blobRef{info.slot, uint32(i)}
		}
	}
	if pending {
		x.pending = append(x.pending, pack)
	}
}

// reserve makes room for n more blobs at once.
func (x *Index) reserve(n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n <= 0 {
		return
	}
	grown := make(map[crypto.ID]blobRef, len(x.blobs)+n)
	for id, l := range x.blobs {
		grown[id] = l
	}
	x.blobs = grown
}

// drop forgets a pack that no longer exists (purged by the control plane).
// It adds to orphaned the blobs it took out of the index; relink finds them
// another copy, once for all the packs dropped.
func (x *Index) drop(pack crypto.ID, orphaned map[crypto.ID]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.packs[pack]
	if !ok {
		return
	}
	for _, e := range p.Blobs {
		if r, ok := x.blobs[e.ID]; ok && r.slot == p.slot {
			delete(x.blobs, e.ID)
			orphaned[e.ID] = true
		}
	}
	delete(x.packs, pack)
	x.slots[p.slot] = packSlot{}
}

// relink points blobs whose pack was dropped at another copy, if a pack
// still there holds one: a blob may be stored twice (a repack, or a
// backup killed before its index).
func (x *Index) relink(orphaned map[crypto.ID]bool) {
	if len(orphaned) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, q := range x.packs {
		for i, e := range q.Blobs {
			if orphaned[e.ID] {
				x.blobs[e.ID] = blobRef{q.slot, uint32(i)}
				delete(orphaned, e.ID)
			}
		}
	}
}

// indexFile is the sealed content of index/<ID>.
type indexFile struct {
	Packs []indexPack `cbor:"1,keyasint"`
}

type indexPack struct {
	ID    crypto.ID   `cbor:"1,keyasint"`
	Size  int64       `cbor:"2,keyasint"`
	Blobs []BlobEntry `cbor:"3,keyasint"`
}

// SavePack stores a finished pack and records it in the index as pending.
func (r *Repository) SavePack(ctx context.Context, data []byte, id crypto.ID, entries []BlobEntry) error {
	return r.storePack(id, int64(len(data)), entries, func(name string) error { return r.be.Create(ctx, name, data) })
}

// storePack stores a pack of size bytes with store, whether it hands over
// bytes in memory (SavePack) or names a spooled file, and indexes it.
func (r *Repository) storePack(id crypto.ID, size int64, entries []BlobEntry, store func(name string) error) error {
	err := store(PackName(id))
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("upload pack %s: %w", id, err)
	}
	// ErrExists: the same bytes are already there (packs are named by their
	// hash), for instance from a retried upload.
	r.index.add(id, size, entries, true)
	return nil
}

// TempDebrisAge is how old a temp file of the storage must be before
// SweepTemps takes it for debris: writes in progress rewrite theirs
// continuously, so a day is far past any of them.
const TempDebrisAge = 24 * time.Hour

// SweepTemps removes temporary files that interrupted writes left in the
// storage (a local folder's; other stores leave none) and reports how
// many. Call it only while no other writer could be using them: prune
// does, holding its lock.
func (r *Repository) SweepTemps(ctx context.Context) (int, error) {
	sw, ok := storage.AsTempSweeper(r.be)
	if !ok {
		return 0, nil
	}
	return sw.SweepTemps(ctx, r.now().Add(-TempDebrisAge))
}

// SaveIndex writes an index file for the packs saved since the last call.
// Backups call it now and then, so a backup killed midway leaves its
// uploaded packs indexed for the next one.
func (r *Repository) SaveIndex(ctx context.Context) error {
	r.index.mu.Lock()
	pending := r.index.pending
	r.index.pending = nil
	var f indexFile
	for _, id := range pending {
		p := r.index.packs[id]
		f.Packs = append(f.Packs, indexPack{ID: id, Size: p.Size, Blobs: p.Blobs})
	}
	r.index.mu.Unlock()
	if len(f.Packs) == 0 {
		return nil
	}
	plain, err := encMode.Marshal(&f)
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	sealed, id := r.seal(plain, adIndex)
	if err := r.create(ctx, layout.Index(id), sealed); err != nil {
		r.index.mu.Lock()
		r.index.pending = append(r.index.pending, pending...)
		r.index.mu.Unlock()
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// seal encrypts plaintext and returns it with its ID, SHA-256(sealed), so
// a caller can name the object before storing it.
func (r *Repository) seal(plain, ad []byte) (sealed []byte, id string) {
	sealed = r.key.Seal(nil, plain, ad)
	return sealed, hashID(sealed)
}

// create stores a content-addressed object. ErrExists means the same bytes
// are already there, which is success.
func (r *Repository) create(ctx context.Context, name string, b []byte) error {
	if err := r.be.Create(ctx, name, b); err != nil && !errors.Is(err, storage.ErrExists) {
		return err
	}
	return nil
}

// loadSealed reads and decrypts prefix+id, checking the name first.
func (r *Repository) loadSealed(ctx context.Context, name string, ad []byte) ([]byte, error) {
	sealed, err := storage.ReadAll(ctx, r.be, name)
	if err != nil {
		return nil, err
	}
	if hashID(sealed) != name[strings.LastIndexByte(name, '/')+1:] {
		return nil, fmt.Errorf("%w: %s does not match its name", ErrDamaged, name)
	}
	plain, err := r.key.Open(sealed[:0], sealed, ad) // in place: sealed is not kept
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, name, err)
	}
	return plain, nil
}

// IndexStats says what LoadIndex found.
type IndexStats struct {
	IndexFiles   int
	Packs        int
	Blobs        int
	Recovered    int      // packs found in storage but in no index (an interrupted backup's)
	Missing      int      // indexed packs no longer in storage (purged)
	DamagedIndex []string // index files that failed to load
	DamagedPacks []string // unindexed packs whose header failed to load
}

// LoadIndex reads every index file, then lists the packs in storage: an
// indexed pack that is gone (purged) is forgotten, and a stored pack that
// no index names (left by an interrupted backup) is indexed from its own
// header, so its blobs are reused instead of uploaded again.
func (r *Repository) LoadIndex(ctx context.Context) (IndexStats, error) {
	var st IndexStats
	// The packs are listed while the index files are read: on a cold disk
	// each is a wait on folders, and a one-file restore waits for both.
	stored := map[crypto.ID]int64{}
	listed := make(chan error, 1)
	go func() {
		listed <- r.be.List(ctx, layout.DataPrefix, func(fi storage.Info) error {
			if id, err := packIDFromName(fi.Name); err == nil {
				stored[id] = fi.Size
			}
			return nil
		})
	}()
	defer func() {
		if listed != nil {
			<-listed // never outlives the call
		}
	}()
	var names []string
	if err := r.be.List(ctx, layout.IndexPrefix, func(fi storage.Info) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return st, fmt.Errorf("list index files: %w", err)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	files := make([]indexFile, len(names))
	for i, name := range names {
		g.Go(func() error {
			plain, err := r.loadSealed(gctx, name, adIndex)
			if err == nil {
				files[i], err = decodeIndex(plain)
			}
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return err
				}
				mu.Lock()
				st.DamagedIndex = append(st.DamagedIndex, name)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	// Sized once for every blob: growing the map step by step to the
	// 130,000 blobs of `office` took half of loading its index.
	blobs := 0
	for _, f := range files {
		for _, p := range f.Packs {
			blobs += len(p.Blobs)
		}
	}
	r.index.reserve(blobs)
	for _, f := range files {
		for _, p := range f.Packs {
			r.index.add(p.ID, p.Size, p.Blobs, false)
		}
	}
	st.IndexFiles = len(names) - len(st.DamagedIndex)
	r.indexFiles = slices.Sorted(slices.Values(names))

	err := <-listed
	listed = nil
	if err != nil {
		return st, fmt.Errorf("list packs: %w", err)
	}
	orphaned := map[crypto.ID]bool{}
	for id := range r.index.Packs() {
		if _, ok := stored[id]; !ok {
			r.index.drop(id, orphaned)
			st.Missing++
		}
	}
	r.index.relink(orphaned)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for id, size := range stored {
		if _, ok := r.index.Pack(id); ok {
			continue
		}
		g.Go(func() error {
			entries, err := r.ReadPackHeader(gctx, id, size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.DamagedPacks = append(st.DamagedPacks, PackName(id))
				return nil
			}
			r.index.add(id, size, entries, true)
			st.Recovered++
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	st.Packs = len(r.index.Packs())
	st.Blobs = r.index.Len()
	return st, nil
}

func packIDFromName(name string) (crypto.ID, error) {
	var id crypto.ID
	h, ok := layout.ParsePack(name)
	if !ok {
		return id, fmt.Errorf("%q is not a pack name", name)
	}
	hex.Decode(id[:], []byte(h)) // cannot fail: ParsePack checked the digits
	return id, nil
}
