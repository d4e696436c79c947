// Package restorer writes a recovery point back to disk.
//
// A plan walks the point's trees (loading listings ahead of itself),
// creating folders, links and empty files and gathering the files to
// write in batches of a few thousand. Each batch is restored while the next
// is planned: one goroutine creates its files in plan order and keeps them
// open, and the fetch reads the packs holding the batch's chunks in
// parallel, in the order the plan first needs them, writing each chunk at
// its offsets in every file that uses it and finishing each file through
// its descriptor. So memory follows a batch, not the whole tree. Every
// chunk is authenticated before it is written. A damaged chunk fails only
// the files that need it: the rest are restored and the failed ones are
// named.
package restorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/fsmeta"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/shared/storage"
)

// Conflict says what to do when a restored path already exists.
type Conflict int

const (
	// Copy restores beside the existing file under a clearly marked name,
	// as MARS does by default.
	Copy Conflict = iota
	Overwrite
	Skip
)

// ParseConflict reads copy, overwrite or skip.
func ParseConflict(s string) (Conflict, error) {
	switch s {
	case "copy", "":
		return Copy, nil
	case "overwrite":
		return Overwrite, nil
	case "skip":
		return Skip, nil
	}
	return 0, fmt.Errorf("the conflict mode must be copy, overwrite or skip, not %q", s)
}

// TreeLoader loads tree blobs.
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// Options tune a restore.
type Options struct {
	Target   string
	Include  []string // paths inside the point ("home/ann/docs"); empty means everything
	Conflict Conflict
	Workers  int  // concurrent pack fetches; 0 means max(8, 2×GOMAXPROCS)
	Owner    bool // restore ownership (needs root)
	Trees    TreeLoader
	Progress *Progress
}

// Progress is updated atomically while a restore runs.
type Progress struct {
	FilesTotal, BytesTotal atomic.Int64
	FilesDone, BytesDone   atomic.Int64
	PlanDone               atomic.Bool
}

// Failure is a path that was not restored, and why.
type Failure struct {
	Path string `json:"path"`
	Err  string `json:"reason"`
}

// Result says what a restore did.
type Result struct {
	Files, Dirs, Links int64
	Bytes              int64
	Skipped            int64    // existing paths left alone (--conflict skip)
	Copies             []string // restored beside an existing path under a new name
	Failed             []Failure
	Warnings           []Failure // restored, but some metadata could not be set, or under another name
	Renamed            []Rename  // entries whose name this system cannot hold, restored under a safe one
}

// Rename is an entry restored under another name than the point's (see
// LocalName); it is also listed as a warning.
type Rename struct {
	Path string `json:"path"` // as the point names it
	As   string `json:"as"`   // where it was restored
}

type fileState struct {
	path      string
	index     int // place in its batch, in plan order
	meta      nodeMeta
	size      int64
	remaining atomic.Int64 // chunks still to write
	failed    atomic.Bool
	done      atomic.Bool // written and its metadata set
	holes     bool

	mu      sync.Mutex
	f       *os.File
	created bool
	made    [2]uint64 // device and inode of the file the plan created, if it did
}

type target struct {
	file   *fileState
	offset int64
}

type restorer struct {
	repo  *repository.Repository
	opts  Options
	trees TreeLoader
	prog  *Progress

	ahead *treeAhead // the plan's listings, loaded ahead of it
	// batch is the files the plan is gathering; it is handed to the fetch
	// through batches when full, so memory follows a batch, not the tree.
	batch   *batch
	batches chan *batch
	dirs    []dirMeta
	links   []pendingLink
	// Device and inode of a file with more than one name → that name's
	// file, which later names are linked to.
	inodes map[[2]uint64]*fileState
	// Point path → where it went, for the entries of the point not
	// restored under their own name: renamed, restored as a copy, or
	// skipped (""). Old points' hard links name their first path.
	moved map[string]string

	// open counts the files held open: createAhead keeps a file it makes
	// open for the fetch only while this is under maxOpenAhead.
	open atomic.Int64

	mu  sync.Mutex
	res Result
}

// batch is a part of the plan restored on its own: its files, and which
// of its chunks go where. A chunk also needed by a later batch is read
// again then, which on the benchmark sets is rare: packs hold chunks in the
// order the backup walked, which is the plan's.
type batch struct {
	files  []*fileState
	chunks map[crypto.ID][]target
}

