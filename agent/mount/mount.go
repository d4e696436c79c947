//go:build linux || darwin

package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/coffer-backup/coffer/agent/repository"
)

// Supported reports whether this system can mount points.
const Supported = true

// mountFS is one mount: the points it shows and the caches it reads
// through.
type mountFS struct {
	trees   TreeLoader
	blobs   *blobCache
	list    PointLister
	refresh time.Duration
	started time.Time

	mu      sync.Mutex
	points  []*repository.Point // oldest first
	byTime  map[string]*repository.Point
	listed  time.Time
	listErr error

	logMu  sync.Mutex
	logged map[string]time.Time
}

// current returns the points, listing them again when the last list is
// older than the refresh interval, so points backed up while the mount
// runs appear. A failed listing keeps the last good one.
func (m *mountFS) current(ctx context.Context) []*repository.Point {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Since(m.listed) < m.refresh {
		return m.points
	}
	points, err := m.list(ctx)
	m.listed = time.Now()
	if err != nil {
		if m.listErr == nil || err.Error() != m.listErr.Error() {
			slog.Warn("mount: some or all points could not be listed; showing those that could, or the last list", "err", err)
		}
		m.listErr = err
		if len(points) == 0 {
			return m.points
		}
	} else {
		m.listErr = nil
	}
	m.setPoints(points)
	return m.points
}

func (m *mountFS) setPoints(points []*repository.Point) {
	points = append([]*repository.Point(nil), points...)
	sort.SliceStable(points, func(i, j int) bool {
		if !points[i].Time.Equal(points[j].Time) {
			return points[i].Time.Before(points[j].Time)
		}
		return points[i].ID < points[j].ID
	})
	m.points = points
	m.byTime = TimeNames(points)
}

// TimeNames names each point by its time in the local zone, as `coffer
// points` shows it, to the second; points in the same second get "-1",
// "-2"… in the order of their IDs.
func TimeNames(points []*repository.Point) map[string]*repository.Point {
	names := make(map[string]*repository.Point, len(points))
	for _, p := range points {
		base := p.Time.Local().Format("2006-01-02T15:04:05")
		name := base
		for i := 1; names[name] != nil; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		names[name] = p
	}
	return names
}

func (m *mountFS) rootAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | 0o555
	a.Nlink = 1
	a.Uid, a.Gid = uint32(os.Getuid()), uint32(os.Getgid())
	a.SetTimes(&m.started, &m.started, &m.started)
}

// The fixed folders at the top of the mount.
const (
	rootIno   = 1
	latestDir = "latest"
	pointsDir = "points"
	timesDir  = "by-time"
)

// rootNode is the mount's top folder: latest, points and by-time.
type rootNode struct {
	fs.Inode
	m *mountFS
}

func (r *rootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.m.rootAttr(&out.Attr)
	out.SetTimeout(listTimeout)
	return 0
}

func (r *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	entries := []fuse.DirEntry{
		{Name: timesDir, Mode: syscall.S_IFDIR, Ino: ino(rootIno, timesDir)},
		{Name: pointsDir, Mode: syscall.S_IFDIR, Ino: ino(rootIno, pointsDir)},
	}
	if points := r.m.current(ctx); len(points) > 0 {
		latest := points[len(points)-1]
		entries = append(entries, fuse.DirEntry{Name: latestDir, Mode: syscall.S_IFDIR, Ino: ino(ino(rootIno, latestDir), latest.ID)})
	}
	return fs.NewListDirStream(entries), 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	out.SetEntryTimeout(listTimeout)
	out.SetAttrTimeout(listTimeout)
	switch name {
	case pointsDir, timesDir:
		id := ino(rootIno, name)
		r.m.rootAttr(&out.Attr)
		out.Ino = id
		return r.NewInode(ctx, &listNode{m: r.m, byTime: name == timesDir}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: id}), 0
	case latestDir:
		points := r.m.current(ctx)
		if len(points) == 0 {
			return nil, syscall.ENOENT
		}
		// A new latest point is a new folder with its own inode, so the
		// kernel lets go of the old one's contents.
		return r.m.pointRoot(ctx, &r.Inode, ino(ino(rootIno, latestDir), points[len(points)-1].ID), points[len(points)-1], out), 0
	}
	return nil, syscall.ENOENT
}

// listNode is points/ (one folder per point ID) or by-time/ (one per
// point time).
type listNode struct {
	fs.Inode
	m      *mountFS
	byTime bool
}

func (l *listNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	l.m.rootAttr(&out.Attr)
	out.SetTimeout(listTimeout)
	return 0
}

func (l *listNode) names(ctx context.Context) map[string]*repository.Point {
	points := l.m.current(ctx)
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	if l.byTime {
		return l.m.byTime
	}
	ids := make(map[string]*repository.Point, len(points))
	for _, p := range points {
		ids[p.ID] = p
	}
	return ids
}

func (l *listNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	names := l.names(ctx)
	entries := make([]fuse.DirEntry, 0, len(names))
	self := l.StableAttr().Ino
	for name, p := range names {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: ino(self, p.ID)})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return fs.NewListDirStream(entries), 0
}

func (l *listNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := l.names(ctx)[name]
	if p == nil {
		out.SetEntryTimeout(listTimeout)
		return nil, syscall.ENOENT
	}
	return l.m.pointRoot(ctx, &l.Inode, ino(l.StableAttr().Ino, p.ID), p, out), 0
}

