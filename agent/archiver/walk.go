package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/hugemem"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// dirState is a directory whose tree blob is not written yet.
type dirState struct {
	path    string // on disk
	seq     uint64 // tells the folder's blobs from others' (sealJob.near)
	nodes   []tree.Node
	pending atomic.Int64 // children not done, plus one while listing
	parent  *dirState
	slot    int // our node in parent.nodes
	// old is the parent point's tree of this folder, and oldID its ID, if
	// the point had the folder: a folder whose nodes all come out the same
	// keeps that tree without encoding it again.
	old   *tree.Tree
	oldID crypto.ID
	// dir is the folder, open while its files are looked up and opened in
	// it (fsmeta.LstatAt, OpenAt); files counts those still to process,
	// plus one while listing. nil above the chosen paths.
	dir   *os.File
	files atomic.Int64
}

// fileDone counts one of d's files as looked up; the last closes d.dir.
func (d *dirState) fileDone() { d.filesDone(1) }

// filesDone counts n of d's files as looked up.
func (d *dirState) filesDone(n int) {
	if d.files.Add(-int64(n)) == 0 && d.dir != nil {
		d.dir.Close()
	}
}

// pathTrie holds the chosen paths, so the point's root mirrors their
// absolute locations ("home/ann/docs") with only the chosen parts inside.
type pathTrie struct {
	children map[string]*pathTrie
	chosen   bool // back up everything below
}

func buildTrie(roots []string) *pathTrie {
	t := &pathTrie{children: map[string]*pathTrie{}}
	for _, r := range roots {
		n := t
		for _, c := range pathComponents(r) {
			next, ok := n.children[c]
			if !ok {
				next = &pathTrie{children: map[string]*pathTrie{}}
				n.children[c] = next
			}
			n = next
		}
		n.chosen = true
	}
	return t
}

// pathComponents splits an absolute path; a Windows volume ("C:") becomes
// its letter ("C").
func pathComponents(p string) []string {
	vol := filepath.VolumeName(p)
	rest := strings.Trim(filepath.ToSlash(p[len(vol):]), "/")
	var out []string
	if vol != "" {
		out = append(out, strings.TrimSuffix(vol, ":"))
	}
	if rest != "" {
		out = append(out, strings.Split(rest, "/")...)
	}
	return out
}

// hardLinks shares one read among the names of each multiply-linked file:
// the first worker to reach one of them reads it, the others wait and copy
// its node, so every name holds the same content whichever came first.
type hardLinks struct {
	mu     sync.Mutex
	groups map[[2]uint64]*linkGroup
}

type linkGroup struct {
	done chan struct{}
	node tree.Node // the reader's node once done is closed; Type 0 if it was skipped
}

// join returns the group of the file with this device and inode, and
// whether the caller is the one to read it (and must publish).
func (h *hardLinks) join(key [2]uint64) (*linkGroup, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g, ok := h.groups[key]; ok {
		return g, false
	}
	g := &linkGroup{done: make(chan struct{})}
	h.groups[key] = g
	return g, true
}

func (g *linkGroup) publish(n *tree.Node) {
	g.node = *n
	close(g.done)
}

