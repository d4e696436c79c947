package archiver

import (
	"bytes"
	"path"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// Changes is what a backup changed against its parent point, in counts
// only, for the control plane's ransomware alarm: ransomware rewrites many
// files at once with content that no longer compresses, often renaming them
// to a new extension and deleting the originals. No name, extension or
// content is in here.
type Changes struct {
	// ParentFiles is the parent point's file count; 0 means nothing was
	// compared (no parent, or its listing could not be read whole), and
	// then the counters below describe nothing.
	ParentFiles int64
	Files       int64
	// Changed: files at the same path whose content differs.
	Changed int64
	// Renamed: new files where a vanished file of the parent was, under
	// its name with an extension added or replaced.
	Renamed int64
	// Incompressible: changed or renamed files whose old content
	// compressed well and whose new content does not compress.
	Incompressible int64
	// Overwritten: changed or renamed files of several chunks, each chunk
	// new, at the same size.
	Overwritten int64
	// NewExtension: new files, in folders the parent had, whose extension
	// no file of the folder had; TopNewExtension: the most of them sharing
	// one extension.
	NewExtension    int64
	TopNewExtension int64
	// Deleted: files of the parent that are gone.
	Deleted int64
}

// Thresholds of "compressed well" and "does not compress", in shares of a
// file's bytes. zstd at its fastest level stores text at 30–50% of its size,
// and the compressor stores a chunk as it is when zstd saves under 1/32, so
// the two never meet in the middle.
const (
	wellCompressed  = 0.8 // old content stored in at most 80% of its size
	incompressibleS = 0.9 // 90% of the new bytes stored uncompressed
)

// changeCounter gathers Changes while the backup runs: the walker and the
// file workers count, and the compressibility of changed files is judged
// at the end, when every new blob is in the index with its method.
type changeCounter struct {
	incomplete atomic.Bool // a listing of the parent could not be read
	matched    atomic.Int64
	changed    atomic.Int64
	renamed    atomic.Int64
	overwrote  atomic.Int64
	newExt     atomic.Int64

	mu        sync.Mutex
	extCounts map[string]int64
	suspects  [][]crypto.ID // new content of files whose old content compressed well
}

// noteDir counts, for one listed folder that the parent had, the new files
// whose extension is new to the folder, and pairs new files with the
// vanished files they may have replaced. It returns that pairing: the old
// node each new name stands for. oldIdx pairs names with old's nodes, as
// matchOld does.
func (c *changeCounter) noteDir(old *tree.Tree, names []string, regular []bool, oldIdx []int32) map[string]*tree.Node {
	if old == nil {
		return nil
	}
	present := make([]bool, len(old.Nodes))
	for _, j := range oldIdx {
		if j >= 0 {
			present[j] = true
		}
	}
	oldExts := map[string]bool{}
	gone := map[string]*tree.Node{} // by name, and by name without extension
	files := 0
	for i := range old.Nodes {
		n := &old.Nodes[i]
		if n.Type != tree.File {
			continue
		}
		files++
		// Looked up before it is set, so only a new extension is copied
		// into a string.
		if ext := nameExt(n.Name); !oldExts[string(ext)] {
			oldExts[string(ext)] = true
		}
		if !present[i] {
			name := string(n.Name)
			gone[name] = n
			if stem := stripExt(name); stem != name {
				if _, dup := gone[stem+"\x00"]; !dup {
					gone[stem+"\x00"] = n
				}
			}
		}
	}
	if files == 0 {
		return nil
	}
	var pairs map[string]*tree.Node
	for i, name := range names {
		if !regular[i] {
			continue
		}
		if j := oldIdx[i]; j >= 0 && old.Nodes[j].Type == tree.File {
			continue // not new
		}
		if ext := path.Ext(name); ext != "" && !oldExts[ext] {
			c.newExt.Add(1)
			c.mu.Lock()
			if c.extCounts == nil {
				c.extCounts = map[string]int64{}
			}
			c.extCounts[ext]++
			c.mu.Unlock()
		}
		stem := stripExt(name)
		was := gone[stem] // "a.docx.locked" for a vanished "a.docx"
		if was == nil && stem != name {
			was = gone[stem+"\x00"] // "a.locked" for a vanished "a.docx"
		}
		if was != nil {
			if pairs == nil {
				pairs = map[string]*tree.Node{}
			}
			pairs[name] = was
		}
	}
	return pairs
}

// nameExt is path.Ext of a node's name, without converting it to a string.
func nameExt(name []byte) []byte {
	if i := bytes.LastIndexByte(name, '.'); i >= 0 {
		return name[i:]
	}
	return nil
}

func stripExt(name string) string { return name[:len(name)-len(path.Ext(name))] }

// noteFile counts a file whose content was read: changed against the node
// at its path, or renamed from a vanished one. idx judges old content.
func (c *changeCounter) noteFile(idx *repository.Index, old, was *tree.Node, content []tree.Ref) {
	var prev *tree.Node
	switch {
	case old != nil && old.Type == tree.File:
		if sameContent(old.Content, content) {
			return // touched, not changed
		}
		c.changed.Add(1)
		prev = old
	case was != nil:
		c.renamed.Add(1)
		prev = was
	default:
		return
	}
	if overwritten(prev.Content, content) {
		c.overwrote.Add(1)
	}
	if !compressedWell(idx, prev.Content) {
		return
	}
	ids := make([]crypto.ID, 0, len(content))
	for _, r := range content {
		if !r.Hole {
			ids = append(ids, r.ID)
		}
	}
	c.mu.Lock()
	c.suspects = append(c.suspects, ids)
	c.mu.Unlock()
}

// result judges the suspects, whose new blobs are all in idx by now.
func (c *changeCounter) result(idx *repository.Index, parent *repository.Point, files int64) Changes {
	ch := Changes{Files: files}
	if parent == nil || c.incomplete.Load() {
		return ch
	}
	ch.ParentFiles = parent.Summary.Files
	ch.Changed, ch.Renamed, ch.NewExtension = c.changed.Load(), c.renamed.Load(), c.newExt.Load()
	ch.Overwritten = c.overwrote.Load()
	ch.Deleted = max(0, ch.ParentFiles-c.matched.Load())
	for _, n := range c.extCounts {
		ch.TopNewExtension = max(ch.TopNewExtension, n)
	}
	for _, ids := range c.suspects {
		if incompressible(idx, ids) {
			ch.Incompressible++
		}
	}
	return ch
}

func sameContent(a, b []tree.Ref) bool {
	return slices.Equal(a, b)
}

// overwritten: the old content had several chunks, the new content is the
// same size, and not one chunk survived. An edit, an append or a tag change
// keeps the chunks away from it; only a rewrite of every byte, as
// encryption does, loses them all. One-chunk files say nothing: any edit
// replaces their only chunk.
func overwritten(old, cur []tree.Ref) bool {
	var size, chunks int64
	kept := map[crypto.ID]bool{}
	for _, r := range old {
		size += r.Size
		if !r.Hole {
			chunks++
			kept[r.ID] = true
		}
	}
	if chunks < 2 {
		return false
	}
	for _, r := range cur {
		size -= r.Size
		if !r.Hole && kept[r.ID] {
			return false
		}
	}
	return size == 0
}

// compressedWell: the content's stored blobs take at most wellCompressed
// of its size. Blobs the index no longer knows (purged) do not count; an
// empty file never compressed at all.
func compressedWell(idx *repository.Index, refs []tree.Ref) bool {
	var raw, stored int64
	for _, r := range refs {
		if r.Hole {
			continue
		}
		l, ok := idx.Lookup(r.ID)
		if !ok {
			continue
		}
		raw += int64(l.RawLength)
		stored += l.StoredSize()
	}
	// Small files are mostly sealing overhead; below 1 KiB nothing is
	// judged.
	return raw >= 1<<10 && float64(stored) <= wellCompressed*float64(raw)
}

// incompressible: at least incompressibleS of the content's bytes were
// stored uncompressed, because zstd could not shrink them.
func incompressible(idx *repository.Index, ids []crypto.ID) bool {
	var raw, plain int64
	for _, id := range ids {
		l, ok := idx.Lookup(id)
		if !ok {
			continue
		}
		raw += int64(l.RawLength)
		if l.Method == compress.None {
			plain += int64(l.RawLength)
		}
	}
	return raw >= 1<<10 && float64(plain) >= incompressibleS*float64(raw)
}
