package cache

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// A bundle holds every folder listing of one recovery point in one file,
// named for the point's root tree, in the order a backup met them. A
// re-backup reads its parent's listings from the bundle: with caches cold,
// the thousands of one-listing files of a 2,000-folder tree cost a
// re-backup of `source` a sixth of its time in seeks, where one file is
// read ahead in a single sequential pass. Every listing is still checked
// against its keyed ID when it is used.
//
// Layout: records of [ID (32 bytes)][length (uint32 LE)][encoding], then
// an index of [ID][offset (uint64 LE)][length (uint32 LE)] per record, then
// a trailer of [index offset (uint64 LE)][record count (uint32 LE)][magic].
const (
	bundleDir       = "bundles"
	bundleMagic     = "CFBNDL01"
	bundleTrailer   = 8 + 4 + len(bundleMagic)
	bundleIndexSize = 32 + 8 + 4
	// keepBundles is how many bundles Trim keeps, newest first: the
	// latest points of a few sets of paths.
	keepBundles = 4
	// maxBundleRecords bounds what an index read from disk may claim.
	maxBundleRecords = 1 << 26
)

type bundleEntry struct {
	off int64
	n   uint32
}

// openBundle is a bundle being read: its index, and the file to read
// listings from.
type openBundle struct {
	f     *os.File
	index map[crypto.ID]bundleEntry
}

// UseBundle makes the listings of the point with this root tree available
// from its bundle, if the cache holds one; whole says the caller will read
// most of them (a backup or a full restore), and the file is read ahead.
// It reports whether there was a usable bundle.
func (c *Cache) UseBundle(root crypto.ID, whole bool) bool {
	f, err := os.Open(c.bundlePath(root))
	if err != nil {
		return false
	}
	index, err := readBundleIndex(f)
	if err != nil {
		f.Close()
		return false
	}
	if whole {
		readAhead(f)
	}
	c.bmu.Lock()
	c.bundles = append(c.bundles, &openBundle{f: f, index: index})
	c.bmu.Unlock()
	return true
}

func readBundleIndex(f *os.File) (map[crypto.ID]bundleEntry, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < int64(bundleTrailer) {
		return nil, errors.New("bundle too short")
	}
	var tr [bundleTrailer]byte
	if _, err := f.ReadAt(tr[:], size-int64(bundleTrailer)); err != nil {
		return nil, err
	}
	if string(tr[12:]) != bundleMagic {
		return nil, errors.New("not a bundle")
	}
	indexOff := int64(binary.LittleEndian.Uint64(tr[:8]))
	count := int64(binary.LittleEndian.Uint32(tr[8:12]))
	if count > maxBundleRecords || indexOff < 0 || indexOff+count*bundleIndexSize != size-int64(bundleTrailer) {
		return nil, errors.New("bundle index out of bounds")
	}
	raw := make([]byte, count*bundleIndexSize)
	if _, err := f.ReadAt(raw, indexOff); err != nil {
		return nil, err
	}
	index := make(map[crypto.ID]bundleEntry, count)
	for e := raw; len(e) > 0; e = e[bundleIndexSize:] {
		var id crypto.ID
		copy(id[:], e[:32])
		off := int64(binary.LittleEndian.Uint64(e[32:40]))
		n := binary.LittleEndian.Uint32(e[40:44])
		if off < 0 || off+int64(n) > indexOff {
			return nil, errors.New("bundle record out of bounds")
		}
		index[id] = bundleEntry{off: off, n: n}
	}
	return index, nil
}

// fromBundle reads a listing from an open bundle; nil if none holds it.
func (c *Cache) fromBundle(id crypto.ID) []byte {
	c.bmu.Lock()
	bundles := c.bundles
	c.bmu.Unlock()
	for _, b := range bundles {
		e, ok := b.index[id]
		if !ok {
			continue
		}
		buf := make([]byte, e.n)
		if _, err := b.f.ReadAt(buf, e.off); err == nil {
			return buf
		}
	}
	return nil
}

// BeginBackup readies the cache for a backup: the bundle of its parent
// point (root tree parent, nil for none) is read ahead, and unless dryRun
// the new point's listings are recorded into a bundle of their own
// (without it, they are kept one file each).
func (c *Cache) BeginBackup(parent *crypto.ID, dryRun bool) {
	if parent != nil {
		c.UseBundle(*parent, true)
	}
	if !dryRun {
		_ = c.RecordBundle()
	}
}

