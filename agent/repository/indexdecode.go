package repository

import (
	"math"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
)

// decodeIndex reads an index file. Index files as this package writes them
// take a hand-written path: every command loads the whole index first,
// and the CBOR library's reflection took 60 ms of CPU for the 130,000
// blobs of `office`. Anything else goes to the CBOR library, which keeps
// the final say on what an index file may hold.
func decodeIndex(b []byte) (indexFile, error) {
	if f, ok := decodeIndexFast(b); ok {
		return f, nil
	}
	var f indexFile
	err := decMode.Unmarshal(b, &f)
	return f, err
}

// cborReader reads the canonical CBOR that encMode writes.
type cborReader struct {
	b   []byte
	off int
}

func (d *cborReader) left() int { return len(d.b) - d.off }

// head reads an item's major type and argument; definite lengths only.
func (d *cborReader) head(major byte) (uint64, bool) {
	if d.off >= len(d.b) || d.b[d.off]>>5 != major {
		return 0, false
	}
	info := d.b[d.off] & 0x1f
	d.off++
	n := 0
	switch {
	case info < 24:
		return uint64(info), true
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default:
		return 0, false
	}
	if d.left() < n {
		return 0, false
	}
	var v uint64
	for _, c := range d.b[d.off : d.off+n] {
		v = v<<8 | uint64(c)
	}
	d.off += n
	return v, true
}

func (d *cborReader) null() bool {
	if d.off < len(d.b) && d.b[d.off] == 0xf6 {
		d.off++
		return true
	}
	return false
}

func (d *cborReader) key(want uint64) bool {
	k, ok := d.head(0)
	return ok && k == want
}

func (d *cborReader) uint(max uint64) (uint64, bool) {
	v, ok := d.head(0)
	return v, ok && v <= max
}

func (d *cborReader) int64() (int64, bool) {
	if d.off >= len(d.b) {
		return 0, false
	}
	if d.b[d.off]>>5 == 1 {
		v, ok := d.head(1)
		if !ok || v > math.MaxInt64 {
			return 0, false
		}
		return -1 - int64(v), true
	}
	v, ok := d.head(0)
	if !ok || v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

func (d *cborReader) id() (crypto.ID, bool) {
	var id crypto.ID
	n, ok := d.head(2)
	if !ok || n != uint64(len(id)) || d.left() < len(id) {
		return id, false
	}
	copy(id[:], d.b[d.off:])
	d.off += len(id)
	return id, true
}

// array reads an array's length, or null as an empty one; n bounds it by
// what is left, at least min bytes an element.
func (d *cborReader) array(min int) (int, bool, bool) {
	if d.null() {
		return 0, true, true
	}
	n, ok := d.head(4)
	if !ok || n > uint64(d.left()/min) {
		return 0, false, false
	}
	return int(n), false, true
}

func decodeIndexFast(b []byte) (indexFile, bool) {
	var f indexFile
	d := cborReader{b: b}
	if n, ok := d.head(5); !ok || n != 1 || !d.key(1) {
		return f, false
	}
	// A map head, the three keys, an ID and a size: 38 bytes at least.
	packs, isNull, ok := d.array(38)
	if !ok {
		return f, false
	}
	if !isNull {
		f.Packs = make([]indexPack, packs)
	}
	for i := range f.Packs {
		if !d.pack(&f.Packs[i]) {
			return f, false
		}
	}
	return f, d.off == len(d.b)
}

func (d *cborReader) pack(p *indexPack) bool {
	var ok bool
	if n, ok := d.head(5); !ok || n != 3 {
		return false
	}
	if !d.key(1) {
		return false
	}
	if p.ID, ok = d.id(); !ok || !d.key(2) {
		return false
	}
	if p.Size, ok = d.int64(); !ok || !d.key(3) {
		return false
	}
	// A map head, six keys, an ID and four small numbers: 45 bytes at least.
	n, isNull, ok := d.array(45)
	if !ok {
		return false
	}
	if !isNull {
		p.Blobs = make([]BlobEntry, n)
	}
	for i := range p.Blobs {
		if !d.entry(&p.Blobs[i]) {
			return false
		}
	}
	return true
}

func (d *cborReader) entry(e *BlobEntry) bool {
	if n, ok := d.head(5); !ok || n != 6 {
		return false
	}
	var v uint64
	var ok bool
	if !d.key(1) {
		return false
	}
	if v, ok = d.uint(math.MaxUint8); !ok || !d.key(2) {
		return false
	}
	e.Type = BlobType(v)
	if e.ID, ok = d.id(); !ok {
		return false
	}
	for k, dst := range []*uint32{&e.Offset, &e.Length, &e.RawLength} {
		if !d.key(uint64(3 + k)) {
			return false
		}
		if v, ok = d.uint(math.MaxUint32); !ok {
			return false
		}
		*dst = uint32(v)
	}
	if !d.key(6) {
		return false
	}
	if v, ok = d.uint(math.MaxUint8); !ok {
		return false
	}
	e.Method = compress.Method(v)
	return true
}
