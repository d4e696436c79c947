//go:build linux || darwin

package mount

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/restorer"
	"github.com/coffer-backup/coffer/agent/tree"
)

// A point never changes once stored, so the kernel may keep what it learnt
// about anything inside one for as long as it likes; only the top folders,
// whose lists of points change as backups run, are asked again soon.
const (
	pointTimeout = 24 * time.Hour
	listTimeout  = time.Second
)

// readAhead is how far beyond a sequential read the mount fetches chunks
// in the background, so decryption overlaps the reader's copying.
const readAhead = 64 << 20

// ino makes a stable inode number for a name in a folder: the same entry
// gets the same number whenever it is looked up or listed, and the
// numbers stay below go-fuse's automatic ones (2^63 and up).
func ino(parent uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	h.Write(b[:])
	h.Write([]byte(name))
	return h.Sum64()&(1<<63-1) | 2 // never 0 or 1 (the root)
}

// view is one point's tree under one name (points/<ID>, latest or
// by-time/<time>): the kernel must see each as its own folder, so each
// has its own inode numbers.
type view struct {
	m    *mountFS
	ino  uint64    // the view's root folder
	root crypto.ID // the point's root tree
}

// dirNode is a folder of a point.
type dirNode struct {
	fs.Inode
	v    *view
	node *tree.Node // nil for the view's root
	tree crypto.ID

	mu     sync.Mutex
	loaded *tree.Tree // kept once read; a failure is tried again next time
}

var (
	_ fs.NodeLookuper   = (*dirNode)(nil)
	_ fs.NodeReaddirer  = (*dirNode)(nil)
	_ fs.NodeGetattrer  = (*dirNode)(nil)
	_ fs.NodeGetxattrer = (*dirNode)(nil)
)

func (d *dirNode) listing(ctx context.Context) (*tree.Tree, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded != nil {
		return d.loaded, 0
	}
	t, err := d.v.m.trees.LoadTree(ctx, d.tree)
	if err != nil {
		if ctx.Err() != nil {
			return nil, syscall.EINTR
		}
		d.v.m.logFailure("read a folder listing", err)
		return nil, syscall.EIO
	}
	d.loaded = t
	return t, 0
}

func (d *dirNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if d.node == nil {
		d.v.m.rootAttr(&out.Attr)
	} else {
		nodeAttr(d.node, &out.Attr)
	}
	out.Ino = d.StableAttr().Ino
	out.SetTimeout(pointTimeout)
	return 0
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, errno := d.listing(ctx)
	if errno != 0 {
		return nil, errno
	}
	i := sort.Search(len(t.Nodes), func(i int) bool { return bytes.Compare(t.Nodes[i].Name, []byte(name)) >= 0 })
	if i == len(t.Nodes) || string(t.Nodes[i].Name) != name || !shown(&t.Nodes[i]) {
		out.SetEntryTimeout(pointTimeout)
		return nil, syscall.ENOENT
	}
	return d.child(ctx, &t.Nodes[i], out)
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t, errno := d.listing(ctx)
	if errno != 0 {
		return nil, errno
	}
	self := d.StableAttr().Ino
	entries := make([]fuse.DirEntry, 0, len(t.Nodes))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if !shown(n) {
			continue
		}
		e := fuse.DirEntry{Name: string(n.Name), Ino: d.entryIno(self, n), Mode: typeBits(n.Type)}
		if n.Type == tree.HardLink {
			e.Ino = d.v.pathIno(string(n.LinkTarget))
			e.Mode = syscall.S_IFREG
		}
		entries = append(entries, e)
	}
	return fs.NewListDirStream(entries), 0
}

// shown reports whether an entry appears in the mount: what `coffer
// restore` writes, so no FIFOs, sockets or devices, and no name the
// restorer would refuse.
func shown(n *tree.Node) bool {
	switch n.Type {
	case tree.File, tree.Dir, tree.Symlink, tree.HardLink:
	default:
		return false
	}
	_, _, err := restorer.LocalName(string(n.Name), runtime.GOOS)
	return err == nil
}

