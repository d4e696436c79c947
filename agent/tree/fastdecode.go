package tree

import (
	"errors"
	"math"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/agent/cborread"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/hugemem"
)

// errNotFast says the fast decoder met something outside the form Encode
// writes. The CBOR library's decoder then decides, so what is accepted,
// what is refused and every error message stay that decoder's.
var errNotFast = errors.New("tree: not in the form Encode writes")

// decodeFast decodes a tree in exactly the form Encode writes: definite
// lengths, integer keys in increasing order, the types Node's fields have.
// It accepts nothing the CBOR library's decoder would refuse or read
// differently (FuzzFastDecodeAgreesWithCBOR holds it to that), and returns
// errNotFast for anything else.
//
// Why: decoding by reflection was a tenth of a re-backup's CPU, and a
// folder of 100,000 files took the CBOR decoder about 0.15 s and tens of
// thousands of allocations each time it was read.
func decodeFast(b []byte) (*Tree, error) {
	d := fastDecoder{Reader: cborread.Reader{B: b}}
	t := &Tree{}
	pairs, ok := d.Head(majorMap)
	if !ok || pairs > 1 {
		return nil, errNotFast
	}
	if pairs == 1 {
		if k, ok := d.Head(majorUint); !ok || k != 1 {
			return nil, errNotFast
		}
		if d.Null() {
			// Encode writes an empty tree's nodes as null.
		} else {
			n, ok := d.Head(majorArray)
			if !ok || n > MaxNodes || n > uint64(d.Left()) {
				return nil, errNotFast
			}
			t.Nodes = hugemem.Make[Node](int(n))
			for i := range t.Nodes {
				if !d.node(&t.Nodes[i]) {
					return nil, errNotFast
				}
			}
		}
	}
	if d.Off != len(d.B) {
		return nil, errNotFast
	}
	return t, nil
}

const (
	majorUint  = cborread.Uint
	majorNeg   = cborread.Neg
	majorBytes = cborread.Bytes
	majorText  = cborread.Text
	majorArray = cborread.Array
	majorMap   = cborread.Map

	// maxMapPairs is the CBOR decoder's MaxMapPairs.
	maxMapPairs = 64

	// minRefEncoding is the fewest bytes a content piece takes as Encode
	// writes it: a map head, key 1 with a 32-byte ID, key 2 with a size.
	minRefEncoding = 1 + 1 + 2 + 32 + 1 + 1
)

type fastDecoder struct {
	cborread.Reader
	// arena holds the tree's byte strings, so a folder of many entries
	// makes a few allocations rather than one or two per entry.
	arena []byte
	// user and group repeat from entry to entry: one string each.
	user, group string

	// reuse: Each's mode. Byte strings point into b, and one node's
	// content, attributes and subtree ID are reused for the next.
	reuse bool
	refs  []Ref // otherwise the nodes' content, allocated for many at once
	xs    []Xattr
	sub   crypto.ID
}

// bytes reads a byte string into the arena. Encode writes a nil slice in
// a field that is not omitted when empty (an attribute's value) as null.
func (d *fastDecoder) bytes() ([]byte, bool) {
	if d.Null() {
		return nil, true
	}
	b, ok := d.Raw(majorBytes)
	if !ok || d.reuse {
		return b, ok
	}
	if cap(d.arena)-len(d.arena) < len(b) {
		// What is left of the encoding bounds the strings still to come:
		// a small folder's arena is its size, not 64 KiB.
		d.arena = make([]byte, 0, len(b)+min(64<<10, d.Left()))
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)], true
}

func (d *fastDecoder) text(last *string) (string, bool) {
	b, ok := d.Raw(majorText)
	if !ok || !utf8.Valid(b) {
		return "", false
	}
	if string(b) == *last {
		return *last, true
	}
	*last = string(b)
	return *last, true
}

