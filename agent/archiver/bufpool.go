package archiver

import "sync"

// bufPool recycles chunk buffers in a few size classes, so a file gets a
// buffer near its own size and no buffer is allocated per file. Allocating
// one per small file (up to twice the average chunk) cost a fifth of the
// CPU of backing up a file server of office documents: zeroing and
// collecting about a gigabyte of short-lived buffers.
type bufPool struct {
	sizes []int // ascending; the last is the largest buffer handed out
	pools []sync.Pool
}

// newBufPool makes classes of 16 KiB, then four times larger, up to max.
func newBufPool(max int) *bufPool {
	p := &bufPool{}
	for s := 16 << 10; s < max; s *= 4 {
		p.sizes = append(p.sizes, s)
	}
	p.sizes = append(p.sizes, max)
	p.pools = make([]sync.Pool, len(p.sizes))
	for i, s := range p.sizes {
		p.pools[i].New = func() any { b := make([]byte, 0, s); return &b }
	}
	return p
}

// get returns an empty buffer of at least n bytes' capacity, or of the
// largest class when n is larger (the chunker grows it if it must).
func (p *bufPool) get(n int) *[]byte {
	for i, s := range p.sizes {
		if n <= s {
			return p.pools[i].Get().(*[]byte)
		}
	}
	return p.pools[len(p.pools)-1].Get().(*[]byte)
}

// put takes a buffer back if its capacity is exactly a class's; one the
// chunker grew beyond is left to the collector.
func (p *bufPool) put(b []byte) {
	for i, s := range p.sizes {
		if cap(b) == s {
			b = b[:0]
			p.pools[i].Put(&b)
			return
		}
	}
}