// entryIno is the inode number of an entry of this folder: every name of
// a hard-linked file gets the file's one number, as a restore makes it.
func (d *dirNode) entryIno(self uint64, n *tree.Node) uint64 {
	if n.Type == tree.File && n.Links > 1 && n.Inode != 0 {
		// NUL never occurs in a name, so this cannot be any entry's key.
		return ino(d.v.ino, fmt.Sprintf("\x00link %d %d", n.Dev, n.Inode))
	}
	return ino(self, string(n.Name))
}

func (d *dirNode) child(ctx context.Context, n *tree.Node, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	id := d.entryIno(d.StableAttr().Ino, n)
	var node fs.InodeEmbedder
	switch n.Type {
	case tree.Dir:
		if n.Subtree == nil {
			return nil, syscall.EIO
		}
		node = &dirNode{v: d.v, node: n, tree: *n.Subtree}
	case tree.File:
		node = &fileNode{m: d.v.m, node: n}
	case tree.Symlink:
		node = &linkNode{node: n}
	case tree.HardLink:
		// A further name of a file stored earlier in the point: the same
		// inode as the first name, as `coffer restore` makes it.
		first, err := d.v.resolve(ctx, string(n.LinkTarget))
		if err != nil {
			d.v.m.logFailure("follow hard link "+string(n.Name), err)
			return nil, syscall.EIO
		}
		n, id = first, d.v.pathIno(string(n.LinkTarget))
		node = &fileNode{m: d.v.m, node: n}
	}
	nodeAttr(n, &out.Attr)
	out.Ino = id
	out.SetEntryTimeout(pointTimeout)
	out.SetAttrTimeout(pointTimeout)
	return d.NewInode(ctx, node, fs.StableAttr{Mode: typeBits(n.Type), Ino: id}), 0
}

func (d *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if d.node == nil {
		return 0, fs.ENOATTR
	}
	return getxattr(d.node, attr, dest)
}

func (d *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if d.node == nil {
		return 0, 0
	}
	return listxattr(d.node, dest)
}

// pathIno is the inode number of a slash-separated path from the point's
// root in this view, as the lookups that reach it compute it.
func (v *view) pathIno(p string) uint64 {
	id := v.ino
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		id = ino(id, name)
	}
	return id
}

// resolve finds the file a hard link names, by its path from the point's
// root.
func (v *view) resolve(ctx context.Context, p string) (*tree.Node, error) {
	names := strings.Split(strings.Trim(p, "/"), "/")
	id := v.root
	for i, name := range names {
		t, err := v.m.trees.LoadTree(ctx, id)
		if err != nil {
			return nil, err
		}
		j := sort.Search(len(t.Nodes), func(j int) bool { return bytes.Compare(t.Nodes[j].Name, []byte(name)) >= 0 })
		if j == len(t.Nodes) || string(t.Nodes[j].Name) != name {
			return nil, errors.New("its first name " + p + " is not in the point")
		}
		n := &t.Nodes[j]
		if i == len(names)-1 {
			if n.Type != tree.File {
				return nil, errors.New("its first name " + p + " is not a file")
			}
			return n, nil
		}
		if n.Type != tree.Dir || n.Subtree == nil {
			return nil, errors.New(p + " does not lead through folders")
		}
		id = *n.Subtree
	}
	return nil, errors.New("a hard link with an empty target")
}

// fileNode is a backed-up file, read through the shared blob cache.
type fileNode struct {
	fs.Inode
	m    *mountFS
	node *tree.Node

	once sync.Once
	c    *content
}

var (
	_ fs.NodeOpener     = (*fileNode)(nil)
	_ fs.NodeReader     = (*fileNode)(nil)
	_ fs.NodeGetattrer  = (*fileNode)(nil)
	_ fs.NodeGetxattrer = (*fileNode)(nil)
)

// handle follows one open file's reads to tell sequential from random.
type handle struct {
	mu   sync.Mutex
	next int64 // where a sequential read would start
}

func (f *fileNode) content() *content {
	f.once.Do(func() { f.c = newContent(f.node.Content) })
	return f.c
}

