// Package archiver turns folders into a recovery point.
//
// The pipeline runs on every core with bounded memory:
//
//	walker (one goroutine: lists directories in order)
//	  → file workers (read, chunk, hash; unchanged files reuse the parent point's chunks)
//	  → seal workers (hand new blobs to the repository, which compresses,
//	    encrypts, packs and uploads them)
//
// A directory's tree blob is written when its last child is done, so trees
// are finished bottom-up without a goroutine per directory. The repository
// owns packing: it stores every pack whole and saves the index every few
// packs, so a backup killed at any moment leaves a valid repository whose
// uploads the next backup reuses.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/chunker"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/tree"
)

// TreeLoader loads the parent point's trees; a cache sits in front of the
// repository here.
type TreeLoader interface {
	LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error)
}

// Repo is what a backup needs of a repository; *repository.Repository is
// one. The repository owns packing, sealing and the index: the archiver
// decides which blobs are new and hands them over.
type Repo interface {
	TreeLoader
	Config() repository.Config
	// NewChunker cuts files where every backup to the repository does.
	NewChunker() *chunker.Chunker
	// BlobID names a blob of plaintext.
	BlobID(plain []byte) crypto.ID
	// HasBlob reports whether a blob is stored.
	HasBlob(id crypto.ID) bool
	// BlobPack is the pack that holds a stored blob.
	BlobPack(id crypto.ID) (crypto.ID, bool)
	// NewBlobWriter packs and uploads the backup's new blobs.
	NewBlobWriter(ctx context.Context, o repository.BlobWriterOptions) *repository.BlobWriter
	// Now is the repository's clock, for the point's time.
	Now() time.Time
	SavePoint(ctx context.Context, p *repository.Point, packs []crypto.ID) error
	// Index tells how each stored blob was compressed, which the
	// ransomware counters judge content by (change.go).
	Index() *repository.Index
}

// TreeSaver is told of every tree of the new point, so a cache can keep
// the point's listings together: SaveTree of each one the backup encodes,
// KeepTree of each of the parent's that the point keeps as it was.
type TreeSaver interface {
	SaveTree(id crypto.ID, encoded []byte)
	KeepTree(id crypto.ID)
}

// Options tune a backup.
type Options struct {
	Parent   *repository.Point // compare with this point to skip unchanged files
	Trees    TreeLoader        // loads the parent's trees; nil means from the repository
	Saved    TreeSaver         // optional
	Workers  int               // compress-and-encrypt workers; 0 means GOMAXPROCS
	Readers  int               // files read at once; 0 means max(8, 2×GOMAXPROCS): reads wait on the disk more than the CPU
	Walkers  int               // folders listed at once; 0 means 8. One makes the order of a backup's writes repeatable
	Uploads  int               // concurrent pack uploads; 0 means 2. Each holds a pack in memory, unless the storage spools them (a local folder)
	Hostname string
	Username string
	Tags     []string
	Progress *Progress // optional, read by the caller while the backup runs
	// ScanAhead counts the files and bytes into Progress.TotalFiles and
	// TotalBytes ahead of the walk (scan.go), so a progress bar has totals
	// and an ETA early. It costs a second pass over the metadata, so set
	// it only when someone watches the progress.
	ScanAhead bool
	// IndexEvery saves the index after this many packs (crash safety); 0 means 8.
	IndexEvery int
	// Exclude, when set, leaves out every file and folder (with its
	// contents) for whose path it returns true. The chosen paths themselves
	// are always included.
	Exclude func(path string) bool
	// ReadFrom, when set, gives where a file's content is read from: its
	// copy in a Volume Shadow Copy snapshot (agent/vss), so a file held
	// open or being written is read as it was at one instant. Metadata and
	// folder listings are read from the live path, which the point records.
	ReadFrom func(path string) string
	// Filter leaves out what restic's backup options would (exclude.go);
	// nil leaves out nothing.
	Filter *Filter
	// DryRun reads and chunks what a backup would, and counts what it
	// would store, but writes nothing: no pack, index or point. The
	// result's point has no ID.
	DryRun bool
	// SmallReads, when set, is told whether the files being examined are
	// small reads (averaging under 256 KiB read per file over a quarter
	// of a second, unchanged files counting as none), each time that
	// changes, and false at the end if it last heard true; a backup with
	// a Parent starts with true. Such files wait on the disk rather than
	// the CPU, and the caller may give the backup more processors while
	// they last (cmd/coffer's backupProcs).
	SmallReads func(small bool)
	// Reading, when set, is told of each file about to be read, and
	// whether the parent point lacks it (new) rather than holding an older
	// version; unchanged files are not read and not told of.
	Reading func(path string, isNew bool)
}

