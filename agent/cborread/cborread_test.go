package cborread

import (
	"math"
	"testing"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(d *Reader) (any, bool)
		want any
		ok   bool
		off  int
	}{
		{"small uint", []byte{0x17}, func(d *Reader) (any, bool) { return d.Uint(100) }, uint64(23), true, 1},
		{"uint8", []byte{0x18, 0xff}, func(d *Reader) (any, bool) { return d.Uint(255) }, uint64(255), true, 2},
		{"uint over max", []byte{0x19, 0x01, 0x00}, func(d *Reader) (any, bool) { return d.Uint(255) }, uint64(256), false, 3},
		{"uint64", []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, func(d *Reader) (any, bool) { return d.Uint(math.MaxUint64) }, uint64(math.MaxUint64), true, 9},
		{"truncated head", []byte{0x1a, 0x00, 0x01}, func(d *Reader) (any, bool) { return d.Uint(math.MaxUint64) }, uint64(0), false, 1},
		{"indefinite length refused", []byte{0x9f}, func(d *Reader) (any, bool) { return d.Head(Array) }, uint64(0), false, 1},
		{"wrong major type", []byte{0x40}, func(d *Reader) (any, bool) { return d.Head(Uint) }, uint64(0), false, 0},
		{"negative", []byte{0x38, 0x63}, func(d *Reader) (any, bool) { return d.Int64() }, int64(-100), true, 2},
		{"most negative int64", []byte{0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, func(d *Reader) (any, bool) { return d.Int64() }, int64(math.MinInt64), true, 9},
		{"beyond int64", []byte{0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}, func(d *Reader) (any, bool) { return d.Int64() }, int64(0), false, 9},
		{"bytes in place", []byte{0x43, 1, 2, 3}, func(d *Reader) (any, bool) { b, ok := d.Raw(Bytes); return string(b), ok }, "\x01\x02\x03", true, 4},
		{"bytes past the end", []byte{0x45, 1, 2}, func(d *Reader) (any, bool) { b, ok := d.Raw(Bytes); return string(b), ok }, "", false, 1},
		{"fixed of the wrong length", []byte{0x42, 1, 2}, func(d *Reader) (any, bool) { var x [3]byte; return x, d.Fixed(x[:]) }, [3]byte{}, false, 3},
		{"null", []byte{0xf6}, func(d *Reader) (any, bool) { return nil, d.Null() }, nil, true, 1},
		{"key", []byte{0x03}, func(d *Reader) (any, bool) { return nil, d.Key(3) }, nil, true, 1},
		{"other key", []byte{0x04}, func(d *Reader) (any, bool) { return nil, d.Key(3) }, nil, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Reader{B: tt.in}
			got, ok := tt.read(d)
			if ok != tt.ok || (ok && got != tt.want) || d.Off != tt.off {
				t.Fatalf("got %v, %v at offset %d; want %v, %v at %d", got, ok, d.Off, tt.want, tt.ok, tt.off)
			}
		})
	}
}