func (f *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(f.node, &out.Attr)
	out.Ino = f.StableAttr().Ino
	out.SetTimeout(pointTimeout)
	return 0
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if f.content().size() != f.node.Size {
		f.m.logFailure("open "+string(f.node.Name), errors.New("its chunks do not add up to its size: the point is damaged (run `coffer check --read-data`)"))
		return nil, 0, syscall.EIO
	}
	// The content never changes, so the kernel's page cache stays valid
	// across opens.
	return &handle{}, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c := f.content()
	n, next, err := c.readAt(ctx, f.m.blobs, dest, off)
	if err != nil {
		if ctx.Err() != nil {
			return nil, syscall.EINTR
		}
		f.m.logFailure("read "+string(f.node.Name), err)
		return nil, syscall.EIO
	}
	if h, ok := fh.(*handle); ok {
		h.mu.Lock()
		sequential := off == h.next || off == 0
		if off+int64(n) > h.next {
			h.next = off + int64(n)
		}
		h.mu.Unlock()
		if sequential {
			// Never more ahead than a quarter of the cache, or a small
			// cache would evict what was fetched before it is read.
			c.warm(f.m.blobs, next, min(readAhead, f.m.blobs.max/4))
		}
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(f.node, attr, dest)
}

func (f *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(f.node, dest)
}

// linkNode is a symlink; its target is shown as it was backed up.
type linkNode struct {
	fs.Inode
	node *tree.Node
}

var (
	_ fs.NodeReadlinker = (*linkNode)(nil)
	_ fs.NodeGetattrer  = (*linkNode)(nil)
	_ fs.NodeGetxattrer = (*linkNode)(nil)
)

func (l *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return l.node.LinkTarget, 0
}

func (l *linkNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(l.node, &out.Attr)
	out.Ino = l.StableAttr().Ino
	out.SetTimeout(pointTimeout)
	return 0
}

func (l *linkNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(l.node, attr, dest)
}

func (l *linkNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(l.node, dest)
}

func typeBits(t tree.Type) uint32 {
	switch t {
	case tree.Dir:
		return syscall.S_IFDIR
	case tree.Symlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// nodeAttr shows an entry's metadata as it was backed up.
func nodeAttr(n *tree.Node, a *fuse.Attr) {
	a.Mode = typeBits(n.Type) | n.Mode&0o7777
	a.Uid, a.Gid = n.UID, n.GID
	a.Nlink = 1
	if n.Type == tree.File && n.Links > 1 {
		a.Nlink = uint32(min(n.Links, 1<<31))
	}
	switch n.Type {
	case tree.Symlink:
		a.Size = uint64(len(n.LinkTarget))
	case tree.Dir:
		a.Size = 4096
	default:
		a.Size = uint64(n.Size)
		var stored int64
		for _, r := range n.Content {
			if !r.Hole {
				stored += r.Size
			}
		}
		a.Blocks = uint64(stored+511) / 512
	}
	a.Blksize = 1 << 20
	mt := time.Unix(0, n.ModTime)
	ct := mt
	if n.ChangeTime != 0 {
		ct = time.Unix(0, n.ChangeTime)
	}
	a.SetTimes(&mt, &mt, &ct)
}

func getxattr(n *tree.Node, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range n.Xattrs {
		if x.Name == attr {
			if len(dest) == 0 {
				return uint32(len(x.Value)), 0
			}
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, fs.ENOATTR
}

func listxattr(n *tree.Node, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, x := range n.Xattrs {
		b = append(append(b, x.Name...), 0)
	}
	if len(dest) == 0 {
		return uint32(len(b)), 0
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// logFailure reports what the kernel can only see as EIO, at most once a
// second for the same kind of failure, so a damaged chunk read over and
// over does not flood the log.
func (m *mountFS) logFailure(what string, err error) {
	m.logMu.Lock()
	if len(m.logged) > 1000 {
		clear(m.logged) // many distinct failures: let them be logged again
	}
	last := m.logged[what]
	now := time.Now()
	if now.Sub(last) < time.Second {
		m.logMu.Unlock()
		return
	}
	m.logged[what] = now
	m.logMu.Unlock()
	slog.Error("mount: could not "+what, "err", err)
}