// pointRoot makes the root folder of a point's view.
func (m *mountFS) pointRoot(ctx context.Context, parent *fs.Inode, id uint64, p *repository.Point, out *fuse.EntryOut) *fs.Inode {
	m.rootAttr(&out.Attr)
	t := p.Time
	out.Attr.SetTimes(&t, &t, &t)
	out.Ino = id
	out.SetEntryTimeout(listTimeout)
	out.SetAttrTimeout(pointTimeout)
	v := &view{m: m, ino: id, root: p.Tree}
	return parent.NewInode(ctx, &pointRootNode{dirNode: dirNode{v: v, tree: p.Tree}, time: t}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: id})
}

// pointRootNode is a point's root folder, timed as the point.
type pointRootNode struct {
	dirNode
	time time.Time
}

func (p *pointRootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	p.v.m.rootAttr(&out.Attr)
	out.Attr.SetTimes(&p.time, &p.time, &p.time)
	out.Ino = p.StableAttr().Ino
	out.SetTimeout(pointTimeout)
	return 0
}

// Options configure a mount.
type Options struct {
	// Points lists the points to show. In vault mode it leaves out the
	// points the control plane does not list (soft-deleted ones).
	Points PointLister
	// Trees loads folder listings; the local tree cache, usually.
	Trees TreeLoader
	// Blobs loads file chunks; the repository.
	Blobs BlobLoader
	// Packs, if set, lets read-ahead fetch runs of neighbouring chunks with
	// one read of their pack (RepositoryPacks).
	Packs PackReader
	// CacheBytes bounds the chunks kept in memory; 0 means DefaultCacheBytes.
	CacheBytes int64
	// Refresh is how old the list of points may get before it is read
	// again; 0 means 30 seconds.
	Refresh time.Duration
	// AllowOther lets other users see the mount (needs user_allow_other
	// in /etc/fuse.conf unless run as root).
	AllowOther bool
	// Debug logs every FUSE request.
	Debug bool
}

// Mounted is a running mount.
type Mounted struct {
	dir    string
	server *fuse.Server
	m      *mountFS
}

// Mount mounts the points read-only on dir, which must be an empty folder,
// and serves them in the background until Unmount.
func Mount(ctx context.Context, dir string, o Options) (*Mounted, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mount point: %w; create an empty folder to mount on", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mount point %s is not a folder", dir)
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	// Eight background loads keep a cold disk or a remote container busy
	// while the reader copies; measured with a 256 MiB file (make bench),
	// fewer left the reader waiting.
	m := &mountFS{trees: o.Trees, blobs: newBlobCache(o.Blobs, o.CacheBytes, 16),
		list: o.Points, refresh: o.Refresh, started: time.Now(), logged: map[string]time.Time{}}
	m.blobs.packs = o.Packs
	points, err := o.Points(ctx)
	if err != nil && len(points) == 0 {
		return nil, fmt.Errorf("list the points to mount: %w", err)
	} else if err != nil {
		slog.Warn("mount: some points could not be read and are not shown; run `coffer check`", "err", err)
	}
	m.setPoints(points)
	m.listed = time.Now()

	zero := time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:     "coffer",
			Name:       "coffer",
			Options:    []string{"ro"},
			AllowOther: o.AllowOther,
			Debug:      o.Debug,
			// Reads of up to 1 MiB per request, the size of an average
			// chunk: a quarter of the requests 128 KiB would take.
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Reads answer from memory, so splicing them through a pipe
			// saves nothing, and a 1 MiB answer would not fit the default
			// pipe anyway (go-fuse logs each such attempt).
			DisableSplice: true,
		},
		// Each node sets its own timeouts; these cover the rest.
		NegativeTimeout: &zero,
		RootStableAttr:  &fs.StableAttr{Ino: rootIno},
	}
	if runtime.GOOS == "darwin" {
		// macFUSE names its volumes after this.
		opts.MountOptions.Options = append(opts.MountOptions.Options, "volname=coffer")
	}
	server, err := fs.Mount(dir, &rootNode{m: m}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount on %s: %w%s", dir, err, mountHint())
	}
	raiseReadAhead(dir)
	return &Mounted{dir: dir, server: server, m: m}, nil
}

func mountHint() string {
	if runtime.GOOS == "darwin" {
		return "; install macFUSE (https://osxfuse.github.io) and allow its system extension"
	}
	return "; install fuse3 (for example `apt-get install fuse3`) and check that /dev/fuse exists"
}

// Wait returns once the mount is gone: unmounted by Unmount or by the
// user (`fusermount -u`, `umount`).
func (mt *Mounted) Wait() { mt.server.Wait() }

// Unmount removes the mount. It fails while a program still uses it (a
// shell inside it, an open file); the error says so.
func (mt *Mounted) Unmount() error {
	err := mt.server.Unmount()
	if err != nil && (errors.Is(err, syscall.EBUSY) || isBusy(err)) {
		return fmt.Errorf("%s is busy: close the programs and shells using it, then press Ctrl-C again (or run `%s`): %w", mt.dir, unmountCommand(mt.dir), err)
	}
	return err
}

func isBusy(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "busy")
}

func unmountCommand(dir string) string {
	if runtime.GOOS == "darwin" {
		return "umount " + dir
	}
	return "fusermount -u " + dir
}

// CachedBytes is how much chunk data the mount holds in memory now.
func (mt *Mounted) CachedBytes() int64 { return mt.m.blobs.bytes() }
