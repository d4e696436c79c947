package local

import (
	"bytes"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
)

// TestSpoolStoresEveryLengthExactly writes objects of lengths around the
// block and chunk boundaries of direct writes, in uneven pieces: each is
// stored byte for byte at its own length (the padding of the last block
// cut off). Where the file system takes direct writes (ext4, xfs) the
// spool must use them on Linux; elsewhere it writes through the cache.
func TestSpoolStoresEveryLengthExactly(t *testing.T) {
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, n := range []int{0, 1, directAlign - 1, directAlign, directAlign + 1, directChunk - 1, directChunk, directChunk + 1, 3*directChunk + 12345} {
		want := make([]byte, n)
		for j := range want {
			want[j] = byte(rng.Uint32())
		}
		s, err := b.Spool(t.Context(), "data")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if s.(*spool).direct == nil {
				if runtime.GOOS == "linux" {
					t.Logf("direct writes are not taken under %s: spools go through the cache", os.TempDir())
				}
			} else if runtime.GOOS != "linux" {
				t.Fatal("direct writes used outside Linux")
			}
		}
		for rest := want; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(300_000))
			if m, err := s.Write(rest[:k]); err != nil || m != k {
				t.Fatalf("write %d bytes: %d, %v", k, m, err)
			}
			rest = rest[k:]
		}
		name := "data/" + string(rune('a'+i))
		if err := s.Commit(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(b.dir + "/" + name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("object of %d bytes read back as %d bytes (%v), or with other bytes", n, len(got), err)
		}
	}
}