// EndBackup names the bundle for the new point's root tree, if the backup
// made one (nil: none, the bundle is dropped at Close), and trims the
// cache. Failures only cost the next backup its read-ahead.
func (c *Cache) EndBackup(root *crypto.ID) {
	if root != nil {
		_ = c.FinishBundle(*root)
	}
	_ = c.Trim()
}

// bundleWriter collects the listings of the point a backup makes into a
// new bundle: those the backup saves (new or changed folders) and those of
// the parent it keeps as they were (KeepTree). The parent's listings of
// changed folders are read for the comparison but are not the new point's:
// recording every listing served made a 1% re-backup of `office` write a
// bundle twice the size of its point's listings, for the next backup to
// read back.
//
// Kept listings that came from a bundle in use are only noted until the
// first listing that must be written (a saved one, or a kept one that came
// from elsewhere): a re-backup that changes nothing would otherwise copy
// its parent's bundle byte for byte (6 MB for `source`, 25 MB for
// `office`), and its point has the parent's root tree, whose bundle is
// already there.
type bundleWriter struct {
	mu       sync.Mutex
	dir      string
	f        *os.File // nil until the first listing is written
	w        *bufio.Writer
	off      int64
	index    []byte
	seen     map[crypto.ID]struct{}   // written or deferred
	served   map[crypto.ID]servedFrom // read by the backup, not yet kept
	deferred []crypto.ID              // kept from a bundle in use, not written yet, in order
	err      error
}

// servedFrom is where a listing the backup read is kept locally, for
// KeepTree to copy it from.
type servedFrom uint8

const (
	servedBundle servedFrom = iota + 1 // a bundle in use
	servedFile                         // the listing's own file
)

