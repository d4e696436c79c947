package restorer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// BlobLoader reads one blob's plaintext through the index.
type BlobLoader interface {
	LoadBlob(ctx context.Context, id crypto.ID) ([]byte, error)
}

// streamAhead is how many chunks WriteContent fetches ahead of the one it
// writes: enough to keep a remote container busy, a few MiB in memory.
const streamAhead = 8

// blobInPlaceLoader is a BlobLoader that reads into the caller's buffers
// (repository.Repository).
type blobInPlaceLoader interface {
	LoadBlobInPlace(ctx context.Context, id crypto.ID, span, plain []byte) (out, spanOut, plainOut []byte, err error)
}

// WriteContent writes a file's content to w in order, fetching chunks
// ahead in parallel. Holes are written as zeros.
func WriteContent(ctx context.Context, blobs BlobLoader, refs []tree.Ref, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		data []byte
		bufs *packBufs // data's buffers, back to the pool once written
		err  error
	}
	inPlace, _ := blobs.(blobInPlaceLoader)
	load := func(id crypto.ID) fetched {
		if inPlace == nil {
			data, err := blobs.LoadBlob(ctx, id)
			return fetched{data: data, err: err}
		}
		bufs := packBufPool.Get().(*packBufs)
		var f fetched
		f.data, bufs.span, bufs.plain, f.err = inPlace.LoadBlobInPlace(ctx, id, bufs.span, bufs.plain)
		f.bufs = bufs
		return f
	}
	pending := make(chan chan fetched, streamAhead)
	go func() {
		defer close(pending)
		for _, r := range refs {
			ch := make(chan fetched, 1)
			select {
			case pending <- ch:
			case <-ctx.Done():
				return
			}
			if r.Hole {
				ch <- fetched{}
				continue
			}
			go func() {
				f := load(r.ID)
				if f.err == nil && int64(len(f.data)) != r.Size {
					f.err = fmt.Errorf("chunk %s holds %d bytes where the listing says %d: the point is damaged (run `coffer check --read-data`)", r.ID, len(f.data), r.Size)
				}
				ch <- f
			}()
		}
	}()
	var zeros []byte
	for _, r := range refs {
		ch, ok := <-pending
		if !ok {
			return ctx.Err()
		}
		f := <-ch
		if f.err != nil {
			return f.err
		}
		if !r.Hole {
			_, err := w.Write(f.data)
			if f.bufs != nil {
				packBufPool.Put(f.bufs)
			}
			if err != nil {
				return err
			}
			continue
		}
		if zeros == nil {
			zeros = make([]byte, 1<<20)
		}
		for left := r.Size; left > 0; {
			n := min(left, int64(len(zeros)))
			if _, err := w.Write(zeros[:n]); err != nil {
				return err
			}
			left -= n
		}
	}
	return nil
}

// Lookup finds the entry at a slash-separated path from a point's root
// tree. An empty path is the root itself, returned as a folder node.
func Lookup(ctx context.Context, trees TreeLoader, root crypto.ID, p string) (*tree.Node, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return &tree.Node{Type: tree.Dir, Mode: 0o755, Subtree: &root}, nil
	}
	id := root
	names := strings.Split(p, "/")
	for i, name := range names {
		t, err := trees.LoadTree(ctx, id)
		if err != nil {
			return nil, err
		}
		var n *tree.Node
		for j := range t.Nodes {
			if string(t.Nodes[j].Name) == name {
				n = &t.Nodes[j]
				break
			}
		}
		if n == nil {
			return nil, fmt.Errorf("%w: /%s is not in the point (see `coffer ls`)", ErrNotInPoint, path.Join(names[:i+1]...))
		}
		if i == len(names)-1 {
			return n, nil
		}
		if n.Type != tree.Dir || n.Subtree == nil {
			return nil, fmt.Errorf("%w: /%s is a %s, not a folder", ErrNotInPoint, path.Join(names[:i+1]...), n.Type)
		}
		id = *n.Subtree
	}
	return nil, nil
}

// ErrNotInPoint marks a path the point does not hold.
var ErrNotInPoint = errors.New("no such path")

// WriteTar writes the folder dir (a node of the point whose root tree is
// root) and everything below it to w as a tar stream. Names are paths from
// the point's root, as `coffer restore` lays them out under its target, so
// `tar -x` in a folder gives what a restore into it gives: files, folders,
// symlinks and hard links with their modes, owners, times and extended
// attributes (holes are written as zeros). FIFOs, sockets and devices are
// left out, as a restore leaves them. A hard link whose first name is
// outside dir is written as a file.
func WriteTar(ctx context.Context, blobs BlobLoader, trees TreeLoader, root crypto.ID, dir string, node *tree.Node, w io.Writer) error {
	tw := tar.NewWriter(w)
	dir = strings.Trim(dir, "/")
	written := map[string]bool{}
	inodes := map[[2]uint64]string{} // a multiply-linked file's first name written
	var walk func(rel string, n *tree.Node) error
	walk = func(rel string, n *tree.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &tar.Header{Name: rel, Mode: int64(n.Mode & 0o7777), Uid: int(n.UID), Gid: int(n.GID),
			Uname: n.User, Gname: n.Group, ModTime: time.Unix(0, n.ModTime), Format: tar.FormatPAX}
		for _, x := range n.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
		switch n.Type {
		case tree.Dir:
			if rel != "" {
				h.Typeflag, h.Name = tar.TypeDir, rel+"/"
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
			}
			t, err := trees.LoadTree(ctx, *n.Subtree)
			if err != nil {
				return fmt.Errorf("read the listing of /%s: %w", rel, err)
			}
			for i := range t.Nodes {
				if err := walk(path.Join(rel, string(t.Nodes[i].Name)), &t.Nodes[i]); err != nil {
					return err
				}
			}
			return nil
		case tree.Symlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, string(n.LinkTarget)
			return tw.WriteHeader(h)
		case tree.HardLink:
			first := strings.Trim(string(n.LinkTarget), "/")
			if written[first] {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				return tw.WriteHeader(h)
			}
			target, err := Lookup(ctx, trees, root, first)
			if err != nil {
				return fmt.Errorf("hard link /%s: %w", rel, err)
			}
			if target.Type != tree.File {
				return fmt.Errorf("hard link /%s names /%s, a %s", rel, first, target.Type)
			}
			return walk(rel, target)
		case tree.File:
			key := [2]uint64{n.Dev, n.Inode}
			linked := n.Links > 1 && n.Inode != 0
			if first, ok := inodes[key]; ok && linked {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				return tw.WriteHeader(h)
			}
			h.Typeflag, h.Size = tar.TypeReg, n.Size
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if err := WriteContent(ctx, blobs, n.Content, tw); err != nil {
				return fmt.Errorf("/%s: %w", rel, err)
			}
			written[rel] = true
			if linked {
				inodes[key] = rel
			}
			return nil
		}
		return nil // FIFOs, sockets, devices: not restored
	}
	if err := walk(dir, node); err != nil {
		return err
	}
	return tw.Close()
}