// batchFiles bounds a batch. With about 500 bytes of plan per file, two
// batches in hand are a few megabytes whatever the tree's size; a whole
// plan of 106,000 files was half of a restore's peak memory.
var batchFiles = 4096 // a variable only so tests can make batches small

// maxOpenAhead bounds the files createAhead holds open for the fetch. The
// fetch takes packs in plan order, so it writes the files just created;
// far more than its workers' packs hold would only spend descriptors.
const maxOpenAhead = 512

type dirMeta struct {
	path string
	meta nodeMeta
}

// pendingLink is a further name of a file, made once the file is: first
// is that file, or target its point path (old points' hard links).
type pendingLink struct {
	path   string
	first  *fileState
	target string
}

// nodeMeta is what a restore sets on an entry once written: a copy, so a
// plan for many files does not keep every folder's decoded listing alive
// (on the 50,000-file benchmark set the listings were 19 MB of the peak).
type nodeMeta struct {
	typ                   tree.Type
	mode, uid, gid, attrs uint32
	user, group           string
	modTime               int64
	xattrs                []tree.Xattr
	winSD                 []byte
}

// metaOf copies n's metadata: the listing's nodes are reused as it is read.
func metaOf(n *tree.Node) nodeMeta {
	m := nodeMeta{typ: n.Type, mode: n.Mode, uid: n.UID, gid: n.GID, attrs: n.WinAttrs, user: n.User, group: n.Group,
		modTime: n.ModTime}
	if len(n.Xattrs) > 0 {
		m.xattrs = make([]tree.Xattr, len(n.Xattrs))
		for i, x := range n.Xattrs {
			m.xattrs[i] = tree.Xattr{Name: x.Name, Value: bytes.Clone(x.Value)}
		}
	}
	if len(n.WinSD) > 0 {
		m.winSD = bytes.Clone(n.WinSD)
	}
	return m
}

// Restore writes point (or the included parts of it) below opts.Target.
func Restore(ctx context.Context, repo *repository.Repository, point *repository.Point, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("no target folder given")
	}
	abs, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, err
	}
	opts.Target = abs
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create target folder %s: %w", abs, err)
	}
	if opts.Workers <= 0 {
		opts.Workers = max(8, 2*runtime.GOMAXPROCS(0))
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	r := &restorer{repo: repo, opts: opts, trees: opts.Trees, prog: opts.Progress,
		inodes: map[[2]uint64]*fileState{}, moved: map[string]string{}}
	if r.trees == nil {
		r.trees = repo
	}
	includes := make([]string, 0, len(opts.Include))
	for _, inc := range opts.Include {
		inc = strings.Trim(filepath.ToSlash(inc), "/")
		if inc != "" {
			includes = append(includes, inc)
		}
	}
	// An --include that names nothing would restore nothing and say it
	// completed; a typo must fail before anything is written.
	for _, inc := range includes {
		if _, err := Lookup(ctx, r.trees, point.Tree, inc); err != nil {
			return nil, fmt.Errorf("--include %s: %w", inc, err)
		}
	}

	r.ahead = newTreeAhead(r.trees, len(includes) == 0)
	root, err := r.ahead.load(ctx, point.Tree)
	if err != nil {
		return nil, fmt.Errorf("load the point's root folder: %w", err)
	}
	// The plan runs in its own goroutine and hands over a batch at a time;
	// each is fetched while the next is planned.
	planCtx, endPlan := context.WithCancel(ctx)
	defer endPlan()
	r.batches = make(chan *batch, 1)
	planned := make(chan error, 1)
	go func() {
		defer close(r.batches)
		start := time.Now()
		r.batch = newBatch()
		err := r.plan(planCtx, root, abs, "", includes, false)
		if err == nil {
			err = r.handOver(planCtx)
		}
		r.prog.PlanDone.Store(err == nil)
		slog.Debug("restore planned", "files", r.prog.FilesTotal.Load(), "folders", len(r.dirs),
			"seconds", time.Since(start).Seconds(), "err", err)
		planned <- err
	}()
	for b := range r.batches {
		if err = r.restoreBatch(ctx, b); err != nil {
			break
		}
	}
	endPlan()
	for range r.batches { // files of batches not fetched were never created
	}
	if planErr := <-planned; err == nil {
		err = planErr
	}
	if err != nil {
		return nil, err
	}
	r.finishLinks()
	// Folders last, deepest first, so writing their contents does not
	// change the times just set.
	for i := len(r.dirs) - 1; i >= 0; i-- {
		r.applyMeta(r.dirs[i].path, r.dirs[i].meta)
	}
	slices.SortFunc(r.res.Failed, func(a, b Failure) int { return strings.Compare(a.Path, b.Path) })
	return &r.res, nil
}

