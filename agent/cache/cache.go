// Package cache keeps a local copy of a repository's tree blobs, so an
// incremental backup compares against the previous point without fetching
// every folder listing from Azure. It is only a cache: every entry is
// checked against its keyed ID on load, a missing or stale entry is fetched
// from the repository again, and its size is bounded.
package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// DefaultMaxBytes bounds a repository's cache folder.
const DefaultMaxBytes = 1 << 30

// Source is where a miss is fetched from: the repository.
type Source interface {
	LoadBlob(ctx context.Context, id crypto.ID) ([]byte, error)
	Key() *crypto.Key
}

// Cache is one repository's tree cache.
type Cache struct {
	dir   string
	src   Source
	max   int64
	now   func() time.Time
	added atomic.Int64 // bytes SaveTree wrote since New

	bmu     sync.Mutex
	bundles []*openBundle // in use, from UseBundle
	rec     *bundleWriter // being recorded, from RecordBundle
}

// ledgerName is the file that remembers the cache's size, so that Trim
// need not list the whole cache after every backup: with a long history
// it holds hundreds of thousands of trees, and listing them cold took
// longer than a re-backup that found nothing changed.
const ledgerName = "size"

// recountEvery is how often Trim lists the cache anyway, correcting the
// ledger for what other processes sharing the cache wrote or removed.
const recountEvery = 24 * time.Hour

// DefaultDir is the per-user cache folder for a repository ID.
func DefaultDir(repoID string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache folder: %w", err)
	}
	return filepath.Join(base, "coffer", repoID), nil
}

// ForRepository opens the folder of the repository repoID under dir, or
// under the user's cache folder when dir is empty.
func ForRepository(dir, repoID string, src Source) (*Cache, error) {
	if dir == "" {
		d, err := DefaultDir(repoID)
		if err != nil {
			return nil, fmt.Errorf("%w; give a cache folder with --cache-dir", err)
		}
		return New(d, src, 0)
	}
	return New(filepath.Join(dir, repoID), src, 0)
}

// New opens (creating) the cache folder. maxBytes <= 0 means the default.
func New(dir string, src Source, maxBytes int64) (*Cache, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(filepath.Join(dir, "trees"), 0o700); err != nil {
		return nil, fmt.Errorf("create cache folder %s: %w", dir, err)
	}
	return &Cache{dir: dir, src: src, max: maxBytes, now: time.Now}, nil
}

func (c *Cache) path(id crypto.ID) string {
	h := hex.EncodeToString(id[:])
	return filepath.Join(c.dir, "trees", h[:2], h)
}

// LoadTree returns a tree from the cache, or from the repository on a miss.
func (c *Cache) LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error) {
	if b, from := c.local(id); b != nil {
		if t, err := tree.Decode(b); err == nil {
			c.noteServed(id, from)
			return t, nil
		}
	}
	b, err := c.src.LoadBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := tree.Decode(b)
	if err != nil {
		return nil, err
	}
	c.fetched(id, b)
	return t, nil
}

// LoadTreeBytes is LoadTree without the decoding: a tree's encoding, from
// the cache if it holds it, else from the repository (and kept).
func (c *Cache) LoadTreeBytes(ctx context.Context, id crypto.ID) ([]byte, error) {
	if b, from := c.local(id); b != nil {
		c.noteServed(id, from)
		return b, nil
	}
	b, err := c.src.LoadBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	c.fetched(id, b)
	return b, nil
}

// fetched keeps a listing fetched from the repository in a file of its
// own: during a backup it is the parent's, which goes into the new
// point's bundle only if the point keeps it.
func (c *Cache) fetched(id crypto.ID, b []byte) {
	if c.saveFile(id, b) {
		c.noteServed(id, servedFile)
	}
}

// local is a tree's encoding from a bundle in use or the tree's own file,
// if either holds it intact, and where it came from; nil otherwise.
func (c *Cache) local(id crypto.ID) ([]byte, servedFrom) {
	if b := c.fromBundle(id); b != nil && c.src.Key().ChunkID(b) == id {
		return b, servedBundle
	}
	if b, err := os.ReadFile(c.path(id)); err == nil && c.src.Key().ChunkID(b) == id {
		return b, servedFile
	}
	return nil, 0
}

// SaveTree keeps a tree the backup encoded: in the bundle being recorded,
// or else in a file of its own. Failures only cost a later fetch.
func (c *Cache) SaveTree(id crypto.ID, encoded []byte) {
	if !c.record(id, encoded) {
		c.saveFile(id, encoded)
	}
}

// saveFile keeps an encoded tree in a file of its own and reports whether
// the file is there.
func (c *Cache) saveFile(id crypto.ID, encoded []byte) bool {
	p := c.path(id)
	if _, err := os.Stat(p); err == nil {
		return true
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return false
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, encoded, 0o600); err != nil {
		return false
	}
	if os.Rename(tmp, p) != nil {
		return false
	}
	c.added.Add(int64(len(encoded)))
	return true
}

// Trim removes the least recently written entries until the cache fits its
// bound. It lists the cache only when the ledger (the size at the last
// count, plus what this process wrote since) says the bound is passed,
// when there is no ledger, or once a day.
func (c *Cache) Trim() error {
	// Taken at once, so that a tree saved while Trim runs counts next time.
	added := c.added.Swap(0) - c.trimBundles()
	ledger := filepath.Join(c.dir, ledgerName)
	if fi, err := os.Stat(ledger); err == nil && c.now().Sub(fi.ModTime()) < recountEvery {
		if b, err := os.ReadFile(ledger); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n >= 0 {
				if total := n + added; total <= c.max {
					return writeLedger(ledger, total, fi.ModTime())
				}
			}
		}
	}
	total, err := c.trim()
	if err != nil {
		c.added.Add(added) // not counted: still owed to the ledger
		return err
	}
	return writeLedger(ledger, total, c.now())
}

// writeLedger records the cache's size; counted is when it was last
// listed, kept as the file's time so the daily recount is not put off by
// the updates in between.
func writeLedger(path string, total int64, counted time.Time) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(total, 10)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, counted, counted); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// trim lists the cache, removes the least recently written entries until
// it fits its bound, and returns its size afterwards.
func (c *Cache) trim() (int64, error) {
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var all []entry
	var total int64
	err := filepath.WalkDir(filepath.Join(c.dir, "trees"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			all = append(all, entry{p, fi.Size(), fi.ModTime()})
			total += fi.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	// Bundles count against the bound; trimBundles keeps their number down.
	if des, err := os.ReadDir(filepath.Join(c.dir, bundleDir)); err == nil {
		for _, de := range des {
			if fi, err := de.Info(); err == nil {
				total += fi.Size()
			}
		}
	}
	if total <= c.max {
		return total, nil
	}
	slices.SortFunc(all, func(a, b entry) int { return a.mod.Compare(b.mod) })
	for _, e := range all {
		if total <= c.max {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
	return total, nil
}
