// Package cborread reads CBOR as Coffer's own encoders write it (definite
// lengths, shortest heads), in place and without reflection. The formats'
// hand-written decoders (folder listings in agent/tree, index files in
// agent/repository) build on it and hand anything else to the CBOR
// library, which keeps the final say on what a format may hold.
package cborread

import "math"

// Major types.
const (
	Uint  = 0
	Neg   = 1
	Bytes = 2
	Text  = 3
	Array = 4
	Map   = 5
)

// Reader reads items from B, starting at Off.
type Reader struct {
	B   []byte
	Off int
}

// Left is how many bytes are still to read.
func (d *Reader) Left() int { return len(d.B) - d.Off }

// Head reads an item's initial byte and argument, if the item is of the
// wanted major type with a definite length.
func (d *Reader) Head(major byte) (uint64, bool) {
	if d.Off >= len(d.B) || d.B[d.Off]>>5 != major {
		return 0, false
	}
	info := d.B[d.Off] & 0x1f
	d.Off++
	var n int
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
	default: // indefinite lengths and reserved values
		return 0, false
	}
	if d.Left() < n {
		return 0, false
	}
	var v uint64
	for _, c := range d.B[d.Off : d.Off+n] {
		v = v<<8 | uint64(c)
	}
	d.Off += n
	return v, true
}

// Null reads a null, if that is what comes next.
func (d *Reader) Null() bool {
	if d.Off < len(d.B) && d.B[d.Off] == 0xf6 {
		d.Off++
		return true
	}
	return false
}

// Uint reads an unsigned integer of at most max.
func (d *Reader) Uint(max uint64) (uint64, bool) {
	v, ok := d.Head(Uint)
	return v, ok && v <= max
}

// Key reads a map key that must be want.
func (d *Reader) Key(want uint64) bool {
	k, ok := d.Head(Uint)
	return ok && k == want
}

// Int64 reads a signed integer that fits an int64.
func (d *Reader) Int64() (int64, bool) {
	if d.Off >= len(d.B) {
		return 0, false
	}
	neg := d.B[d.Off]>>5 == Neg
	major := byte(Uint)
	if neg {
		major = Neg
	}
	v, ok := d.Head(major)
	if !ok || v > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -1 - int64(v), true
	}
	return int64(v), true
}

// Raw reads a byte or text string's bytes, in place.
func (d *Reader) Raw(major byte) ([]byte, bool) {
	n, ok := d.Head(major)
	if !ok || n > uint64(d.Left()) {
		return nil, false
	}
	b := d.B[d.Off : d.Off+int(n)]
	d.Off += int(n)
	return b, true
}

// Fixed reads a byte string of exactly len(dst) bytes into dst.
func (d *Reader) Fixed(dst []byte) bool {
	b, ok := d.Raw(Bytes)
	if !ok || len(b) != len(dst) {
		return false
	}
	copy(dst, b)
	return true
}
