// Package packrefstest makes pack reference lists for tests of their
// readers.
package packrefstest

import (
	"io"
	"strconv"
	"strings"
)

// Generated is a valid list for Point of N sorted packs (IDs 1 to N),
// written as it is read, so a test can hand a reader a list far larger
// than the memory the test itself uses; it allocates nothing after its
// first read. Written counts the bytes read.
type Generated struct {
	Point   string
	N       int
	Written int64

	i    int
	num  [16]byte
	buf  []byte
	done bool
}

var zeros = strings.Repeat("0", 64)

func (g *Generated) Read(b []byte) (int, error) {
	if g.buf == nil {
		g.buf = append(make([]byte, 0, 64<<10), `{"version":1,"point":"`+g.Point+`","packs":[`...)
	}
	for len(g.buf) < cap(g.buf)-80 && !g.done {
		if g.i < g.N {
			if g.i > 0 {
				g.buf = append(g.buf, ',')
			}
			// Hex of i+1, padded to an ID's 64 digits, appended without
			// allocating: a benchmark counts what the reader allocates.
			id := strconv.AppendUint(g.num[:0], uint64(g.i+1), 16)
			g.buf = append(g.buf, '"')
			g.buf = append(append(g.buf, zeros[:64-len(id)]...), id...)
			g.buf = append(g.buf, '"')
			g.i++
			continue
		}
		g.buf = append(g.buf, "]}"...)
		g.done = true
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, g.buf)
	g.buf = g.buf[:copy(g.buf, g.buf[n:])]
	g.Written += int64(n)
	return n, nil
}