func (a *archiver) walk(ctx context.Context, roots []string) error {
	var old *tree.Tree
	if a.opts.Parent != nil {
		t, err := a.trees.LoadTree(ctx, a.opts.Parent.Tree)
		if err != nil {
			// The parent only saves work; without it every file is read.
			a.warn("", fmt.Errorf("could not load the previous point's tree, reading every file: %v", err))
			a.change.incomplete.Store(true)
		} else {
			old = t
		}
	}
	root := &dirState{path: rootPath(), old: old, seq: a.dirSeq.Add(1)}
	if old != nil {
		root.oldID = a.opts.Parent.Tree
	}
	links := &hardLinks{groups: map[[2]uint64]*linkGroup{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Walkers)
	a.walkers = g
	g.Go(func() error { return a.walkDir(gctx, root, buildTrie(roots), links) })
	return g.Wait()
}

// walkWorkers is how many folders are listed at once. With a cold cache
// a listing, the folder's own metadata and the parent point's tree for it
// each wait on the disk; listing 2,000 unchanged folders 8 at a time made
// a no-change re-backup about a fifth faster than one at a time.
const walkWorkers = 8

func rootPath() string {
	if filepath.Separator == '\\' {
		return "" // volumes come from the trie
	}
	return "/"
}

type entry struct {
	name string
	trie *pathTrie   // nil below a chosen path
	de   fs.DirEntry // from the listing; nil for the chosen paths' ancestors
}

// walkDir lists one directory, queues its files and recurses into its
// subdirectories. trie is non-nil while above the chosen paths. d.old, the
// parent point's tree of the folder, stays until the folder's tree is
// written (childDone), which cannot happen before its listing is done.
func (a *archiver) walkDir(ctx context.Context, d *dirState, trie *pathTrie, links *hardLinks) error {
	old := d.old
	if err := ctx.Err(); err != nil {
		return err
	}
	var entries []entry
	if trie != nil && !trie.chosen {
		for name, child := range trie.children {
			entries = append(entries, entry{name: name, trie: child})
		}
		slices.SortFunc(entries, func(x, y entry) int { return strings.Compare(x.name, y.name) })
	} else {
		dir, des, err := readDir(d.path)
		if err != nil {
			a.warn(d.path, fmt.Errorf("cannot list folder: %v", err))
		}
		d.dir = dir
		entries = make([]entry, 0, len(des))
		filtering := a.mayExclude()
		for _, de := range des {
			if filtering && a.skipEntry(joinPath(d.path, de.Name()), de) {
				continue
			}
			entries = append(entries, entry{name: de.Name(), de: de})
		}
	}
	var (
		oldIdx      []int32 // entry i's node in the parent is old.Nodes[oldIdx[i]], if not -1
		renamedFrom map[string]*tree.Node
	)
	if old != nil {
		oldIdx = matchOld(entries, old.Nodes)
		names, regular := make([]string, len(entries)), make([]bool, len(entries))
		for i, e := range entries {
			names[i], regular[i] = e.name, e.de != nil && e.de.Type().IsRegular()
		}
		renamedFrom = a.change.noteDir(old, names, regular, oldIdx)
	}
	d.nodes = hugemem.Make[tree.Node](len(entries))
	d.pending.Store(int64(len(entries)) + 1)
	d.files.Store(1)
	defer d.fileDone() // the listing's
	var batch *fileBatch
	defer func() {
		// A walk that stops early never hands these over: they are done.
		if batch != nil {
			d.filesDone(len(batch.jobs))
		}
	}()
	send := func(b *fileBatch) error {
		select {
		case a.fileCh <- b:
			return nil
		case <-ctx.Done():
			d.filesDone(len(b.jobs))
			return ctx.Err()
		}
	}
	flush := func() error {
		b := batch
		batch = nil
		if b == nil {
			return nil
		}
		return send(b)
	}
	// queue hands a file to the readers: files the parent point had, small
	// ones, in batches (see fileBatch); others one by one, so that large or
	// new files are read in parallel.
	queue := func(j fileJob) error {
		a.prog.FilesSeen.Add(1)
		d.files.Add(1)
		if o := j.old; o == nil || o.Type != tree.File || o.Size > batchFileMax {
			return send(&fileBatch{jobs: []fileJob{j}})
		}
		if batch == nil {
			batch = &fileBatch{jobs: make([]fileJob, 0, min(batchFiles, len(entries)))}
		}
		batch.jobs = append(batch.jobs, j)
		batch.bytes += j.old.Size
		if len(batch.jobs) == batchFiles || batch.bytes >= batchBytes {
			return flush()
		}
		return nil
	}
	for i, e := range entries {
		// Let the listing go as it is used: a large folder's entries
		// would otherwise stay until its last file is queued.
		entries[i] = entry{}
		path := joinPath(d.path, e.name)
		node := &d.nodes[i]
		var oldNode *tree.Node
		if oldIdx != nil && oldIdx[i] >= 0 {
			oldNode = &old.Nodes[oldIdx[i]]
			node.Name = oldNode.Name // the same bytes, already in memory
		} else {
			node.Name = []byte(e.name)
		}
		if e.de != nil && e.de.Type().IsRegular() {
			// Files are examined by the readers, in parallel: on a cold
			// cache their metadata costs a disk seek each.
			if err := queue(fileJob{path: path, name: e.name, node: node, old: oldNode, was: renamedFrom[e.name], dir: d, links: links}); err != nil {
				return err
			}
			continue
		}
		meta, err := fsmeta.LstatAt(d.dir, e.name, path)
		if err != nil {
			a.warn(path, fmt.Errorf("cannot read its metadata: %v", err))
			a.childDone(ctx, d)
			continue
		}
		a.describe(node, path, meta)
		switch meta.Kind {
		case fsmeta.Dir:
			a.stats.dirs.Add(1)
			child := &dirState{path: path, parent: d, slot: i, seq: a.dirSeq.Add(1)}
			if e.de != nil && a.otherDevice(meta) {
				// A mount point under --one-file-system: kept, empty.
				child.pending.Store(1)
				a.childDone(ctx, child)
				continue
			}
			sub := func() error {
				if oldNode != nil && oldNode.Type == tree.Dir && oldNode.Subtree != nil {
					if t, err := a.trees.LoadTree(ctx, *oldNode.Subtree); err == nil {
						child.old, child.oldID = t, *oldNode.Subtree
					} else {
						// Its files would look new and the parent's deleted.
						a.change.incomplete.Store(true)
					}
				}
				return a.walkDir(ctx, child, e.trie, links)
			}
			// Another walker if one is free, else this one, after
			// handing over the files queued so far.
			if !a.walkers.TryGo(sub) {
				if err := flush(); err != nil {
					return err
				}
				if err := sub(); err != nil {
					return err
				}
			}
		case fsmeta.File:
			// A chosen path that is itself a file.
			if err := queue(fileJob{path: path, name: e.name, node: node, old: oldNode, dir: d, links: links}); err != nil {
				return err
			}
		case fsmeta.Symlink:
			target, err := os.Readlink(path)
			if err != nil {
				a.warn(path, fmt.Errorf("cannot read link: %v", err))
				node.Type = 0
			} else {
				node.LinkTarget = []byte(target)
			}
			a.childDone(ctx, d)
		default:
			a.childDone(ctx, d)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	a.childDone(ctx, d) // listing done
	return nil
}

// matchOld pairs each entry with the parent point's node of the same name,
// giving its index in old or -1. Both lists are sorted by name, so one
// merge pairs them: maps by name of a 100,000-file folder cost tens of MB
// and a tenth of a no-change backup's time.
func matchOld(entries []entry, old []tree.Node) []int32 {
	idx := make([]int32, len(entries))
	j := 0
	for i, e := range entries {
		idx[i] = -1
		for j < len(old) && string(old[j].Name) < e.name {
			j++
		}
		if j < len(old) && string(old[j].Name) == e.name {
			idx[i] = int32(j)
			j++
		}
	}
	return idx
}

// childDone counts one child of d as finished; the last one writes d's
// tree blob and, in turn, counts d as done in its parent.
func (a *archiver) childDone(ctx context.Context, d *dirState) {
	for d != nil {
		if d.pending.Add(-1) != 0 {
			return
		}
		// Filtered in place: a folder of 100,000 files holds tens of MB
		// of nodes, and a copy of them was the backup's peak.
		nodes := d.nodes[:0]
		for _, n := range d.nodes {
			if n.Type != 0 { // zero: skipped, with a warning
				nodes = append(nodes, n)
			}
		}
		d.nodes = nil
		var id crypto.ID
		if d.old != nil && tree.NodesEqual(nodes, d.old.Nodes) && a.repo.HasBlob(d.oldID) {
			// Unchanged: the same nodes encode to the same bytes, whose
			// ID is the old one. Most folders of a re-backup.
			id = d.oldID
			a.reference(id)
			if a.opts.Saved != nil && !a.opts.DryRun {
				a.opts.Saved.KeepTree(id)
			}
		} else {
			enc, err := tree.Encode(&tree.Tree{Nodes: nodes})
			if err != nil {
				a.fail(fmt.Errorf("encode the listing of %s: %w", d.path, err))
				return
			}
			id = a.repo.BlobID(enc)
			if a.opts.Saved != nil && !a.opts.DryRun {
				a.opts.Saved.SaveTree(id, enc)
			}
			a.saveBlob(ctx, 0, repository.TreeBlob, id, enc, false)
		}
		d.old = nil
		if d.parent == nil {
			a.root <- id
			return
		}
		d.parent.nodes[d.slot].Subtree = &id
		d = d.parent
	}
}

// describe fills a node from the entry's metadata, extended attributes and
// (on Windows) security descriptor.
func (a *archiver) describe(node *tree.Node, path string, meta fsmeta.Meta) {
	fillNode(node, meta)
	a.readXattrs(node, path)
	a.readSecurity(node, path)
}

func (a *archiver) readXattrs(node *tree.Node, path string) {
	if xs, err := fsmeta.ReadXattrs(path); err != nil {
		a.warn(path, fmt.Errorf("extended attributes not backed up: %v", err))
	} else {
		for _, x := range xs {
			node.Xattrs = append(node.Xattrs, tree.Xattr{Name: x.Name, Value: x.Value})
		}
	}
}

func (a *archiver) readSecurity(node *tree.Node, path string) {
	if sd, err := fsmeta.ReadSecurityDescriptor(path); err == nil {
		node.WinSD = sd
	}
}

func fillNode(n *tree.Node, m fsmeta.Meta) {
	switch m.Kind {
	case fsmeta.File:
		n.Type = tree.File
		n.Size = m.Size
		if m.Nlink > 1 {
			n.Links = m.Nlink
		}
	case fsmeta.Dir:
		n.Type = tree.Dir
	case fsmeta.Symlink:
		n.Type = tree.Symlink
	case fsmeta.FIFO:
		n.Type = tree.FIFO
	case fsmeta.Socket:
		n.Type = tree.Socket
	case fsmeta.Device:
		n.Type = tree.Device
	}
	n.Mode, n.UID, n.GID, n.User, n.Group = m.Mode, m.UID, m.GID, m.User, m.Group
	n.ModTime, n.Inode, n.Dev, n.Rdev, n.WinAttrs = m.ModTime.UnixNano(), m.Inode, m.Dev, m.Rdev, m.WinAttrs
	if !m.ChangeTime.IsZero() {
		n.ChangeTime = m.ChangeTime.UnixNano()
	}
}

func joinPath(dir, name string) string {
	if dir == "" { // Windows: the root holds volumes
		return name + `:\`
	}
	if !plainName(name) {
		return filepath.Join(dir, name)
	}
	// A name from a listing below a clean folder: filepath.Join would
	// only clean the result again, 3% of a no-change re-backup's CPU
	// time on cofferbench's source set.
	if os.IsPathSeparator(dir[len(dir)-1]) { // "/", `C:\`
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// plainName reports whether name is one path element that joining cannot
// change: not empty, "." or "..", and without a separator.
func plainName(name string) bool {
	if name == "" || name == "." || name == ".." {
		return false
	}
	for i := range len(name) {
		if os.IsPathSeparator(name[i]) {
			return false
		}
	}
	return true
}

// readDir lists a directory sorted by name and returns it open, for its
// entries to be looked up in it. Entry types come from the listing itself,
// without a stat call per entry where the file system reports them.
func readDir(path string) (*os.File, []fs.DirEntry, error) {
	f, err := fsmeta.OpenDir(path)
	if err != nil {
		return nil, nil, err
	}
	des, err := f.ReadDir(-1)
	slices.SortFunc(des, func(x, y fs.DirEntry) int { return strings.Compare(x.Name(), y.Name()) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, des, err
	}
	return f, des, nil
}
