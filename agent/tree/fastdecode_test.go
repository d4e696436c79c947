package tree

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// randomTree has nodes with every field set, or left empty, at random,
// including the extremes of each integer.
func randomTree(seed uint64, n int) *Tree {
	rng := rand.New(rand.NewPCG(seed, 1))
	u64 := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	i64 := func() int64 {
		switch rng.IntN(5) {
		case 0:
			return math.MinInt64
		case 1:
			return math.MaxInt64
		case 2:
			return -rng.Int64N(1 << 40)
		}
		return rng.Int64() >> rng.IntN(63)
	}
	bs := func(max int) []byte {
		if rng.IntN(3) == 0 {
			return nil
		}
		b := make([]byte, rng.IntN(max))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	users := []string{"", "root", "ann", "björn", "a much longer user name than most"}
	t := &Tree{}
	for i := range n {
		node := Node{Name: fmt.Appendf(nil, "entry-%d-%x", i, bs(8)), Type: Type(1 + rng.IntN(7)),
			Mode: uint32(u64()), UID: uint32(u64()), GID: uint32(u64()),
			User: users[rng.IntN(len(users))], Group: users[rng.IntN(len(users))],
			Size: i64(), ModTime: i64(), ChangeTime: i64(), Inode: u64(), Dev: u64(), Rdev: u64(),
			LinkTarget: bs(300), WinAttrs: uint32(u64()), WinSD: bs(100), Links: u64()}
		for range rng.IntN(4) {
			node.Content = append(node.Content, Ref{ID: crypto.ID{byte(rng.IntN(256)), 7}, Size: i64(), Hole: rng.IntN(2) == 0})
		}
		for range rng.IntN(3) {
			node.Xattrs = append(node.Xattrs, Xattr{Name: users[rng.IntN(len(users))], Value: bs(50)})
		}
		if rng.IntN(2) == 0 {
			id := crypto.ID{byte(i), 3}
			node.Subtree = &id
		}
		t.Nodes = append(t.Nodes, node)
	}
	return t
}

// The fast decoder reads everything Encode writes (the CBOR library's
// decoder is never needed for a repository's own trees) and gets the
// same nodes back. The trees need not be valid: Encode's validation is
// skipped, so every field takes every kind of value.
func TestFastDecodeReadsEverythingEncodeWrites(t *testing.T) {
	for seed := range uint64(50) {
		want := randomTree(seed, int(seed%7)*20)
		b, err := encMode.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeFast(b)
		if err != nil {
			t.Fatalf("seed %d: the fast decoder refused Encode's own output: %v", seed, err)
		}
		if !NodesEqual(got.Nodes, want.Nodes) {
			t.Fatalf("seed %d: nodes differ after the round trip", seed)
		}
		agree(t, b)
		eachAgrees(t, b)
	}
	// Valid trees, which Decode accepts.
	for seed := range uint64(10) {
		tr := randomTree(seed, 30)
		for i := range tr.Nodes {
			n := &tr.Nodes[i]
			n.Type, n.Size, n.Content = File, 0, nil
		}
		b, err := Encode(tr)
		if err != nil {
			t.Fatal(err)
		}
		eachAgrees(t, b)
	}
	empty, _ := Encode(&Tree{})
	if got, err := decodeFast(empty); err != nil || len(got.Nodes) != 0 {
		t.Fatalf("empty tree: %v, %v", got, err)
	}
}

// agree checks that when the fast decoder accepts in, the CBOR library's
// decoder accepts it too and reads the same nodes.
func agree(t *testing.T, in []byte) {
	t.Helper()
	fast, err := decodeFast(in)
	if err != nil {
		if !errors.Is(err, errNotFast) {
			t.Fatalf("the fast decoder failed with %v, not errNotFast", err)
		}
		return
	}
	var slow Tree
	if err := decMode.Unmarshal(in, &slow); err != nil {
		t.Fatalf("the fast decoder accepted %x, which the CBOR decoder refuses: %v", in, err)
	}
	if !NodesEqual(fast.Nodes, slow.Nodes) {
		t.Fatalf("the decoders read %x differently", in)
	}
}

// eachAgrees checks that Each hands over exactly the nodes Decode returns,
// and fails exactly when Decode does, with the same error.
func eachAgrees(t *testing.T, in []byte) {
	t.Helper()
	var got []Node
	eachErr := Each(in, func(n *Node) error {
		c := *n
		c.Content = slices.Clone(n.Content)
		c.Xattrs = slices.Clone(n.Xattrs)
		if n.Subtree != nil {
			id := *n.Subtree
			c.Subtree = &id
		}
		got = append(got, c)
		return nil
	})
	want, decErr := Decode(in)
	switch {
	case (eachErr == nil) != (decErr == nil) || (eachErr != nil && eachErr.Error() != decErr.Error()):
		t.Fatalf("Each: %v; Decode: %v", eachErr, decErr)
	case decErr == nil && !NodesEqual(got, want.Nodes):
		t.Fatalf("Each handed over other nodes than Decode returns for %x", in)
	case decErr != nil && len(got) > 0:
		t.Fatalf("Each handed over %d nodes of a tree Decode refuses (%v)", len(got), decErr)
	}
}

// Trees come from a repository that may be hostile. Whatever the fast
// decoder accepts, the CBOR library's decoder accepts and reads alike; so
// its limits, its checks and its error messages decide everything else.
func FuzzFastDecodeAgreesWithCBOR(f *testing.F) {
	for _, tr := range []*Tree{sample(), randomTree(1, 3), {}} {
		b, err := encMode.Marshal(tr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"a10180",                       // no nodes
		"a0",                           // no key at all
		"a101f6",                       // nodes null
		"a1018000",                     // trailing byte
		"a1019f ff",                    // indefinite array
		"a10181a20141610102",           // a node
		"a10181a2014161014102",         // a node with a byte string where an integer goes
		"a10181a202010141 61",          // keys out of order
		"a10181a201416101416162",       // a duplicate key
		"a10181a1154161",               // an unknown key
		"a10181a1021901ff",             // a type that does not fit a byte
		"a10181a1031b0000000100000000", // a mode that does not fit 32 bits
		"a10181a1083b8000000000000000", // a size below the int64 range
		"a10181a10918ff",               // a non-minimal integer
		"a10181a10662c328",             // a user name that is not UTF-8
		"a10181a1105f4101ff",           // an indefinite subtree ID
		"a10181a1104101",               // a subtree ID too short
		"a10181a10f81a103f6",           // a hole flag that is null
	} {
		b, _ := hexDecode(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		agree(t, in)
		eachAgrees(t, in)
	})
}

func hexDecode(s string) ([]byte, error) {
	s = string(bytes.ReplaceAll([]byte(s), []byte(" "), nil))
	out := make([]byte, len(s)/2)
	_, err := fmt.Sscanf(s, "%x", &out)
	return out, err
}

// BenchmarkDecode decodes a folder of 10,000 typical files with the fast
// decoder and with the CBOR library's.
func BenchmarkDecode(b *testing.B) {
	id := crypto.ID{7}
	var tr Tree
	for i := range 10_000 {
		tr.Nodes = append(tr.Nodes, Node{Name: fmt.Appendf(nil, "message-%05d.eml", i), Type: File, Mode: 0o644,
			UID: 1000, GID: 1000, User: "someone", Group: "staff", Size: 3000, ModTime: 1764900000123456789,
			ChangeTime: 1764900000123456789, Inode: uint64(1e9 + i), Dev: 2049, Content: []Ref{{ID: id, Size: 3000}}})
	}
	enc, err := Encode(&tr)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := decodeFast(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cbor", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			var t Tree
			if err := decMode.Unmarshal(enc, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A small folder's decoding allocates about its own size: the arena and
// the content array are bounded by what is left of the encoding. With a
// fixed 64 KiB arena and 1,024 pieces a folder, decoding a re-backup's
// 2,000 small folders allocated 17 times their encoded size.
func TestDecodeOfSmallFolderAllocatesItsSize(t *testing.T) {
	var tr Tree
	for i := range 20 {
		tr.Nodes = append(tr.Nodes, Node{Name: fmt.Appendf(nil, "file-%02d.go", i), Type: File, Mode: 0o644,
			Size: 4000, ModTime: 1764900000123456789, Content: []Ref{{ID: crypto.ID{byte(i)}, Size: 4000}}})
	}
	enc, err := Encode(&tr)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const rounds = 100
	for range rounds {
		if _, err := Decode(enc); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perDecode := (after.TotalAlloc - before.TotalAlloc) / rounds
	// The nodes themselves (a few hundred bytes each) come on top of
	// the encoding's copy; eight times the encoding leaves room for both,
	// and is a tenth of what a 64 KiB arena alone took.
	if limit := uint64(8 * len(enc)); perDecode > limit {
		t.Fatalf("decoding a %d-byte folder of 20 files allocated %d bytes, want at most %d", len(enc), perDecode, limit)
	}
}
