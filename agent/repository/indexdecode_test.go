package repository

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
)

// randomIndexFile has packs and entries with every field at its extremes
// or random, and empty and missing blob lists.
func randomIndexFile(seed uint64, packs, maxBlobs int) indexFile {
	rng := rand.New(rand.NewPCG(seed, 9))
	u32 := func() uint32 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint32
		}
		return rng.Uint32() >> rng.IntN(32)
	}
	var f indexFile
	for p := range packs {
		ip := indexPack{ID: crypto.ID{byte(p), byte(rng.IntN(256))}, Size: []int64{0, math.MaxInt64, math.MinInt64, -5, rng.Int64()}[rng.IntN(5)]}
		switch rng.IntN(5) {
		case 0: // nil
		case 1:
			ip.Blobs = []BlobEntry{}
		default:
			for range rng.IntN(maxBlobs + 1) {
				var id crypto.ID
				for i := range id {
					id[i] = byte(rng.IntN(256))
				}
				e := BlobEntry{Type: BlobType(rng.IntN(256)), ID: id, Offset: u32(), Length: u32(), RawLength: u32(), Method: compress.Method(rng.IntN(256))}
				if rng.IntN(2) == 0 { // a group member; the first one has offset 0
					e.GroupOffset, e.GroupLength = u32(), max(u32(), 1)
				}
				ip.Blobs = append(ip.Blobs, e)
			}
		}
		f.Packs = append(f.Packs, ip)
	}
	return f
}

// Index files as this package writes them take the fast path, which reads
// them as the CBOR library does.
func TestFastIndexDecodeReadsWhatIsWritten(t *testing.T) {
	for seed := range uint64(50) {
		f := randomIndexFile(seed, int(seed%7), 50)
		if seed == 0 {
			f.Packs = nil
		}
		b, err := encMode.Marshal(&f)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := decodeIndexFast(b)
		if !ok {
			t.Fatalf("seed %d: the fast path refused an index file as written", seed)
		}
		var slow indexFile
		if err := decMode.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("seed %d: fast path read %+v, the CBOR library %+v", seed, fast, slow)
		}
	}
}

// Whatever the fast path accepts, the CBOR library accepts and reads
// alike: the fast path never lets through what the library would refuse.
func FuzzIndexFastAgreesWithCBOR(f *testing.F) {
	// Small seeds: the engine minimises every input that finds new
	// coverage, and a minute per 9 KB seed looked like a hang.
	for seed := range uint64(5) {
		idx := randomIndexFile(seed, 2, 2)
		b, _ := encMode.Marshal(&idx)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x01, 0xf6})
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeIndexFast(b)
		var slow indexFile
		err := decMode.Unmarshal(b, &slow)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("the fast path accepted what the CBOR library refuses (%v): %x", err, b)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path read %+v, the CBOR library %+v, from %x", fast, slow, b)
		}
		if got, err := decodeIndex(b); err != nil || !reflect.DeepEqual(got, slow) {
			t.Fatalf("decodeIndex: %+v, %v", got, err)
		}
	})
}

func BenchmarkIndexDecode(b *testing.B) {
	f := randomIndexFile(1, 2000, 50)
	enc, _ := encMode.Marshal(&f)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, ok := decodeIndexFast(enc); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("cbor", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			var g indexFile
			if err := decMode.Unmarshal(enc, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
}