// Warning is a file that could not be backed up as it was, and why.
type Warning struct {
	Path string `json:"path"`
	Err  string `json:"reason"`
}

// Progress is updated atomically while a backup runs.
type Progress struct {
	FilesSeen, BytesSeen atomic.Int64 // found by the walker so far
	FilesDone, BytesDone atomic.Int64 // processed (read or found unchanged)
	BytesRead            atomic.Int64
	BytesNew             atomic.Int64
	BytesStored          atomic.Int64
	Warnings             atomic.Int64
	WalkDone             atomic.Bool
	// TotalFiles and TotalBytes are what a scan ahead of the walk found
	// (scan.go), complete once ScanDone is set: the totals for a bar. Once
	// every file has been examined they are the backup's own counts.
	TotalFiles, TotalBytes atomic.Int64
	ScanDone               atomic.Bool
	// BytesNewStored is the plaintext of BytesNew already uploaded; the
	// difference is what waits for the upload.
	BytesNewStored atomic.Int64
}

// Result is the new point and what went wrong along the way.
type Result struct {
	Point    *repository.Point
	Warnings []Warning
	// Changes counts what changed against the parent, for the job report.
	Changes Changes
}

type archiver struct {
	mix   readMix
	repo  Repo
	opts  Options
	trees TreeLoader
	prog  *Progress
	start time.Time
	blobs *repository.BlobWriter // nil in a dry run

	devices map[uint64]bool // the chosen paths' file systems, for Filter.OneFileSystem

	sealCh  chan sealJob
	fileCh  chan *fileBatch
	walkers *errgroup.Group // lists folders in parallel

	refsMu sync.Mutex
	refs   map[crypto.ID]struct{} // blobs the point references, but for unchanged files' content
	packs  map[crypto.ID]struct{} // packs holding unchanged files' content (packSet)
	dirSeq atomic.Uint64          // numbers folders (dirState.seq)

	warnMu   sync.Mutex
	warnings []Warning

	stats struct{ files, dirs, bytes atomic.Int64 }

	change changeCounter

	bufs    *bufPool // chunk plaintext
	bufSize int

	root chan crypto.ID
	// ctx ends the backup; its cause is the one error the backup returns.
	ctx    context.Context
	cancel context.CancelCauseFunc
}

type sealJob struct {
	t     repository.BlobType
	id    crypto.ID
	plain []byte
	pool  bool   // plain came from the buffer pool
	near  uint64 // the blob's folder (dirState.seq), so groups keep neighbours
}

