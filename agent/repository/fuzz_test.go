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
	p.AddGroup(key.Seal(nil, []byte("yz"), adGroup(DataBlob)), compress.None, []BlobEntry{
		{Type: DataBlob, ID: key.ChunkID([]byte("y")), RawLength: 1, GroupLength: 2},
		{Type: DataBlob, ID: key.ChunkID([]byte("z")), RawLength: 1, GroupOffset: 1, GroupLength: 2},
	})
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
			outside := int64(e.GroupOffset)+int64(e.RawLength) > int64(e.GroupLength) || e.GroupLength > maxGroupLength
			if e.Grouped() && outside || !e.Grouped() && e.GroupOffset != 0 {
				t.Fatalf("accepted a group entry out of range: %+v", e)
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

// A group member is opened from bytes and an entry that a damaged or
// hostile repository controls: no entry or bytes may make it panic or
// hand back bytes other than the member's.
func FuzzOpenMember(f *testing.F) {
	r := &Repository{key: testKey(f)}
	plain := []byte("member one, member two, member three, member four")
	sealed, m, _ := r.SealGroup(nil, DataBlob, plain, nil)
	f.Add(sealed, uint8(m), uint32(7), uint32(10), uint32(len(plain)))
	f.Add(sealed, uint8(m), uint32(0xffffffff), uint32(2), uint32(len(plain)))
	f.Add([]byte{}, uint8(1), uint32(0), uint32(0), uint32(1))
	f.Fuzz(func(t *testing.T, sealed []byte, method uint8, off, n, groupLen uint32) {
		e := BlobEntry{Type: DataBlob, Method: compress.Method(method), GroupOffset: off, RawLength: n, GroupLength: groupLen}
		if int64(off)+int64(n) <= int64(len(plain)) {
			e.ID = r.BlobID(plain[off : off+n])
		}
		var g GroupBuf
		out, err := r.OpenMember(&g, e, sealed)
		if err == nil && (len(out) != int(n) || r.BlobID(out) != e.ID) {
			t.Fatalf("opened %d bytes that are not the member's", len(out))
		}
	})
}
