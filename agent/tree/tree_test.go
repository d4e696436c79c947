package tree

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/agent/crypto"
)

func sample() *Tree {
	sub := crypto.ID{1, 2, 3}
	return &Tree{Nodes: []Node{
		{Name: []byte("b.txt"), Type: File, Mode: 0o644, Size: 5, ModTime: 1700000000123456789, Content: []Ref{{ID: crypto.ID{9}, Size: 3}, {Hole: true, Size: 2}}},
		{Name: []byte("a-dir"), Type: Dir, Mode: 0o755, Subtree: &sub},
		{Name: []byte("\xff\xfe not utf-8"), Type: Symlink, LinkTarget: []byte("../x")},
		{Name: []byte("h"), Type: HardLink, LinkTarget: []byte("a-dir/b")},
		{Name: []byte("x"), Type: File, Xattrs: []Xattr{{Name: "user.a", Value: []byte{0, 1}}}},
	}}
}

func TestEncodeSortsAndRoundTrips(t *testing.T) {
	b, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	if len(got.Nodes) != len(want.Nodes) || string(got.Nodes[0].Name) != "a-dir" {
		t.Fatalf("nodes %q, want sorted by name", got.Nodes[0].Name)
	}
	again, _ := Encode(got)
	if !bytes.Equal(b, again) {
		t.Fatal("encoding is not deterministic: an unchanged folder would not deduplicate")
	}
}

func TestInvalidTreesAreRefused(t *testing.T) {
	sub := crypto.ID{1}
	for name, n := range map[string]Node{
		"empty name":      {Name: nil, Type: File},
		"dot dot":         {Name: []byte(".."), Type: Dir, Subtree: &sub},
		"slash":           {Name: []byte("a/b"), Type: File},
		"NUL":             {Name: []byte("a\x00"), Type: File},
		"dir w/o subtree": {Name: []byte("d"), Type: Dir},
		"size mismatch":   {Name: []byte("f"), Type: File, Size: 10, Content: []Ref{{Size: 3}}},
		"pieces that wrap": {Name: []byte("w"), Type: File, Size: 0,
			Content: []Ref{{Size: math.MaxInt64}, {Size: math.MaxInt64}, {Size: 2}}},
		"link w/o target": {Name: []byte("l"), Type: Symlink},
		"unknown type":    {Name: []byte("u"), Type: 99},
	} {
		if _, err := Encode(&Tree{Nodes: []Node{n}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	dup := &Tree{Nodes: []Node{{Name: []byte("a"), Type: File}, {Name: []byte("a"), Type: File}}}
	if _, err := Encode(dup); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate names: %v", err)
	}
}

// Trees come from a repository that may be hostile: decoding never panics,
// and whatever it accepts is safe to restore.
func FuzzDecode(f *testing.F) {
	b, _ := Encode(sample())
	f.Add(b)
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := Decode(in)
		if err != nil {
			return
		}
		for _, n := range tr.Nodes {
			if ValidName(n.Name) != nil {
				t.Fatalf("accepted unsafe name %q", n.Name)
			}
		}
	})
}

// TestEncodedSizeHint: Encode's buffer is sized from the hint, so a hint
// far below the encoding means copies as it grows, and far above means
// memory held for nothing.
func TestEncodedSizeHint(t *testing.T) {
	id := crypto.ID{7}
	var tr Tree
	for i := range 1000 {
		name := []byte(fmt.Sprintf("file-%05d.txt", i))
		n := Node{Name: name, Type: File, Mode: 0o644, UID: 1000, GID: 1000, User: "someone", Group: "staff",
			Size: 3 << 20, ModTime: 1764900000123456789, ChangeTime: 1764900000123456789, Inode: uint64(1e9 + i), Dev: 2049,
			Content: []Ref{{ID: id, Size: 1 << 20}, {ID: id, Size: 1 << 20}, {ID: id, Size: 1 << 20}}}
		if i%10 == 0 {
			n = Node{Name: name, Type: Dir, Mode: 0o755, ModTime: 1764900000123456789, Inode: uint64(i), Subtree: &id}
		}
		tr.Nodes = append(tr.Nodes, n)
	}
	b, err := Encode(&tr)
	if err != nil {
		t.Fatal(err)
	}
	if hint := encodedSizeHint(&tr); hint < len(b) || hint > 2*len(b) {
		t.Errorf("hint %d bytes for an encoding of %d", hint, len(b))
	}
}

// TestNodeEqualIsEncodingEqual: a re-backup keeps a folder's old tree when
// its nodes are Equal, so Equal must hold exactly when the encodings do.
// Every field is changed in turn, so a field added to Node but not to
// Equal fails here.
func TestNodeEqualIsEncodingEqual(t *testing.T) {
	sub := crypto.ID{4}
	base := Node{Name: []byte("n"), Type: File, Mode: 1, UID: 2, GID: 3, User: "u", Group: "g", Size: 2, ModTime: 5,
		ChangeTime: 6, Inode: 7, Dev: 8, Rdev: 9, LinkTarget: []byte("l"), Content: []Ref{{ID: crypto.ID{1}, Size: 2}},
		Subtree: &sub, Xattrs: []Xattr{{Name: "user.a", Value: []byte("v")}}, WinAttrs: 10, WinSD: []byte{1}, Links: 2}
	enc := func(n Node) []byte {
		b, err := encMode.Marshal(&Tree{Nodes: []Node{n}}) // not Encode: these nodes need not be valid
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	check := func(what string, a, b Node) {
		t.Helper()
		if eq, same := a.Equal(&b), bytes.Equal(enc(a), enc(b)); eq != same {
			t.Errorf("%s: Equal says %v, the encodings being the same says %v", what, eq, same)
		}
	}
	nt := reflect.TypeFor[Node]()
	for i := range nt.NumField() {
		f := nt.Field(i)
		changed := base
		changed.Content = slices.Clone(base.Content)
		changed.Xattrs = slices.Clone(base.Xattrs)
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch x := v.Addr().Interface().(type) {
		case *[]byte:
			*x = append(slices.Clone(*x), 'x')
		case *string:
			*x += "x"
		case *Type:
			*x = Dir
		case *[]Ref:
			(*x)[0].Size++
		case **crypto.ID:
			other := crypto.ID{5}
			*x = &other
		case *[]Xattr:
			(*x)[0].Value = []byte("w")
		default:
			switch v.Kind() {
			case reflect.Uint32, reflect.Uint64:
				v.SetUint(v.Uint() + 100)
			case reflect.Int64:
				v.SetInt(v.Int() + 100)
			default:
				t.Fatalf("field %s: the test does not know how to change a %s", f.Name, f.Type)
			}
		}
		check("changed "+f.Name, base, changed)
		if base.Equal(&changed) {
			t.Errorf("a node with another %s is Equal to the original", f.Name)
		}
	}
	same := base
	sameSub := *base.Subtree
	same.Subtree = &sameSub // another pointer to the same ID
	check("same values", base, same)
	empty, nilled := Node{Name: []byte("n"), Content: []Ref{}, Xattrs: []Xattr{}, WinSD: []byte{}, LinkTarget: []byte{}}, Node{Name: []byte("n")}
	check("empty and nil lists", empty, nilled)
	if !empty.Equal(&nilled) {
		t.Error("empty and nil lists differ")
	}
	if NodesEqual([]Node{base}, []Node{base, base}) || !NodesEqual([]Node{base, same}, []Node{same, base}) {
		t.Error("NodesEqual")
	}
}
