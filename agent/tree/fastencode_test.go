package tree

import (
	"bytes"
	"math"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// encMode is what trees were encoded with before appendTree, and the
// reference it is held to: core deterministic CBOR, so the same tree
// always gives the same bytes and an unchanged folder deduplicates.
var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// encodingsAgree fails t unless appendTree writes what the CBOR library
// writes for tr.
func encodingsAgree(t *testing.T, tr *Tree) {
	t.Helper()
	want, err := encMode.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendTree(nil, tr); !bytes.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("encodings differ from byte %d of %d: got %x…, the library %x…", i, len(want),
					got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
			}
		}
		t.Fatalf("encodings differ in length: got %d bytes, the library %d", len(got), len(want))
	}
}

// A tree's ID is the hash of its encoding, so the hand-written encoder must
// write exactly what the CBOR library writes, or every folder of every
// repository would be stored again by the next backup.
func TestFastEncodeAgreesWithCBOR(t *testing.T) {
	// Each integer's head changes width at these values.
	var edges []uint64
	for _, v := range []uint64{23, math.MaxUint8, math.MaxUint16, math.MaxUint32} {
		edges = append(edges, v, v+1)
	}
	edges = append(edges, 0, 1, math.MaxUint64)
	var wide Tree
	for i, v := range edges {
		s := int64(v)
		wide.Nodes = append(wide.Nodes, Node{Name: []byte{byte('a' + i)}, Type: Type(v), Mode: uint32(v), UID: uint32(v), GID: uint32(v),
			Size: s, ModTime: -s, ChangeTime: s - 1, Inode: v, Dev: v, Rdev: v, WinAttrs: uint32(v), Links: v,
			Content: []Ref{{Size: -s}, {Size: s, Hole: true}}})
	}
	id := crypto.ID{9}
	cases := map[string]*Tree{
		"no nodes (nil)":   {},
		"no nodes (empty)": {Nodes: []Node{}},
		"nil and empty byte strings": {Nodes: []Node{
			{Type: File},
			{Name: []byte{}, LinkTarget: []byte{}, WinSD: []byte{}, Content: []Ref{}, Xattrs: []Xattr{}},
			{Name: []byte("x"), Xattrs: []Xattr{{Name: "", Value: nil}, {Name: "user.a", Value: []byte{}}}},
		}},
		"zero IDs and holes":       {Nodes: []Node{{Name: []byte("h"), Content: []Ref{{}, {Hole: true}, {ID: id}}, Subtree: &crypto.ID{}}}},
		"integers at every width":  &wide,
		"long names and strings":   {Nodes: []Node{{Name: bytes.Repeat([]byte("n"), 70000), User: string(bytes.Repeat([]byte("ü"), 200)), LinkTarget: bytes.Repeat([]byte{0}, 300)}}},
		"text that is not UTF-8":   {Nodes: []Node{{Name: []byte("t"), User: "\xc3\x28", Xattrs: []Xattr{{Name: "\xff"}}}}},
		"every field, at random":   randomTree(1, 200),
		"every field, at random 2": randomTree(2, 1),
	}
	for name, tr := range cases {
		t.Run(name, func(t *testing.T) { encodingsAgree(t, tr) })
	}
	for seed := range uint64(50) {
		encodingsAgree(t, randomTree(seed+100, int(seed%9)*7))
	}
}

// Whatever tree the CBOR library can decode from any bytes, the two
// encoders write alike.
func FuzzFastEncodeAgreesWithCBOR(f *testing.F) {
	for _, tr := range []*Tree{sample(), randomTree(1, 3), {}} {
		b, err := encMode.Marshal(tr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var tr Tree
		if decMode.Unmarshal(in, &tr) != nil {
			return
		}
		encodingsAgree(t, &tr)
	})
}

func BenchmarkEncode(b *testing.B) {
	tr := randomTree(5, 10_000)
	b.Run("fast", func(b *testing.B) {
		buf := make([]byte, 0, encodedSizeHint(tr))
		for b.Loop() {
			buf = appendTree(buf[:0], tr)
		}
	})
	b.Run("cbor", func(b *testing.B) {
		for b.Loop() {
			if _, err := encMode.Marshal(tr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
