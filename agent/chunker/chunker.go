// Package chunker splits a byte stream into content-defined chunks with
// FastCDC (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
// Chunking Approach for Data Deduplication", USENIX ATC'16): a gear rolling
// hash, cut-point skipping below Min, and normalized chunking with a harder
// mask before the normal size and an easier one after it.
//
// The 256-entry gear table is derived from a per-repository 32-byte seed, so
// chunk boundaries (and so chunk sizes, visible to the storage provider) do
// not fingerprint known content across repositories, like restic's
// per-repository polynomial.
//
// The implementation streams: the hash state survives read-buffer refills,
// so the whole chunk never has to sit in the read buffer, and each byte is
// copied once, into the caller's chunk. BenchmarkChunker measures ~1.7 GB/s
// on 64 MiB of random data (one core, quiet machine) against ~3.5-6 GB/s
// for fixed-size chunking with the same reads and copies
// (BenchmarkBaselineFixed): the gear loop costs under 2 cycles per byte,
// well below what zstd and the AEAD need per byte.
package chunker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Params bound chunk sizes in bytes. Avg is the target mean size.
type Params struct{ Min, Avg, Max int }

// DefaultParams gives ~1 MiB chunks: big enough to keep the object count and
// per-object overhead low on blob storage, small enough to deduplicate well.
var DefaultParams = Params{Min: 512 << 10, Avg: 1 << 20, Max: 8 << 20}

// Limits of Validate. MaxLimit caps the memory a single chunk may take.
const (
	MinLimit = 64
	MaxLimit = 1 << 30
)

// normalization is the FastCDC normalization level: the mask before the
// normal point has 2 more bits than log2(Avg), the one after it 2 fewer. The
// paper finds level 2 the best trade-off of deduplication ratio and size
// spread.
const normalization = 2

// gearContext domain-separates the gear table derivation from any other use
// of the seed.
const gearContext = "coffer 2025-01-01 chunker gear table v1"

// readSize is the size of the read buffer: large reads amortize system
// calls, and the buffer is reused for every file.
const readSize = 1 << 20

// Validate reports whether p can be used by New.
func (p Params) Validate() error {
	switch {
	case p.Min < MinLimit:
		return fmt.Errorf("chunker: Min %d is below %d", p.Min, MinLimit)
	case p.Max > MaxLimit:
		return fmt.Errorf("chunker: Max %d is above %d", p.Max, MaxLimit)
	case !(p.Min < p.Avg && p.Avg < p.Max):
		return fmt.Errorf("chunker: want Min < Avg < Max, got %d, %d, %d", p.Min, p.Avg, p.Max)
	}
	return nil
}

// Chunker splits a stream into chunks. It is not safe for concurrent use;
// use one per goroutine and Reset it between files.
type Chunker struct {
	gear   [256]uint64
	min    int
	normal int
	max    int
	maskS  uint64 // harder mask, used from Min to the normal point
	maskL  uint64 // easier mask, used from the normal point to Max

	r   io.Reader
	buf []byte // read buffer, allocated once
	pos int    // next unconsumed byte in buf
	end int    // end of valid data in buf
	eof bool   // r is exhausted; buf[pos:end] is all that is left
	err error  // sticky read error
}

// New returns a chunker whose gear table is derived from seed. Invalid
// params (see Params.Validate) are replaced by DefaultParams, so New never
// fails; callers taking params from configuration should Validate first.
func New(seed [32]byte, p Params) *Chunker {
	if p.Validate() != nil {
		p = DefaultParams
	}
	c := &Chunker{min: p.Min, max: p.Max, buf: make([]byte, readSize)}

	var table [256 * 8]byte
	blake3.DeriveKey(gearContext, seed[:], table[:])
	for i := range c.gear {
		c.gear[i] = binary.LittleEndian.Uint64(table[i*8:])
	}

	// The hash is shifted left once per byte, so its high bits depend on the
	// most bytes (bit 63 on the last 64): test the top bits, which is what
	// the paper's zero-padded masks achieve.
	b := bits.Len(uint(p.Avg)) - 1 // floor(log2(Avg))
	c.maskS = ^uint64(0) << (64 - (b + normalization))
	c.maskL = ^uint64(0) << (64 - (b - normalization))
	// Past the normal point a cut comes after 2^(b-normalization) bytes on
	// average; start there that much before Avg so the mean chunk size
	// lands near Avg rather than ~25% above it.
	c.normal = max(p.Avg-1<<(b-normalization), p.Min)
	return c
}

// Reset makes c read the next chunks from r, discarding any buffered data
// and error of the previous stream.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.pos, c.end, c.eof, c.err = r, 0, 0, false, nil
}

// Next returns the next chunk appended to buf[:0], growing it if needed. The
// caller owns the result and may hand it to another goroutine (pass a fresh
// or nil buf next time in that case). Next returns io.EOF after the last
// chunk; a stream shorter than Min is one chunk, an empty one is io.EOF at
// once. Read errors are returned wrapped, and repeated by later calls.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	out := buf[:0]
	var fp uint64
	for {
		if c.pos == c.end {
			if err := c.fill(); err != nil {
				if err == io.EOF && len(out) > 0 {
					return out, nil
				}
				return out, err
			}
		}
		n, cut := c.scan(c.buf[c.pos:c.end], len(out), &fp)
		out = append(out, c.buf[c.pos:c.pos+n]...)
		c.pos += n
		if cut {
			return out, nil
		}
	}
}

// fill refills the empty buffer. It returns io.EOF once r is exhausted and
// nothing is buffered, or the (sticky) wrapped read error.
func (c *Chunker) fill() error {
	if c.err != nil {
		return c.err
	}
	if c.eof || c.r == nil {
		return io.EOF
	}
	n, err := io.ReadFull(c.r, c.buf)
	c.pos, c.end = 0, n
	switch {
	case err == nil:
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		c.eof = true
		if n == 0 {
			return io.EOF
		}
	default:
		c.err = fmt.Errorf("chunker: read: %w", err)
		return c.err
	}
	return nil
}

// scan looks for a cut point in data, which continues a chunk of which have
// bytes were already seen, with gear hash state *fp. It returns how many
// bytes of data belong to the chunk and whether the chunk ends there. The
// result is identical however the stream is split into data slices.
func (c *Chunker) scan(data []byte, have int, fp *uint64) (int, bool) {
	i := 0
	// Cut-point skipping: no boundary can fall below Min, so those bytes are
	// not hashed at all (the gear hash only remembers the last 64 bytes).
	if have < c.min {
		skip := c.min - have
		if skip >= len(data) {
			return len(data), false
		}
		i = skip
		have = c.min
	}
	h := *fp
	gear := &c.gear

	// Harder mask up to the normal point.
	if have < c.normal {
		end := min(len(data), i+c.normal-have)
		mask := c.maskS
		for j, b := range data[i:end] {
			h = h<<1 + gear[b]
			if h&mask == 0 {
				return i + j + 1, true
			}
		}
		have += end - i
		i = end
		if i == len(data) {
			*fp = h
			return i, have == c.max
		}
	}

	// Easier mask up to Max, where the chunk is cut regardless.
	end := min(len(data), i+c.max-have)
	mask := c.maskL
	for j, b := range data[i:end] {
		h = h<<1 + gear[b]
		if h&mask == 0 {
			return i + j + 1, true
		}
	}
	*fp = h
	return end, have+end-i == c.max
}