// RecordBundle starts collecting the listings of the point being backed up
// into a bundle, which FinishBundle names for the point's root. While it
// records, saved listings go to the bundle alone.
func (c *Cache) RecordBundle() error {
	dir := filepath.Join(c.dir, bundleDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	c.bmu.Lock()
	c.rec = &bundleWriter{dir: dir, seen: map[crypto.ID]struct{}{}, served: map[crypto.ID]servedFrom{}}
	c.bmu.Unlock()
	return nil
}

func (c *Cache) recording() *bundleWriter {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	return c.rec
}

// noteServed remembers where a listing read during the backup is kept, in
// case the new point keeps it.
func (c *Cache) noteServed(id crypto.ID, from servedFrom) {
	rec := c.recording()
	if rec == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, done := rec.seen[id]; !done {
		rec.served[id] = from
	}
}

// record writes a listing the backup saved into the bundle being
// recorded, if any, and reports whether one is.
func (c *Cache) record(id crypto.ID, encoded []byte) bool {
	rec := c.recording()
	if rec == nil {
		return false
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, dup := rec.seen[id]; dup || rec.err != nil {
		return true
	}
	rec.seen[id] = struct{}{}
	delete(rec.served, id)
	if rec.f == nil {
		rec.start(c)
	}
	rec.write(id, encoded)
	return true
}

// KeepTree tells the cache that the point being backed up keeps a listing
// of its parent as it was, so the point's bundle holds it. A listing the
// cache did not serve is left out: the next backup fetches it.
func (c *Cache) KeepTree(id crypto.ID) {
	rec := c.recording()
	if rec == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	from := rec.served[id]
	if from == 0 || rec.err != nil {
		return
	}
	delete(rec.served, id)
	rec.seen[id] = struct{}{}
	if rec.f == nil {
		if from == servedBundle {
			rec.deferred = append(rec.deferred, id)
			return
		}
		rec.start(c)
	}
	if b := c.kept(id, from); b != nil {
		rec.write(id, b)
	}
}

// kept reads back a listing served earlier. One that cannot be read is
// left out of the bundle; the next backup fetches it from the repository.
func (c *Cache) kept(id crypto.ID, from servedFrom) []byte {
	if from == servedBundle {
		return c.fromBundle(id)
	}
	b, err := os.ReadFile(c.path(id))
	if err != nil {
		return nil
	}
	return b
}

// start creates the bundle's file and writes the listings deferred so
// far, read back from the bundles they came from.
func (rec *bundleWriter) start(c *Cache) {
	var r [8]byte
	_, _ = rand.Read(r[:])
	f, err := os.OpenFile(filepath.Join(rec.dir, ".tmp-"+hex.EncodeToString(r[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		rec.err = err
		return
	}
	rec.f, rec.w = f, bufio.NewWriterSize(f, 256<<10)
	for _, id := range rec.deferred {
		if b := c.kept(id, servedBundle); b != nil {
			rec.write(id, b)
		}
	}
	rec.deferred = nil
}

func (rec *bundleWriter) write(id crypto.ID, encoded []byte) {
	if rec.err != nil {
		return
	}
	var head [32 + 4]byte
	copy(head[:32], id[:])
	binary.LittleEndian.PutUint32(head[32:], uint32(len(encoded)))
	if _, err := rec.w.Write(head[:]); err != nil {
		rec.err = err
		return
	}
	if _, err := rec.w.Write(encoded); err != nil {
		rec.err = err
		return
	}
	var e [bundleIndexSize]byte
	copy(e[:32], id[:])
	binary.LittleEndian.PutUint64(e[32:40], uint64(rec.off)+uint64(len(head)))
	binary.LittleEndian.PutUint32(e[40:44], uint32(len(encoded)))
	rec.index = append(rec.index, e[:]...)
	rec.off += int64(len(head) + len(encoded))
}

// FinishBundle writes the bundle's index and names it for the point's
// root tree. If every listing came from bundles in use and the point's
// root already has one (a re-backup that changed nothing), that bundle is
// kept as the newest instead. Failures only cost the next backup its
// read-ahead.
func (c *Cache) FinishBundle(root crypto.ID) error {
	rec := c.stopRecording()
	if rec == nil {
		return errors.New("no bundle is being recorded")
	}
	if rec.f == nil && rec.err == nil {
		now := c.now()
		if os.Chtimes(c.bundlePath(root), now, now) == nil {
			return nil
		}
		rec.start(c)
	}
	if rec.f == nil { // start could not create the file
		return fmt.Errorf("save the tree cache's bundle: %w", rec.err)
	}
	err := rec.err
	if err == nil {
		_, err = rec.w.Write(rec.index)
	}
	if err == nil {
		var tr [bundleTrailer]byte
		binary.LittleEndian.PutUint64(tr[:8], uint64(rec.off))
		binary.LittleEndian.PutUint32(tr[8:12], uint32(len(rec.index)/bundleIndexSize))
		copy(tr[12:], bundleMagic)
		_, err = rec.w.Write(tr[:])
	}
	if err == nil {
		err = rec.w.Flush()
	}
	size := rec.off + int64(len(rec.index)+bundleTrailer)
	if cerr := rec.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(rec.f.Name(), c.bundlePath(root))
	}
	if err != nil {
		os.Remove(rec.f.Name())
		return fmt.Errorf("save the tree cache's bundle: %w", err)
	}
	c.added.Add(size)
	return nil
}

// AbortBundle drops the bundle being recorded, if any.
func (c *Cache) AbortBundle() {
	if rec := c.stopRecording(); rec != nil && rec.f != nil {
		rec.f.Close()
		os.Remove(rec.f.Name())
	}
}

func (c *Cache) stopRecording() *bundleWriter {
	c.bmu.Lock()
	rec := c.rec
	c.rec = nil
	c.bmu.Unlock()
	if rec != nil {
		// Wait for a record in progress. Not under bmu: a record may be
		// reading deferred listings back from the bundles, under bmu.
		rec.mu.Lock()
		rec.mu.Unlock()
	}
	return rec
}

// Close closes the bundles in use and drops one being recorded.
func (c *Cache) Close() error {
	c.AbortBundle()
	c.bmu.Lock()
	defer c.bmu.Unlock()
	for _, b := range c.bundles {
		b.f.Close()
	}
	c.bundles = nil
	return nil
}

func (c *Cache) bundlePath(root crypto.ID) string {
	return filepath.Join(c.dir, bundleDir, hex.EncodeToString(root[:]))
}

// trimBundles removes all but the newest keepBundles bundles, and the
// leftovers of backups that ended before they finished theirs; it returns
// the bytes it freed.
func (c *Cache) trimBundles() int64 {
	dir := filepath.Join(c.dir, bundleDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	type bundle struct {
		name string
		mod  int64
		size int64
	}
	var all []bundle
	for _, de := range des {
		if fi, err := de.Info(); err == nil {
			all = append(all, bundle{de.Name(), fi.ModTime().UnixNano(), fi.Size()})
		}
	}
	slices.SortFunc(all, func(a, b bundle) int { return cmp.Compare(b.mod, a.mod) })
	var freed int64
	kept := 0
	for _, b := range all {
		unfinished := strings.HasPrefix(b.name, ".tmp-")
		switch {
		case !unfinished && kept < keepBundles:
			kept++
			continue
		case unfinished && c.now().UnixNano()-b.mod < int64(recountEvery):
			continue // perhaps another backup's, still recording
		}
		if os.Remove(filepath.Join(dir, b.name)) == nil {
			freed += b.size
		}
	}
	return freed
}