func (r *restorer) fail(path string, err error) {
	r.mu.Lock()
	r.res.Failed = append(r.res.Failed, Failure{Path: path, Err: err.Error()})
	r.mu.Unlock()
}

func (r *restorer) rename(rel, path, name string) {
	r.moved[rel] = path
	r.mu.Lock()
	r.res.Renamed = append(r.res.Renamed, Rename{Path: rel, As: path})
	r.res.Warnings = append(r.res.Warnings, Failure{Path: path,
		Err: fmt.Sprintf("restored under this name: %s cannot hold the name %q", localOS, name)})
	r.mu.Unlock()
}

func (r *restorer) warn(path string, err error) {
	r.mu.Lock()
	r.res.Warnings = append(r.res.Warnings, Failure{Path: path, Err: err.Error()})
	r.mu.Unlock()
}

// wanted reports whether rel is included, or is a folder on the way to an
// included path.
func wanted(rel string, includes []string) (take, descend bool) {
	if len(includes) == 0 {
		return true, true
	}
	for _, inc := range includes {
		if rel == inc || strings.HasPrefix(rel, inc+"/") {
			return true, true
		}
		if strings.HasPrefix(inc, rel+"/") {
			descend = true
		}
	}
	return false, descend
}

// plan walks a tree, creating what needs no content and recording which
// chunks go where. fresh says this restore created dir just now.
func (r *restorer) plan(ctx context.Context, l listing, dir, rel string, includes []string, fresh bool) error {
	// In a folder this restore has just made, nothing can be in the way,
	// so entries are not looked up first (one lstat per file saved). Only
	// on Linux: elsewhere a folder may ignore case or normalise names, so
	// two of the point's names can meet there, and the second must become
	// a marked copy rather than fail its exclusive create.
	claim := r.claim
	if fresh && runtime.GOOS == "linux" {
		claim = func(path, _ string) (string, bool) { return path, true }
	}
	if !r.ahead.deep {
		// A restore of some paths: load ahead only the folders on the way.
		var subdirs []crypto.ID
		err := l.each(func(n *tree.Node) error {
			if n.Type != tree.Dir || n.Subtree == nil {
				return nil
			}
			if take, descend := wanted(childPath(rel, string(n.Name)), includes); take || descend {
				subdirs = append(subdirs, *n.Subtree)
			}
			return nil
		})
		if err != nil && rel == "" {
			return fmt.Errorf("load the point's root folder: %w", err)
		}
		if err != nil {
			r.fail(dir, fmt.Errorf("its listing could not be read, so nothing below it was restored: %v", err))
			return nil
		}
		r.ahead.prefetch(ctx, subdirs)
	}
	err := l.each(func(n *tree.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return r.planNode(ctx, n, dir, rel, includes, claim)
	})
	if err != nil && ctx.Err() == nil {
		// A listing that fails its checks hands over none of its entries.
		if rel == "" {
			return fmt.Errorf("load the point's root folder: %w", err)
		}
		r.fail(dir, fmt.Errorf("its listing could not be read, so nothing below it was restored: %v", err))
		return nil
	}
	return err
}

