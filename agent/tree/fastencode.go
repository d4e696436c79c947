package tree

import (
	"math"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// appendTree appends t's encoding to b: byte for byte what the CBOR
// library's core deterministic mode writes for it, which
// TestFastEncodeAgreesWithCBOR and FuzzFastEncodeAgreesWithCBOR hold it
// to. Tree IDs are hashes of these bytes, so any difference would store
// every unchanged folder again.
//
// Why: encoding by reflection was the largest part of writing a folder's
// tree; a 1% re-backup of a folder of 100,000 files spent 0.16 s of CPU
// in it, every time.
func appendTree(b []byte, t *Tree) []byte {
	b = appendHead(b, majorMap, 1)
	b = appendHead(b, majorUint, 1)
	if t.Nodes == nil {
		return append(b, cborNull)
	}
	b = appendHead(b, majorArray, uint64(len(t.Nodes)))
	for i := range t.Nodes {
		b = appendNode(b, &t.Nodes[i])
	}
	return b
}

const (
	cborTrue = 0xf5
	cborNull = 0xf6
)

// appendHead appends a data item's head in its shortest form.
func appendHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= math.MaxUint8:
		return append(b, m|24, byte(v))
	case v <= math.MaxUint16:
		return append(b, m|25, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, m|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, m|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendHead(b, majorNeg, uint64(-(v + 1)))
	}
	return appendHead(b, majorUint, uint64(v))
}

// appendBytes writes a byte string; nil is null, as the library writes a
// nil slice in a field that is not omitted when empty.
func appendBytes(b, s []byte) []byte {
	if s == nil {
		return append(b, cborNull)
	}
	return append(appendHead(b, majorBytes, uint64(len(s))), s...)
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

func appendID(b []byte, id *crypto.ID) []byte {
	return append(appendHead(b, majorBytes, uint64(len(id))), id[:]...)
}

// appendNode writes n as a map of the fields that are not omitted when
// empty (omitempty in Node's tags), in increasing key order. Node has 20
// fields, so the map's head is one byte however many are written: it is
// filled in last, from the fields written.
func appendNode(b []byte, n *Node) []byte {
	head := len(b)
	b = append(b, 0)
	pairs := 0
	key := func(k byte) {
		b = append(b, k)
		pairs++
	}
	uintField := func(k byte, v uint64) {
		if v != 0 {
			key(k)
			b = appendHead(b, majorUint, v)
		}
	}
	intField := func(k byte, v int64) {
		if v != 0 {
			key(k)
			b = appendInt(b, v)
		}
	}
	textField := func(k byte, s string) {
		if s != "" {
			key(k)
			b = appendText(b, s)
		}
	}
	bytesField := func(k byte, s []byte) {
		if len(s) > 0 {
			key(k)
			b = appendBytes(b, s)
		}
	}
	key(1)
	b = appendBytes(b, n.Name)
	key(2)
	b = appendHead(b, majorUint, uint64(n.Type))
	uintField(3, uint64(n.Mode))
	uintField(4, uint64(n.UID))
	uintField(5, uint64(n.GID))
	textField(6, n.User)
	textField(7, n.Group)
	intField(8, n.Size)
	intField(9, n.ModTime)
	intField(10, n.ChangeTime)
	uintField(11, n.Inode)
	uintField(12, n.Dev)
	uintField(13, n.Rdev)
	bytesField(14, n.LinkTarget)
	if len(n.Content) > 0 {
		key(15)
		b = appendHead(b, majorArray, uint64(len(n.Content)))
		for i := range n.Content {
			b = appendRef(b, &n.Content[i])
		}
	}
	if n.Subtree != nil {
		key(16)
		b = appendID(b, n.Subtree)
	}
	if len(n.Xattrs) > 0 {
		key(17)
		b = appendHead(b, majorArray, uint64(len(n.Xattrs)))
		for i := range n.Xattrs {
			x := &n.Xattrs[i]
			b = appendHead(b, majorMap, 2)
			b = appendText(append(b, 1), x.Name)
			b = appendBytes(append(b, 2), x.Value)
		}
	}
	uintField(18, uint64(n.WinAttrs))
	bytesField(19, n.WinSD)
	uintField(20, n.Links)
	b[head] = majorMap<<5 | byte(pairs)
	return b
}

// appendRef writes a content piece: its ID (a fixed-size array, never
// omitted), its size, and its hole flag when set.
func appendRef(b []byte, r *Ref) []byte {
	pairs := uint64(2)
	if r.Hole {
		pairs++
	}
	b = appendHead(b, majorMap, pairs)
	b = appendID(append(b, 1), &r.ID)
	b = appendInt(append(b, 2), r.Size)
	if r.Hole {
		b = append(b, 3, cborTrue)
	}
	return b
}