func (d *fastDecoder) id() (crypto.ID, bool) {
	var id crypto.ID
	b, ok := d.Raw(majorBytes)
	if !ok || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// fields reads a map's pairs, handing each key to field; keys must rise.
func (d *fastDecoder) fields(field func(key uint64) bool) bool {
	n, ok := d.Head(majorMap)
	if !ok || n > maxMapPairs {
		return false
	}
	var prev uint64
	for i := uint64(0); i < n; i++ {
		k, ok := d.Head(majorUint)
		if !ok || (i > 0 && k <= prev) || !field(k) {
			return false
		}
		prev = k
	}
	return true
}

// array reads an array's length, bounded by what is left to read.
func (d *fastDecoder) array() (int, bool) {
	n, ok := d.Head(majorArray)
	if !ok || n > MaxNodes || n > uint64(d.Left()) {
		return 0, false
	}
	return int(n), true
}

func (d *fastDecoder) node(n *Node) bool {
	return d.fields(func(k uint64) bool {
		var ok bool
		var v uint64
		switch k {
		case 1:
			n.Name, ok = d.bytes()
		case 2:
			v, ok = d.Uint(math.MaxUint8)
			n.Type = Type(v)
		case 3:
			v, ok = d.Uint(math.MaxUint32)
			n.Mode = uint32(v)
		case 4:
			v, ok = d.Uint(math.MaxUint32)
			n.UID = uint32(v)
		case 5:
			v, ok = d.Uint(math.MaxUint32)
			n.GID = uint32(v)
		case 6:
			n.User, ok = d.text(&d.user)
		case 7:
			n.Group, ok = d.text(&d.group)
		case 8:
			n.Size, ok = d.Int64()
		case 9:
			n.ModTime, ok = d.Int64()
		case 10:
			n.ChangeTime, ok = d.Int64()
		case 11:
			n.Inode, ok = d.Uint(math.MaxUint64)
		case 12:
			n.Dev, ok = d.Uint(math.MaxUint64)
		case 13:
			n.Rdev, ok = d.Uint(math.MaxUint64)
		case 14:
			n.LinkTarget, ok = d.bytes()
		case 15:
			ok = d.content(n)
		case 16:
			var id crypto.ID
			if id, ok = d.id(); ok {
				if d.reuse {
					d.sub, n.Subtree = id, &d.sub
				} else {
					n.Subtree = &id
				}
			}
		case 17:
			ok = d.xattrs(n)
		case 18:
			v, ok = d.Uint(math.MaxUint32)
			n.WinAttrs = uint32(v)
		case 19:
			n.WinSD, ok = d.bytes()
		case 20:
			n.Links, ok = d.Uint(math.MaxUint64)
		}
		return ok
	})
}

// reused returns count zeroed elements of *buf, grown if it must be: in
// Each's mode one node's lists are reused for the next.
func reused[T any](buf *[]T, count int) []T {
	if cap(*buf) < count {
		*buf = make([]T, count)
	}
	s := (*buf)[:count]
	clear(s)
	return s
}

func (d *fastDecoder) content(n *Node) bool {
	count, ok := d.array()
	if !ok {
		return false
	}
	if d.reuse {
		n.Content = reused(&d.refs, count)
	} else {
		// From one array for many nodes, as the arena does for bytes.
		if cap(d.refs)-len(d.refs) < count {
			// Bounded by what is left of the encoding, as the arena is.
			d.refs = make([]Ref, 0, count+min(1024, d.Left()/minRefEncoding))
		}
		start := len(d.refs)
		d.refs = d.refs[:start+count]
		n.Content = d.refs[start : start+count : start+count]
	}
	for i := range n.Content {
		r := &n.Content[i]
		if !d.fields(func(k uint64) bool {
			var ok bool
			switch k {
			case 1:
				r.ID, ok = d.id()
			case 2:
				r.Size, ok = d.Int64()
			case 3:
				if d.Off < len(d.B) && (d.B[d.Off] == 0xf4 || d.B[d.Off] == 0xf5) {
					r.Hole, ok = d.B[d.Off] == 0xf5, true
					d.Off++
				}
			}
			return ok
		}) {
			return false
		}
	}
	return true
}

func (d *fastDecoder) xattrs(n *Node) bool {
	count, ok := d.array()
	if !ok {
		return false
	}
	if d.reuse {
		n.Xattrs = reused(&d.xs, count)
	} else {
		n.Xattrs = make([]Xattr, count)
	}
	for i := range n.Xattrs {
		x := &n.Xattrs[i]
		var none string // attribute names are not interned
		if !d.fields(func(k uint64) bool {
			var ok bool
			switch k {
			case 1:
				x.Name, ok = d.text(&none)
			case 2:
				x.Value, ok = d.bytes()
			}
			return ok
		}) {
			return false
		}
	}
	return true
}

// Each calls fn with each node of the tree encoded in b, in order, after
// checking the whole tree as Decode does: a tree Decode refuses hands over
// nothing. fn gets one Node, reused from call to call, whose byte slices
// point into b: it copies what it keeps.
//
// Why: a restore plans a folder of 100,000 files entry by entry, and
// decoded whole such a folder held 30 MB for as long as its files took to
// restore; its encoding is half that, and already in memory.
func Each(b []byte, fn func(*Node) error) error {
	ok, err := eachFast(b, nil)
	if !ok {
		// Not as Encode writes trees: decoded whole, by the CBOR decoder.
		t, err := Decode(b)
		if err != nil {
			return err
		}
		for i := range t.Nodes {
			if err := fn(&t.Nodes[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	_, err = eachFast(b, fn)
	return err
}

// eachFast decodes and checks b's nodes one at a time, handing each to fn
// if fn is not nil. ok is false when b is not as Encode writes it; err is
// what checking the nodes found, or fn's error.
func eachFast(b []byte, fn func(*Node) error) (ok bool, err error) {
	d := fastDecoder{Reader: cborread.Reader{B: b}, reuse: true}
	pairs, ok := d.Head(majorMap)
	if !ok || pairs > 1 {
		return false, nil
	}
	var count uint64
	if pairs == 1 {
		if k, ok := d.Head(majorUint); !ok || k != 1 {
			return false, nil
		}
		if !d.Null() {
			if count, ok = d.Head(majorArray); !ok || count > MaxNodes || count > uint64(d.Left()) {
				return false, nil
			}
		}
	}
	var n, prev Node
	for i := uint64(0); i < count; i++ {
		n = Node{}
		if !d.node(&n) {
			return false, nil
		}
		p := &prev
		if i == 0 {
			p = nil
		}
		if err == nil {
			err = n.validate(p)
			if err == nil && fn != nil {
				err = fn(&n)
			}
		}
		if err != nil && fn != nil {
			return true, err
		}
		prev.Name = n.Name
	}
	if d.Off != len(d.B) {
		return false, nil
	}
	return true, err
}
