package restorer

import (
	"testing"

	"github.com/coffer-backup/coffer/agent/repository"
)

func TestSpansCoverEveryBlobWithinTheReadBound(t *testing.T) {
	var entries []repository.BlobEntry
	off := uint32(0)
	for i := range 40 {
		n := uint32(1<<20 + i*1000)
		entries = append(entries, repository.BlobEntry{Offset: off, Length: n})
		off += n + 4096 // gaps: blobs this restore does not need
	}
	got := spans(entries)
	var count int
	for _, sp := range got {
		first, last := sp[0], sp[len(sp)-1]
		if int64(last.Offset)+int64(last.Length)-int64(first.Offset) > maxSpan && len(sp) > 1 {
			t.Fatalf("a span of %d blobs exceeds %d bytes", len(sp), maxSpan)
		}
		count += len(sp)
	}
	if count != len(entries) || len(got) < 5 {
		t.Fatalf("%d spans hold %d of %d blobs", len(got), count, len(entries))
	}
	// A single blob larger than the bound still gets its own span.
	big := []repository.BlobEntry{{Offset: 0, Length: maxSpan + 1}}
	if s := spans(big); len(s) != 1 || len(s[0]) != 1 {
		t.Fatalf("oversized blob: %v", s)
	}
}

func TestSpanBufferIsMadeOnceForEverySpan(t *testing.T) {
	var buf []byte
	made := 0
	for _, n := range []int64{1000, 300_000, 1 << 20, maxSpan - 1, maxSpan, 5} {
		b := spanBuf(buf, n)
		if int64(cap(b)) < n {
			t.Fatalf("a buffer of %d bytes for a span of %d", cap(b), n)
		}
		if cap(buf) == 0 || &b[:1][0] != &buf[:1][0] {
			made++
		}
		buf = b
	}
	if made != 1 {
		t.Fatalf("spans growing to the bound made %d buffers, want 1", made)
	}
	// One blob larger than the bound is read alone, into what the reader makes.
	if b := spanBuf(buf, maxSpan+1); &b[:1][0] != &buf[:1][0] {
		t.Fatal("a span over the bound replaced the buffer")
	}
}