// Backup stores paths as a new recovery point.
func Backup(ctx context.Context, repo Repo, paths []string, opts Options) (*Result, error) {
	if len(paths) == 0 {
		return nil, errors.New("nothing to back up: name at least one file or folder")
	}
	roots, err := CleanPaths(paths)
	if err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Readers <= 0 {
		opts.Readers = max(8, 2*runtime.GOMAXPROCS(0))
	}
	if opts.Uploads <= 0 {
		opts.Uploads = 2
	}
	if opts.Walkers <= 0 {
		opts.Walkers = walkWorkers
	}
	if opts.IndexEvery <= 0 {
		opts.IndexEvery = 8
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.Username == "" {
		if u, err := user.Current(); err == nil {
			opts.Username = u.Username
		}
	}
	a := &archiver{
		repo: repo, opts: opts, trees: opts.Trees, prog: opts.Progress, start: time.Now(),
		sealCh: make(chan sealJob, opts.Workers*2),
		fileCh: make(chan *fileBatch, opts.Readers*4),
		refs:   map[crypto.ID]struct{}{},
		packs:  map[crypto.ID]struct{}{},
		root:   make(chan crypto.ID, 1),
	}
	if a.trees == nil {
		a.trees = repo
	}
	// Most chunks are near the average; the rare large one grows its buffer.
	a.bufSize = 2 * repo.Config().Chunker.Avg
	a.bufs = newBufPool(a.bufSize)

	// One error path: the first failure, in whichever stage, cancels the
	// backup with itself as the cause, and the backup returns that cause
	// alone. If the caller cancelled first, the cause is the caller's
	// context.Canceled, so a failure never reads as a cancellation nor a
	// cancellation as a failure.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.ctx, a.cancel = ctx, cancel

	if opts.Filter != nil && opts.Filter.OneFileSystem {
		if a.devices, err = rootDevices(roots); err != nil {
			return nil, err
		}
	}
	if !opts.DryRun {
		a.blobs = repo.NewBlobWriter(ctx, repository.BlobWriterOptions{
			Savers: opts.Workers, Uploads: opts.Uploads, IndexEvery: opts.IndexEvery,
			Stored:      func(n int64) { a.prog.BytesStored.Add(n) },
			StoredPlain: func(n int64) { a.prog.BytesNewStored.Add(n) },
			Failed:      a.fail,
		})
	}

	var sealers sync.WaitGroup
	for range opts.Workers {
		sealers.Go(func() { a.runSealer(ctx) })
	}
	var files sync.WaitGroup
	for range opts.Readers {
		files.Go(func() { a.runFileWorker(ctx) })
	}

	// Walk. It returns once every directory has been listed; the root tree
	// is finished when the last file and directory below it are.
	scanCtx, stopScan := context.WithCancel(ctx)
	var scanning sync.WaitGroup
	if opts.ScanAhead {
		scanning.Go(func() { a.scan(scanCtx, roots) })
	}
	if opts.SmallReads != nil {
		scanning.Go(func() { a.watchReadMix(scanCtx, readMixInterval) })
	}
	defer func() { stopScan(); scanning.Wait() }() // never outlives the backup

	a.fail(a.walk(ctx, roots))
	a.prog.WalkDone.Store(true)
	close(a.fileCh)
	files.Wait()

	var rootID crypto.ID
	if a.fatal() == nil {
		// The walk has met every file: its counts are the totals, whether
		// or not the scan ahead finished first (on a small tree the backup
		// can, and the scan is stopped with it).
		stopScan()
		scanning.Wait()
		a.prog.TotalFiles.Store(a.stats.files.Load())
		a.prog.TotalBytes.Store(a.stats.bytes.Load())
		a.prog.ScanDone.Store(true)
		select {
		case rootID = <-a.root:
		case <-ctx.Done():
		}
	}
	close(a.sealCh)
	sealers.Wait()
	// Whatever was uploaded stays indexed, for the next backup to reuse,
	// even if this one failed.
	if a.blobs != nil {
		a.fail(a.blobs.Finish(ctx))
	}
	if err := a.fatal(); err != nil {
		return nil, err
	}
	if opts.DryRun {
		return a.dryRunResult(roots, rootID), nil
	}

	packs, err := a.referencedPacks()
	if err != nil {
		return nil, err
	}
	p := &repository.Point{
		Time: repo.Now().UTC(), Hostname: opts.Hostname, Username: opts.Username,
		Paths: roots, Tree: rootID, Tags: opts.Tags,
		Summary: repository.Summary{
			Files: a.stats.files.Load(), Dirs: a.stats.dirs.Load(), Bytes: a.stats.bytes.Load(),
			BytesRead: a.prog.BytesRead.Load(), BytesNew: a.prog.BytesNew.Load(), BytesStored: a.prog.BytesStored.Load(),
			Warnings: int64(len(a.warnings)), Duration: time.Since(a.start),
		},
	}
	if opts.Parent != nil {
		p.Parent = opts.Parent.ID
	}
	if err := repo.SavePoint(ctx, p, packs); err != nil {
		return nil, err
	}
	slices.SortFunc(a.warnings, func(x, y Warning) int { return strings.Compare(x.Path, y.Path) })
	return &Result{Point: p, Warnings: a.warnings, Changes: a.change.result(repo.Index(), opts.Parent, p.Summary.Files)}, nil
}

// fail stops the backup with err as its cause, unless it is nil or an
// earlier cause stopped it already. Errors that only echo the cancellation
// (context.Canceled from a stage told to stop) are dropped that way.
func (a *archiver) fail(err error) {
	if err != nil {
		a.cancel(err)
	}
}

// fatal is the error that stopped the backup, if any: the first failure,
// or the caller's cancellation.
func (a *archiver) fatal() error {
	if a.ctx.Err() == nil {
		return nil
	}
	return context.Cause(a.ctx)
}

func (a *archiver) warn(path string, err error) {
	a.warnMu.Lock()
	a.warnings = append(a.warnings, Warning{Path: path, Err: err.Error()})
	a.warnMu.Unlock()
	a.prog.Warnings.Add(1)
}

// referenceNew records id as referenced and reports whether it was not
// yet: the one set stands for both the point's references and the blobs
// this run has sent for sealing (a second set of them was 15 MB on a
// backup of 110,000 new blobs).
func (a *archiver) referenceNew(id crypto.ID) bool {
	a.refsMu.Lock()
	defer a.refsMu.Unlock()
	if _, ok := a.refs[id]; ok {
		return false
	}
	a.refs[id] = struct{}{}
	return true
}

// reference notes that the point needs a blob.
func (a *archiver) reference(ids ...crypto.ID) {
	a.refsMu.Lock()
	for _, id := range ids {
		a.refs[id] = struct{}{}
	}
	a.refsMu.Unlock()
}

// referencedPacks maps every referenced blob to its pack, adding the
// packs of the unchanged files' content.
func (a *archiver) referencedPacks() ([]crypto.ID, error) {
	set := a.packs
	for id := range a.refs {
		pack, ok := a.repo.BlobPack(id)
		if !ok {
			return nil, fmt.Errorf("internal error: blob %s was referenced but never stored", id)
		}
		set[pack] = struct{}{}
	}
	out := make([]crypto.ID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	return out, nil
}

// saveBlob sends a blob to be sealed unless it is stored or on its way.
// plain is owned by the callee from here on.
func (a *archiver) saveBlob(ctx context.Context, near uint64, t repository.BlobType, id crypto.ID, plain []byte, pooled bool) bool {
	// Referenced before in this run means stored or on its way already:
	// every other reference is to a blob the index has.
	if !a.referenceNew(id) || a.repo.HasBlob(id) {
		a.release(plain, pooled)
		return false
	}
	a.prog.BytesNew.Add(int64(len(plain)))
	select {
	case a.sealCh <- sealJob{t: t, id: id, plain: plain, pool: pooled, near: near}:
	case <-ctx.Done():
	}
	return true
}

func (a *archiver) release(b []byte, pooled bool) {
	if pooled {
		a.bufs.put(b)
	}
}

// runSealer hands blobs to the repository, which compresses and encrypts
// them on this goroutine: the sealers are the CPU-bound stage.
func (a *archiver) runSealer(ctx context.Context) {
	for j := range a.sealCh {
		if ctx.Err() == nil && a.blobs != nil {
			a.fail(a.blobs.SaveBlobNear(ctx, j.near, j.t, j.id, j.plain))
		} else if a.blobs == nil {
			a.prog.BytesNewStored.Add(int64(len(j.plain))) // a dry run uploads nothing: nothing waits for it
		}
		a.release(j.plain, j.pool)
	}
}

// CleanPaths makes the paths absolute and clean, drops duplicates and
// paths inside others, and checks that each exists. A point records its
// paths in this form.
func CleanPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", p, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s does not exist: check the path", p)
			}
			return nil, fmt.Errorf("cannot back up %s: %w", p, err)
		}
		out = append(out, abs)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	var kept []string
	for _, p := range out {
		if len(kept) > 0 && isWithin(p, kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}

func isWithin(p, dir string) bool {
	if dir == p {
		return true
	}
	d := strings.TrimSuffix(dir, string(filepath.Separator)) + string(filepath.Separator)
	return strings.HasPrefix(p, d)
}
