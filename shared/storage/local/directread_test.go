package local

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Long reads go around the page cache in aligned chunks, from any offset
// to any end, the object's last, partial block included; short ones
// through the cache. Both give exactly the bytes asked for.
func TestLongReadsGoAroundTheCache(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 9*directReadChunk+12345) // not a whole number of blocks
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	ctx := context.Background()
	if err := b.Create(ctx, "data/ab/pack", data); err != nil {
		t.Fatal(err)
	}
	direct := true
	if f := openDirect(filepath.Join(dir, "data/ab/pack")); f == nil {
		direct = false
		t.Logf("%s refuses direct reads: every read goes through the cache", dir)
	} else {
		f.Close()
	}
	size := int64(len(data))
	cases := []struct {
		name        string
		off, length int64
	}{
		{"whole object", 0, -1},
		{"aligned start, to the end", directAlign, -1},
		{"unaligned start and end", 1000, directReadMin + 777},
		{"across a chunk boundary", directReadChunk - 5000, directReadMin},
		{"many chunks", 3, size - 3},
		{"the last partial block", size - directReadMin - 1, directReadMin + 1},
		{"just under the threshold", 17, directReadMin - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc, err := b.Read(ctx, "data/ab/pack", c.off, c.length)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			end := size
			if c.length >= 0 {
				end = c.off + c.length
			}
			_, isDirect := rc.(*directSection)
			if want := direct && end-c.off >= directReadMin; isDirect != want {
				t.Errorf("read of %d bytes: around the cache %v, want %v", end-c.off, isDirect, want)
			}
			if s, ok := rc.(storage.Sized); !ok || s.Size() != end-c.off {
				t.Errorf("the reader does not say it gives %d bytes", end-c.off)
			}
			// Small reads, as io.ReadFull's callers make, and the rest at once.
			head := make([]byte, 100)
			if _, err := io.ReadFull(rc, head); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if got := append(head, rest...); !bytes.Equal(got, data[c.off:end]) {
				t.Fatalf("read %d bytes from %d, want the object's %d bytes there", len(got), c.off, end-c.off)
			}
		})
		// Read whole into the caller's buffer, as the repository reads
		// spans: none, an aligned one with room (kept), one too small, and
		// one off the block boundary.
		roomy := *alignedBuf(int(size) + storage.FullReadSlack)
		for name, buf := range map[string][]byte{"no buffer": nil, "an aligned buffer": roomy[:0],
			"a short buffer": make([]byte, 10), "an unaligned buffer": roomy[1:1]} {
			rc, err := b.Read(ctx, "data/ab/pack", c.off, c.length)
			if err != nil {
				t.Fatal(err)
			}
			f, ok := rc.(storage.FullReader)
			if !ok {
				rc.Close()
				continue
			}
			end := size
			if c.length >= 0 {
				end = c.off + c.length
			}
			got, err := f.ReadFullInto(buf)
			rc.Close()
			if err != nil {
				t.Fatalf("%s, into %s: %v", c.name, name, err)
			}
			if !bytes.Equal(got, data[c.off:end]) {
				t.Fatalf("%s, into %s: wrong bytes", c.name, name)
			}
			if name == "an aligned buffer" && &got[0] != &roomy[0] {
				t.Errorf("%s: an aligned buffer with room was not used", c.name)
			}
		}
	}
}

// A file that was cut short after the size was taken gives an error, not
// short data.
func TestDirectSectionShortFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(context.Background(), "data/cd/pack", make([]byte, directReadChunk)); err != nil {
		t.Fatal(err)
	}
	f := openDirect(filepath.Join(dir, "data/cd/pack"))
	if f == nil {
		t.Skipf("%s refuses direct reads", dir)
	}
	s := newDirectSection(f, 0, directReadChunk+directAlign)
	defer s.Close()
	if _, err := io.ReadAll(s); err == nil {
		t.Fatal("a range past the file's end read without an error")
	}
}
