package tree

import (
	"math"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// appendTree appends t's encoding to b: byte for byte what the CBOR
// library's core deterministic mode (encMode) writes for it, which
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
	cborFalse = 0xf4
	cborTrue  = 0xf5
	cborNull  = 0xf6
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
// empty (omitempty in Node's tags), in increasing key order.
func appendNode(b []byte, n *Node) []byte {
	pairs := 2 // Name and Type are always written
	for _, set := range [...]bool{n.Mode != 0, n.UID != 0, n.GID != 0, n.User != "", n.Group != "",
		n.Size != 0, n.ModTime != 0, n.ChangeTime != 0, n.Inode != 0, n.Dev != 0, n.Rdev != 0,
		len(n.LinkTarget) > 0, len(n.Content) > 0, n.Subtree != nil, len(n.Xattrs) > 0,
		n.WinAttrs != 0, len(n.WinSD) > 0, n.Links != 0} {
		if set {
			pairs++
		}
	}
	b = appendHead(b, majorMap, uint64(pairs))
	b = appendBytes(append(b, 1), n.Name)
	b = appendHead(append(b, 2), majorUint, uint64(n.Type))
	uintField := func(b []byte, key byte, v uint64) []byte {
		if v == 0 {
			return b
		}
		return appendHead(append(b, key), majorUint, v)
	}
	intField := func(b []byte, key byte, v int64) []byte {
		if v == 0 {
			return b
		}
		return appendInt(append(b, key), v)
	}
	textField := func(b []byte, key byte, s string) []byte {
		if s == "" {
			return b
		}
		return appendText(append(b, key), s)
	}
	bytesField := func(b []byte, key byte, s []byte) []byte {
		if len(s) == 0 {
			return b
		}
		return appendBytes(append(b, key), s)
	}
	b = uintField(b, 3, uint64(n.Mode))
	b = uintField(b, 4, uint64(n.UID))
	b = uintField(b, 5, uint64(n.GID))
	b = textField(b, 6, n.User)
	b = textField(b, 7, n.Group)
	b = intField(b, 8, n.Size)
	b = intField(b, 9, n.ModTime)
	b = intField(b, 10, n.ChangeTime)
	b = uintField(b, 11, n.Inode)
	b = uintField(b, 12, n.Dev)
	b = uintField(b, 13, n.Rdev)
	b = bytesField(b, 14, n.LinkTarget)
	if len(n.Content) > 0 {
		b = appendHead(append(b, 15), majorArray, uint64(len(n.Content)))
		for i := range n.Content {
			b = appendRef(b, &n.Content[i])
		}
	}
	if n.Subtree != nil {
		b = appendID(append(b, 16), n.Subtree)
	}
	if len(n.Xattrs) > 0 {
		b = appendHead(append(b, 17), majorArray, uint64(len(n.Xattrs)))
		for i := range n.Xattrs {
			x := &n.Xattrs[i]
			b = appendHead(b, majorMap, 2)
			b = appendText(append(b, 1), x.Name)
			b = appendBytes(append(b, 2), x.Value)
		}
	}
	b = uintField(b, 18, uint64(n.WinAttrs))
	b = bytesField(b, 19, n.WinSD)
	return uintField(b, 20, n.Links)
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