// planNode plans one entry of the folder dir, at rel in the point. n is
// the listing's, reused after the call: what is kept is copied.
func (r *restorer) planNode(ctx context.Context, n *tree.Node, dir, rel string, includes []string, claim func(path, rel string) (string, bool)) error {
	name := string(n.Name)
	childRel := childPath(rel, name)
	take, descend := wanted(childRel, includes)
	if !take && !(descend && n.Type == tree.Dir) {
		return nil
	}
	// The restorer's own check, whatever loaded the tree: nothing is
	// ever created outside dir.
	local, renamed, err := LocalName(name, localOS)
	if err != nil {
		r.fail(dir+string(filepath.Separator)+name, fmt.Errorf("not restored: %v", err))
		return nil
	}
	path := filepath.Join(dir, local)
	if filepath.Dir(path) != dir {
		r.fail(dir+string(filepath.Separator)+name, fmt.Errorf("not restored: %w: %q does not stay in its folder", ErrUnsafeName, name))
		return nil
	}
	if renamed {
		r.rename(childRel, path, name)
	}
	switch n.Type {
	case tree.Dir:
		made, err := r.makeDir(path)
		if err != nil {
			r.fail(path, err)
			return nil
		}
		sub, err := r.ahead.load(ctx, *n.Subtree)
		if err != nil {
			r.fail(path, fmt.Errorf("its listing could not be read, so nothing below it was restored: %v", err))
			return nil
		}
		if err := r.plan(ctx, sub, path, childRel, includes, made); err != nil {
			return err
		}
		if take {
			r.count(&r.res.Dirs, 1)
			r.dirs = append(r.dirs, dirMeta{path, metaOf(n)})
		}
	case tree.File:
		path, ok := claim(path, childRel)
		if !ok {
			return nil
		}
		if err := r.planFile(ctx, n, path); err != nil {
			return err
		}
	case tree.Symlink:
		path, ok := claim(path, childRel)
		if !ok {
			return nil
		}
		if err := os.Symlink(string(n.LinkTarget), path); err != nil {
			r.fail(path, fmt.Errorf("create symlink: %v", err))
			return nil
		}
		r.count(&r.res.Links, 1)
		r.applyMeta(path, metaOf(n))
	case tree.HardLink:
		path, ok := claim(path, childRel)
		if !ok {
			return nil
		}
		r.links = append(r.links, pendingLink{path: path, target: string(n.LinkTarget)})
	default:
		// FIFOs, sockets and devices are recorded but not recreated.
	}
	return nil
}

// planFile adds a file to the batch, or a further name of a file already
// planned to the links, and hands the batch over when it is full.
func (r *restorer) planFile(ctx context.Context, n *tree.Node, path string) error {
	var key [2]uint64
	if n.Links > 1 && n.Inode != 0 {
		key = [2]uint64{n.Dev, n.Inode}
		if first, seen := r.inodes[key]; seen {
			r.links = append(r.links, pendingLink{path: path, first: first})
			return nil
		}
	}
	b := r.batch
	st := &fileState{path: path, index: len(b.files), meta: metaOf(n), size: n.Size}
	if key != [2]uint64{} {
		r.inodes[key] = st
	}
	b.files = append(b.files, st)
	r.count(&r.res.Files, 1)
	r.prog.FilesTotal.Add(1)
	r.prog.BytesTotal.Add(n.Size)
	var off, count int64
	for _, ref := range n.Content {
		if ref.Hole {
			st.holes = true
		} else {
			b.chunks[ref.ID] = append(b.chunks[ref.ID], target{st, off})
			count++
		}
		off += ref.Size
	}
	st.remaining.Store(count)
	if count == 0 {
		r.completeFile(st)
	}
	if len(b.files) >= batchFiles {
		return r.handOver(ctx)
	}
	return nil
}

func newBatch() *batch { return &batch{chunks: map[crypto.ID][]target{}} }

