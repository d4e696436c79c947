package repository

import (
	"math"

	"github.com/coffer-backup/coffer/agent/cborread"
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

// indexReader reads index files as encMode writes them.
type indexReader struct{ cborread.Reader }

func (d *indexReader) id() (crypto.ID, bool) {
	var id crypto.ID
	return id, d.Fixed(id[:])
}

// array reads an array's length, or null as an empty one; n bounds it by
// what is left, at least min bytes an element.
func (d *indexReader) array(min int) (int, bool, bool) {
	if d.Null() {
		return 0, true, true
	}
	n, ok := d.Head(cborread.Array)
	if !ok || n > uint64(d.Left()/min) {
		return 0, false, false
	}
	return int(n), false, true
}

func decodeIndexFast(b []byte) (indexFile, bool) {
	var f indexFile
	d := indexReader{cborread.Reader{B: b}}
	if n, ok := d.Head(cborread.Map); !ok || n != 1 || !d.Key(1) {
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
	return f, d.Off == len(d.B)
}

func (d *indexReader) pack(p *indexPack) bool {
	var ok bool
	if n, ok := d.Head(cborread.Map); !ok || n != 3 {
		return false
	}
	if !d.Key(1) {
		return false
	}
	if p.ID, ok = d.id(); !ok || !d.Key(2) {
		return false
	}
	if p.Size, ok = d.Int64(); !ok || !d.Key(3) {
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

func (d *indexReader) entry(e *BlobEntry) bool {
	// Six keys; a group member has key 8, and key 7 unless it is first.
	fields, ok := d.Head(cborread.Map)
	if !ok || fields < 6 || fields > 8 {
		return false
	}
	var v uint64
	if !d.Key(1) {
		return false
	}
	if v, ok = d.Uint(math.MaxUint8); !ok || !d.Key(2) {
		return false
	}
	e.Type = BlobType(v)
	if e.ID, ok = d.id(); !ok {
		return false
	}
	for k, dst := range []*uint32{&e.Offset, &e.Length, &e.RawLength} {
		if !d.Key(uint64(3 + k)) {
			return false
		}
		if v, ok = d.Uint(math.MaxUint32); !ok {
			return false
		}
		*dst = uint32(v)
	}
	if !d.Key(6) {
		return false
	}
	if v, ok = d.Uint(math.MaxUint8); !ok {
		return false
	}
	e.Method = compress.Method(v)
	if fields == 8 {
		if !d.Key(7) {
			return false
		}
		if v, ok = d.Uint(math.MaxUint32); !ok || v == 0 {
			return false // omitted when 0
		}
		e.GroupOffset = uint32(v)
	}
	if fields >= 7 {
		if !d.Key(8) {
			return false
		}
		if v, ok = d.Uint(math.MaxUint32); !ok || v == 0 {
			return false
		}
		e.GroupLength = uint32(v)
	}
	return true
}
