package chunker

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkChunker measures chunking throughput (including the copy into
// the caller's buffer) on 64 MiB of random data.
func BenchmarkChunker(b *testing.B) {
	data := randomData(64<<20, 1)
	c := New(seedA, DefaultParams)
	r := bytes.NewReader(data)
	buf := make([]byte, 0, DefaultParams.Max)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		c.Reset(r)
		n := 0
		for {
			chunk, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
			buf = chunk
		}
		b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
	}
}

// BenchmarkChunker1MiB is the per-stage figure on 1 MiB inputs (a stream of
// that size yields one or two chunks, so this includes Reset per input).
func BenchmarkChunker1MiB(b *testing.B) {
	data := randomData(1<<20, 2)
	c := New(seedA, Params{Min: 64 << 10, Avg: 256 << 10, Max: 1 << 20})
	r := bytes.NewReader(data)
	buf := make([]byte, 0, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		c.Reset(r)
		for {
			chunk, err := c.Next(buf)
			if err != nil {
				break
			}
			buf = chunk
		}
	}
}

// BenchmarkBaselineFixed is the floor FastCDC is compared against:
// fixed-size 1 MiB chunks, reading and copying the same way but not hashing.
func BenchmarkBaselineFixed(b *testing.B) {
	data := randomData(64<<20, 1)
	r := bytes.NewReader(data)
	rbuf := make([]byte, readSize)
	out := make([]byte, 0, DefaultParams.Avg)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		for {
			n, err := io.ReadFull(r, rbuf)
			out = append(out[:0], rbuf[:n]...)
			if err != nil {
				break
			}
		}
	}
}
