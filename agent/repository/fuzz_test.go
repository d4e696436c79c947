package repository

import (
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
)

func testKey(t testing.TB) *crypto.Key {
	k, err := crypto.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A pack's header is read from storage that may be hostile or damaged.
func FuzzPackHeader(f *testing.F) {
	key := testKey(f)
	p := NewPacker(1 << 10)
	id := key.ChunkID([]byte("x"))
	p.Add(DataBlob, id, key.Seal(nil, []byte("x"), blobAD(DataBlob, id)), 1, compress.None)
	data, _, _, _ := p.Finish(key)
	f.Add(data)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		entries, err := parsePackHeader(key, in, int64(len(in)))
		if err != nil {
			return
		}
		for _, e := range entries {
			if int64(e.Offset)+int64(e.Length) > int64(len(in)) {
				t.Fatalf("accepted an entry beyond the pack: %+v", e)
			}
		}
	})
}

// Index files, points and pack headers decode with the same limits.
func FuzzDecodeMetadata(f *testing.F) {
	b, _ := encMode.Marshal(&indexFile{Packs: []indexPack{{Size: 10, Blobs: []BlobEntry{{Length: 40}}}}})
	f.Add(b)
	pb, _ := encMode.Marshal(&Point{Paths: []string{"/a"}})
	f.Add(pb)
	f.Fuzz(func(t *testing.T, in []byte) {
		var x indexFile
		_ = decMode.Unmarshal(in, &x)
		var p Point
		_ = decMode.Unmarshal(in, &p)
		var e []BlobEntry
		_ = decMode.Unmarshal(in, &e)
	})
}

func TestPackRoundTripAndTamperedBlobs(t *testing.T) {
	key := testKey(t)
	r := &Repository{key: key}
	plain := []byte("some chunk content, some chunk content, some chunk content")
	id := key.ChunkID(plain)
	sealed, m, _ := r.SealBlob(nil, DataBlob, id, plain, nil)
	p := NewPacker(1 << 10)
	p.Add(DataBlob, id, sealed, len(plain), m)
	data, _, entries, err := p.Finish(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parsePackHeader(key, data, int64(len(data)))
	if err != nil || len(got) != 1 || got[0] != entries[0] {
		t.Fatalf("header: %+v, %v", got, err)
	}
	e := got[0]
	out, err := r.OpenBlob(e, data[e.Offset:e.Offset+e.Length])
	if err != nil || string(out) != string(plain) {
		t.Fatalf("open: %q, %v", out, err)
	}
	// Every flipped bit and every truncation is caught.
	for i := range int(e.Length) * 8 {
		b := append([]byte(nil), data[e.Offset:e.Offset+e.Length]...)
		b[i/8] ^= 1 << (i % 8)
		if _, err := r.OpenBlob(e, b); err == nil {
			t.Fatalf("bit %d flipped went unnoticed", i)
		}
	}
	for n := range int(e.Length) {
		if _, err := r.OpenBlob(e, data[e.Offset:e.Offset+uint32(n)]); err == nil {
			t.Fatalf("truncation to %d bytes went unnoticed", n)
		}
	}
	// A blob presented under another ID or type is refused.
	other := e
	other.ID = key.ChunkID([]byte("other"))
	if _, err := r.OpenBlob(other, data[e.Offset:e.Offset+e.Length]); err == nil {
		t.Fatal("a blob was accepted under another ID")
	}
	other = e
	other.Type = TreeBlob
	if _, err := r.OpenBlob(other, data[e.Offset:e.Offset+e.Length]); err == nil {
		t.Fatal("a data blob was accepted as a tree")
	}
}