// handOver gives the batch to the fetch and starts the next one.
func (r *restorer) handOver(ctx context.Context) error {
	if len(r.batch.files) == 0 {
		return nil
	}
	select {
	case r.batches <- r.batch:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.batch = newBatch()
	return nil
}

// restoreBatch creates and writes a batch's files: createAhead makes them
// in plan order while the fetch writes them, which mostly finds its files
// made, since it takes packs in plan order; one it gets to first it
// creates itself (openFile).
func (r *restorer) restoreBatch(ctx context.Context, b *batch) error {
	createCtx, stopCreating := context.WithCancel(ctx)
	created := make(chan struct{})
	go func() {
		defer close(created)
		r.createAhead(createCtx, b.files)
	}()
	err := r.fetch(ctx, b)
	stopCreating()
	<-created
	if err != nil {
		r.removeUnfinished(b.files)
	}
	return err
}

// count adds to a result counter the fetch also changes.
func (r *restorer) count(c *int64, n int64) {
	r.mu.Lock()
	*c += n
	r.mu.Unlock()
}

// childPath is the point path of name in the folder at rel.
func childPath(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// makeDir creates a folder, or accepts an existing real folder, and says
// which. An existing symlink or file in its place is never followed.
func (r *restorer) makeDir(path string) (made bool, err error) {
	err = os.Mkdir(path, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err == nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		return false, nil
	}
	if r.opts.Conflict == Overwrite {
		if err := os.Remove(path); err != nil {
			return false, fmt.Errorf("replace the existing %s with a folder: %v", fi.Mode().Type(), err)
		}
		return true, os.Mkdir(path, 0o700)
	}
	return false, fmt.Errorf("a %s is in the way of a folder; move it, or restore again overwriting what is in the way", describe(fi))
}

// claim decides where a non-folder entry goes given what exists there;
// rel is its point path.
func (r *restorer) claim(path, rel string) (string, bool) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, true
	}
	if err != nil {
		r.fail(path, err)
		return "", false
	}
	switch r.opts.Conflict {
	case Skip:
		r.count(&r.res.Skipped, 1)
		r.moved[rel] = ""
		return "", false
	case Overwrite:
		if fi.IsDir() {
			r.fail(path, errors.New("a folder is in the way; it is never removed to make room for a file"))
			return "", false
		}
		if err := os.Remove(path); err != nil {
			r.fail(path, fmt.Errorf("remove the existing file: %v", err))
			return "", false
		}
		return path, true
	}
	copyPath := copyName(path, time.Now())
	r.mu.Lock()
	r.res.Copies = append(r.res.Copies, copyPath)
	r.mu.Unlock()
	r.moved[rel] = copyPath
	return copyPath, true
}

// copyName marks a restored copy clearly: "report (restored 2026-11-22 1530).docx",
// with a counter if that exists too.
func copyName(path string, now time.Time) string {
	dir, name := filepath.Split(path)
	ext := filepath.Ext(name)
	if ext == name { // ".bashrc" has no extension
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	stamp := now.Format("2006-01-02 1504")
	p := filepath.Join(dir, fmt.Sprintf("%s (restored %s)%s", stem, stamp, ext))
	for i := 2; exists(p); i++ {
		p = filepath.Join(dir, fmt.Sprintf("%s (restored %s, %d)%s", stem, stamp, i, ext))
	}
	return p
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func describe(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.Mode().IsRegular():
		return "file"
	}
	return "special file"
}

// fetch reads every needed pack, in parallel, and writes its chunks. Packs
// are taken in the order the plan first needs them, which is about the
// order createAhead makes the files, so the files a worker writes are
// mostly already made and still open.
func (r *restorer) fetch(ctx context.Context, b *batch) error {
	idx := r.repo.Index()
	type packWork struct {
		pack    crypto.ID
		entries []repository.BlobEntry
		first   int // the earliest file in plan order that needs the pack
	}
	byPack := map[crypto.ID]*packWork{}
	for id, targets := range b.chunks {
		loc, ok := idx.Lookup(id)
		if !ok {
			for _, t := range targets {
				r.failFile(t.file, fmt.Errorf("chunk %s is missing from the repository", id))
			}
			continue
		}
		w := byPack[loc.Pack]
		if w == nil {
			w = &packWork{pack: loc.Pack, first: targets[0].file.index}
			byPack[loc.Pack] = w
		}
		w.entries = append(w.entries, loc.BlobEntry)
		w.first = min(w.first, targets[0].file.index) // targets are in plan order
	}
	work := make([]*packWork, 0, len(byPack))
	for _, w := range byPack {
		work = append(work, w)
	}
	slices.SortFunc(work, func(a, b *packWork) int { return a.first - b.first })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Workers)
	for _, w := range work {
		slices.SortFunc(w.entries, func(a, b repository.BlobEntry) int { return int(a.Offset) - int(b.Offset) })
		for _, span := range spans(w.entries) {
			g.Go(func() error { return r.restorePack(gctx, b, w.pack, span) })
		}
	}
	return g.Wait()
}

// maxSpan bounds one read: large enough that a remote store sees few
// requests, small enough that the workers' buffers stay modest. Measured
// on the benchmark sets, caches dropped: when packs were fetched in random
// order, 1 MiB spans made restoring 2 GiB of large files 24% slower than
// 4 MiB. Fetched in plan order, 2 MiB spans restore as fast as 4 MiB ones
// or faster, and took the peak of a 106,000-file restore from 149 to 106
// MiB (the eight workers' spans were a third of it). A blob larger than
// this is read alone.
const maxSpan = 2 << 20

