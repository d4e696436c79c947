package mount

import (
	"context"
	"fmt"
	"sort"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
)

// content reads a backed-up file at any offset from its chunk list: it
// finds the chunks an extent covers by binary search over their starting
// offsets, copies from the shared cache, and reads holes as zeros.
type content struct {
	refs   []tree.Ref
	starts []int64 // starts[i] is where refs[i] begins; one more for the end
}

func newContent(refs []tree.Ref) *content {
	starts := make([]int64, len(refs)+1)
	for i, r := range refs {
		starts[i+1] = starts[i] + r.Size
	}
	return &content{refs: refs, starts: starts}
}

func (c *content) size() int64 { return c.starts[len(c.refs)] }

// chunkAt is the index of the chunk holding offset off (< size).
func (c *content) chunkAt(off int64) int {
	return sort.Search(len(c.refs), func(i int) bool { return c.starts[i+1] > off })
}

// readAt fills dst from offset off and returns how many bytes it filled:
// less than len(dst) only at the end of the file. next is the index of the
// first chunk after the extent read, for read-ahead.
func (c *content) readAt(ctx context.Context, bc *blobCache, dst []byte, off int64) (n int, next int, err error) {
	end := min(off+int64(len(dst)), c.size())
	if off >= end {
		return 0, len(c.refs), nil
	}
	i := c.chunkAt(off)
	for ; i < len(c.refs) && off < end; i++ {
		r := c.refs[i]
		within := off - c.starts[i]
		take := min(r.Size-within, end-off)
		out := dst[n : n+int(take)]
		if r.Hole {
			clear(out)
		} else {
			data, err := bc.get(ctx, r.ID)
			if err != nil {
				return n, i, err
			}
			if int64(len(data)) != r.Size {
				return n, i, fmt.Errorf("chunk %s holds %d bytes where the file's listing says %d: the point is damaged (run `coffer check --read-data`)", r.ID, len(data), r.Size)
			}
			copy(out, data[within:within+take])
		}
		n += int(take)
		off += take
	}
	return n, i, nil
}

// warm prefetches the data chunks from index i on, up to about ahead bytes.
func (c *content) warm(bc *blobCache, i int, ahead int64) {
	var got int64
	var ids []crypto.ID
	for ; i < len(c.refs) && got < ahead; i++ {
		if r := c.refs[i]; !r.Hole {
			ids = append(ids, r.ID)
			got += r.Size
		}
	}
	bc.warmRun(ids)
}