// spans groups a pack's needed blobs, sorted by offset, into runs read
// with one request each.
func spans(entries []repository.BlobEntry) [][]repository.BlobEntry {
	var out [][]repository.BlobEntry
	start := 0
	for i := 1; i <= len(entries); i++ {
		if i == len(entries) || int64(entries[i].Offset)+int64(entries[i].Length)-int64(entries[start].Offset) > maxSpan {
			out = append(out, entries[start:i])
			start = i
		}
	}
	return out
}

// spanBuf returns buf, or a new buffer if buf is too small, to read a span
// of n bytes into. A new one fits any span of up to maxSpan bytes: grown
// to each larger span instead, they took 117 MB of allocations in a
// restore of cofferbench's source set, and that garbage brought
// collections sooner and raised the peak. A single blob larger than
// maxSpan is left to the reader to size.
func spanBuf(buf []byte, n int64) []byte {
	if n <= maxSpan && int64(cap(buf)) < n+storage.FullReadSlack {
		return make([]byte, 0, maxSpan+storage.FullReadSlack)
	}
	return buf
}

// packBufs are one fetch's buffers: the span read, in which each blob is
// also decrypted, and a compressed blob's decompressed bytes. Reused across
// packs, so a restore allocates per worker, not per blob.
type packBufs struct {
	span, plain []byte
	group       repository.GroupBuf
}

var packBufPool = sync.Pool{New: func() any { return new(packBufs) }}

func (r *restorer) restorePack(ctx context.Context, b *batch, pack crypto.ID, entries []repository.BlobEntry) error {
	// A local store does not look at the context: an interrupted restore
	// stops here, between packs.
	if err := ctx.Err(); err != nil {
		return err
	}
	start := int64(entries[0].Offset)
	last := entries[len(entries)-1]
	end := int64(last.Offset) + int64(last.Length)
	bufs := packBufPool.Get().(*packBufs)
	defer packBufPool.Put(bufs)
	span, err := r.repo.ReadPackInto(ctx, spanBuf(bufs.span, end-start), pack, start, end-start)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, e := range entries {
			for _, t := range b.chunks[e.ID] {
				r.failFile(t.file, fmt.Errorf("pack %s could not be read: %v", pack, err))
			}
		}
		return nil
	}
	bufs.span = span
	for _, e := range entries {
		sealed := span[int64(e.Offset)-start : int64(e.Offset)-start+int64(e.Length)]
		var plain []byte
		if e.Grouped() {
			plain, err = r.repo.OpenMember(&bufs.group, e, sealed)
		} else {
			plain, bufs.plain, err = r.repo.OpenBlobInPlace(bufs.plain, e, sealed)
		}
		for _, t := range b.chunks[e.ID] {
			if err != nil {
				r.failFile(t.file, err)
				continue
			}
			r.writeChunk(t, plain) // copies: plain is reused for the next blob
		}
	}
	return nil
}

func (r *restorer) writeChunk(t target, data []byte) {
	st := t.file
	if st.failed.Load() {
		r.chunkDone(st)
		return
	}
	st.mu.Lock()
	if err := r.openFile(st); err != nil {
		st.mu.Unlock()
		r.failFile(st, err)
		return
	}
	_, err := st.f.WriteAt(data, t.offset)
	st.mu.Unlock()
	if err != nil {
		r.failFile(st, err)
		return
	}
	r.prog.BytesDone.Add(int64(len(data)))
	r.chunkDone(st)
}

func (r *restorer) chunkDone(st *fileState) {
	if st.remaining.Add(-1) == 0 {
		r.completeFile(st)
	}
}

// createAhead creates the plan's files, empty, in plan order, skipping any
// a fetch worker already created, finished or failed. One goroutine in
// folder order: created by the fetch workers in pack order instead, eight
// at a time into the same folders, files contend for each folder's lock,
// and on the 50,000-file benchmark set creation took 30% of a restore's
// CPU. A file it makes stays open for the fetch while fewer than
// maxOpenAhead are, so it is not looked up again by path to be written
// and finished. It stops when ctx ends.
func (r *restorer) createAhead(ctx context.Context, files []*fileState) {
	if !preCreate {
		return
	}
	for _, st := range files {
		if ctx.Err() != nil {
			return
		}
		r.createOne(st)
	}
}

// createOne creates st ahead of the fetch, unless the fetch has already
// created, finished or failed it.
func (r *restorer) createOne(st *fileState) {
	st.mu.Lock()
	if st.created || st.f != nil || st.failed.Load() || st.done.Load() {
		st.mu.Unlock()
		return
	}
	err := r.create(st, r.open.Load() < maxOpenAhead)
	st.mu.Unlock()
	if err != nil && st.failed.CompareAndSwap(false, true) {
		// Its chunks are skipped as they arrive; the last completes it.
		r.fail(st.path, err)
		r.mu.Lock()
		r.res.Files--
		r.mu.Unlock()
	}
}

// create makes the file, empty. Kept open, it is st.f; closed, its
// identity is noted, so that reopening it later writes only to this file.
// Callers hold st.mu, or own st.
func (r *restorer) create(st *fileState, keepOpen bool) error {
	f, err := openFile(st.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	if keepOpen {
		st.f, st.created = f, true
		r.open.Add(1)
		return nil
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(st.path)
		return err
	}
	st.created, st.made = true, fileID(fi)
	return nil
}

// same reports whether f is the file the plan created.
func (st *fileState) same(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fileID(fi) == st.made
}

// open opens the file on first use, creating it if the plan did not, and
// keeps it open until complete. Callers hold st.mu.
func (r *restorer) openFile(st *fileState) error {
	if st.f != nil {
		return nil
	}
	flags := os.O_WRONLY | noFollow
	if !st.created {
		// Never through a link or over something planted since planning.
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := openFile(st.path, flags, 0o600)
	if err != nil {
		// Whatever is there now (a planted link, say) is not ours to remove.
		st.created = false
		return err
	}
	if st.made != [2]uint64{} {
		// Written only if it is still the file the plan made, not one
		// swapped in since (a hard link to another file, say).
		if !st.same(f) {
			f.Close()
			st.created = false // not ours to remove
			return fmt.Errorf("replaced by something else while the restore ran; not written")
		}
	}
	st.f, st.created = f, true
	r.open.Add(1)
	return nil
}

// closeFile closes st.f. Callers hold st.mu, or own st.
func (r *restorer) closeFile(st *fileState) error {
	err := st.f.Close()
	st.f = nil
	r.open.Add(-1)
	return err
}

// completeFile closes a file whose chunks are all written and sets its
// metadata; a failed one is removed, so no half-restored file looks whole.
func (r *restorer) completeFile(st *fileState) {
	st.mu.Lock()
	if !st.failed.Load() && (!st.created || st.holes) {
		// Empty and sparse files: set the size so untouched ranges stay holes.
		err := r.openFile(st)
		if err == nil {
			err = fsmeta.MakeSparse(st.f, st.size)
		}
		if err != nil {
			st.failed.Store(true)
			r.fail(st.path, err)
		}
	}
	applied := false
	if st.f != nil {
		if !st.failed.Load() {
			applied = r.applyMetaOpen(st)
		}
		if err := r.closeFile(st); err != nil && !st.failed.Load() {
			st.failed.Store(true)
			r.fail(st.path, err)
		}
	}
	st.mu.Unlock()
	if st.failed.Load() {
		if st.created {
			os.Remove(st.path)
		}
		return
	}
	if !applied {
		r.applyMeta(st.path, st.meta)
	}
	st.done.Store(true)
	r.prog.FilesDone.Add(1)
}

// applyMetaOpen sets a file's metadata through its open descriptor, when
// it can: not extended attributes or security descriptors, which applyMeta
// sets by path. It reports whether it did.
func (r *restorer) applyMetaOpen(st *fileState) bool {
	if len(st.meta.xattrs) > 0 || len(st.meta.winSD) > 0 {
		return false
	}
	ok, err := fsmeta.ApplyFile(st.f, fsMetaOf(st.meta), fsmeta.ApplyOptions{Owner: r.opts.Owner})
	if ok && err != nil {
		r.warn(st.path, err)
	}
	return ok
}

// removeUnfinished removes, after an interrupted fetch, every file it
// created but did not complete, so none looks restored; complete ones stay
// for the next attempt. The fetch workers have all returned.
func (r *restorer) removeUnfinished(files []*fileState) {
	for _, st := range files {
		if st.f != nil {
			r.closeFile(st)
		}
		if st.created && !st.done.Load() {
			os.Remove(st.path)
		}
	}
}

func (r *restorer) failFile(st *fileState, err error) {
	if st.failed.CompareAndSwap(false, true) {
		r.fail(st.path, err)
		r.mu.Lock()
		r.res.Files--
		r.mu.Unlock()
	}
	r.chunkDone(st)
}

func (r *restorer) finishLinks() {
	for _, l := range r.links {
		first, err := r.linkTarget(l)
		if err != nil {
			r.fail(l.path, err)
			continue
		}
		if err := os.Link(first, l.path); err != nil {
			r.fail(l.path, fmt.Errorf("create hard link: %v", err))
			continue
		}
		r.count(&r.res.Links, 1)
	}
}

// linkTarget is the restored file a further name links to.
func (r *restorer) linkTarget(l pendingLink) (string, error) {
	if l.first != nil {
		if !l.first.done.Load() {
			return "", errors.New("a further name of a file that was not restored")
		}
		return l.first.path, nil
	}
	// An old point's hard link names its file's point path. It went where
	// the plan put it: under its own name, unless moved says otherwise.
	if p, ok := r.moved[l.target]; ok {
		if p == "" {
			return "", fmt.Errorf("hard link to %s, which was not restored", l.target)
		}
		return p, nil
	}
	p := r.opts.Target
	for _, name := range strings.Split(l.target, "/") {
		local, _, err := LocalName(name, localOS)
		if err != nil { // no file of the point has such a path
			return "", fmt.Errorf("hard link to %s, which was not restored", l.target)
		}
		p = filepath.Join(p, local)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || !strings.HasPrefix(p, r.opts.Target+string(filepath.Separator)) {
		return "", fmt.Errorf("hard link to %s, which was not restored", l.target)
	}
	return p, nil
}

// localOS is the system whose naming rules apply; tests set "windows" to
// see the mapping on any system.
var localOS = runtime.GOOS

// writeSD applies a Windows security descriptor; tests replace it to see
// where one would be applied.
var writeSD = fsmeta.WriteSecurityDescriptor

func fsMetaOf(n nodeMeta) fsmeta.Meta {
	m := fsmeta.Meta{Mode: n.mode, UID: n.uid, GID: n.gid, User: n.user, Group: n.group,
		ModTime: time.Unix(0, n.modTime), WinAttrs: n.attrs}
	switch n.typ {
	case tree.Dir:
		m.Kind = fsmeta.Dir
	case tree.Symlink:
		m.Kind = fsmeta.Symlink
	default:
		m.Kind = fsmeta.File
	}
	return m
}

// applyMeta sets an entry's metadata on the entry itself. No ACL and no
// attribute is ever applied through a link: a symlink gets only what is
// set on the link itself (times, and on Linux its own xattrs), and an entry
// that is a link on disk when the point says it is not (planted during the
// restore) gets nothing.
func (r *restorer) applyMeta(path string, n nodeMeta) {
	fi, err := os.Lstat(path)
	if err != nil {
		r.warn(path, fmt.Errorf("metadata not restored: %v", err))
		return
	}
	onDiskLink := fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0
	if onDiskLink && n.typ != tree.Symlink {
		r.warn(path, fmt.Errorf("metadata not restored: a %s is now in its place", describe(fi)))
		return
	}
	m := fsMetaOf(n)
	if len(n.xattrs) > 0 {
		xs := make([]fsmeta.Xattr, len(n.xattrs))
		for i, x := range n.xattrs {
			xs[i] = fsmeta.Xattr{Name: x.Name, Value: x.Value}
		}
		if err := fsmeta.WriteXattrs(path, xs); err != nil {
			r.warn(path, err)
		}
	}
	// A security descriptor only when elevated (Owner): it carries the
	// owner, which only SeRestorePrivilege may give away, and a DACL
	// applied alone could lock the restoring user out of the restore.
	if len(n.winSD) > 0 && !onDiskLink && r.opts.Owner {
		if err := writeSD(path, n.winSD); err != nil {
			r.warn(path, err)
		}
	}
	if err := fsmeta.Apply(path, m, fsmeta.ApplyOptions{Owner: r.opts.Owner}); err != nil {
		r.warn(path, err)
	}
}
