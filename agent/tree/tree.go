// Package tree is the encoding of directory listings in a recovery point.
// Each directory is one tree blob: its entries, sorted by name, with their
// metadata and either the IDs of their content chunks (files) or the ID of
// their own tree blob (directories). A point names its root tree.
//
// Trees are CBOR with integer keys: compact, binary-safe for names in any
// encoding, and decoded with limits because a repository may be hostile.
package tree

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fxamacker/cbor/v2"

	"github.com/coffer-backup/coffer/agent/crypto"
)

// Type is the kind of a directory entry.
type Type uint8

const (
	File Type = iota + 1
	Dir
	Symlink
	FIFO
	Socket
	Device
	// HardLink is a further name of a file stored earlier in the same
	// point; LinkTarget holds the first name's path from the point's root.
	// Only points made before Links existed hold it; readers still follow
	// it, the archiver no longer writes it.
	HardLink
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case FIFO:
		return "fifo"
	case Socket:
		return "socket"
	case Device:
		return "device"
	case HardLink:
		return "hardlink"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Ref is one piece of a file's content, in order: a chunk, or a hole of
// Size bytes in a sparse file (zero ID).
type Ref struct {
	ID   crypto.ID `cbor:"1,keyasint,omitempty"`
	Size int64     `cbor:"2,keyasint"`
	Hole bool      `cbor:"3,keyasint,omitempty"`
}

// Xattr is an extended attribute.
type Xattr struct {
	Name  string `cbor:"1,keyasint"`
	Value []byte `cbor:"2,keyasint"`
}

// Node is one directory entry.
type Node struct {
	Name  []byte `cbor:"1,keyasint"` // any bytes but '/' and NUL, never "." or ".."
	Type  Type   `cbor:"2,keyasint"`
	Mode  uint32 `cbor:"3,keyasint,omitempty"` // permission bits, setuid/setgid/sticky
	UID   uint32 `cbor:"4,keyasint,omitempty"`
	GID   uint32 `cbor:"5,keyasint,omitempty"`
	User  string `cbor:"6,keyasint,omitempty"`
	Group string `cbor:"7,keyasint,omitempty"`
	Size  int64  `cbor:"8,keyasint,omitempty"`
	// Times in nanoseconds since the Unix epoch.
	ModTime    int64 `cbor:"9,keyasint,omitempty"`
	ChangeTime int64 `cbor:"10,keyasint,omitempty"` // for change detection only
	// Identity on the source machine, for change detection.
	Inode uint64 `cbor:"11,keyasint,omitempty"`
	Dev   uint64 `cbor:"12,keyasint,omitempty"`
	Rdev  uint64 `cbor:"13,keyasint,omitempty"`

	LinkTarget []byte     `cbor:"14,keyasint,omitempty"` // symlink target, or hard link's first path
	Content    []Ref      `cbor:"15,keyasint,omitempty"` // files
	Subtree    *crypto.ID `cbor:"16,keyasint,omitempty"` // directories
	Xattrs     []Xattr    `cbor:"17,keyasint,omitempty"`
	WinAttrs   uint32     `cbor:"18,keyasint,omitempty"`
	WinSD      []byte     `cbor:"19,keyasint,omitempty"` // Windows security descriptor (ACLs)
	// Links is the number of names a file had when it was backed up, set
	// only above one. Every name of a hard-linked file is stored as a file
	// with the same content, Inode and Dev, so a point does not depend on
	// which name was read first, and any one name restores on its own; the
	// restorer links names that share Inode and Dev again.
	Links uint64 `cbor:"20,keyasint,omitempty"`
}

// Equal reports whether n and o encode to the same bytes: every field the
// same, with nil and empty lists alike (the encoding omits both).
func (n *Node) Equal(o *Node) bool {
	return bytes.Equal(n.Name, o.Name) && n.Type == o.Type && n.Mode == o.Mode && n.UID == o.UID && n.GID == o.GID &&
		n.User == o.User && n.Group == o.Group && n.Size == o.Size && n.ModTime == o.ModTime &&
		n.ChangeTime == o.ChangeTime && n.Inode == o.Inode && n.Dev == o.Dev && n.Rdev == o.Rdev &&
		bytes.Equal(n.LinkTarget, o.LinkTarget) && slices.Equal(n.Content, o.Content) &&
		(n.Subtree == nil) == (o.Subtree == nil) && (n.Subtree == nil || *n.Subtree == *o.Subtree) &&
		slices.EqualFunc(n.Xattrs, o.Xattrs, func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) &&
		n.WinAttrs == o.WinAttrs && bytes.Equal(n.WinSD, o.WinSD) && n.Links == o.Links
}

// NodesEqual reports whether two lists of nodes encode to the same bytes.
func NodesEqual(a, b []Node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(&b[i]) {
			return false
		}
	}
	return true
}

// Tree is one directory's entries.
type Tree struct {
	Nodes []Node `cbor:"1,keyasint"`
}

// Limits for decoding a tree from a repository that may be hostile.
const (
	MaxNodes     = 10_000_000
	maxNameBytes = 4096
)

var decMode cbor.DecMode

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		MaxArrayElements: MaxNodes,
		MaxMapPairs:      64,
		MaxNestedLevels:  8,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Encode sorts the nodes by name and encodes the tree. It refuses a tree
// that Decode would refuse.
func Encode(t *Tree) ([]byte, error) {
	slices.SortFunc(t.Nodes, func(a, b Node) int { return bytes.Compare(a.Name, b.Name) })
	if err := t.Validate(); err != nil {
		return nil, err
	}
	// Encoded into a buffer of about the final size: grown by doubling,
	// a folder of 100,000 files made three times its tree's size in
	// garbage.
	return appendTree(make([]byte, 0, encodedSizeHint(t)), t), nil
}

// encodedSizeHint is about the size of t's encoding: a node's fixed fields
// take some 60 bytes, a content reference about 45.
func encodedSizeHint(t *Tree) int {
	n := 16
	for i := range t.Nodes {
		x := &t.Nodes[i]
		n += 64 + len(x.Name) + len(x.User) + len(x.Group) + len(x.LinkTarget) + len(x.WinSD) + 48*len(x.Content)
		if x.Subtree != nil {
			n += 36
		}
		for _, a := range x.Xattrs {
			n += 8 + len(a.Name) + len(a.Value)
		}
	}
	return n
}

// Decode decodes and validates a tree.
func Decode(b []byte) (*Tree, error) {
	t, err := decodeFast(b)
	if err != nil {
		t = &Tree{}
		if err := decMode.Unmarshal(b, t); err != nil {
			return nil, fmt.Errorf("decode tree: %w", err)
		}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// ErrInvalid marks a tree that breaks the format's rules.
var ErrInvalid = errors.New("invalid tree")

// Validate checks what restore relies on: safe, unique names in order, and
// the fields each type needs.
func (t *Tree) Validate() error {
	for i := range t.Nodes {
		var prev *Node
		if i > 0 {
			prev = &t.Nodes[i-1]
		}
		if err := t.Nodes[i].validate(prev); err != nil {
			return err
		}
	}
	return nil
}

// validate checks one node, and its order after prev (nil for the first).
func (n *Node) validate(prev *Node) error {
	if err := ValidName(n.Name); err != nil {
		return err
	}
	if prev != nil && bytes.Compare(prev.Name, n.Name) >= 0 {
		return fmt.Errorf("%w: entries %q and %q are duplicated or out of order", ErrInvalid, prev.Name, n.Name)
	}
	switch n.Type {
	case File:
		var total int64
		for _, r := range n.Content {
			if r.Size < 0 {
				return fmt.Errorf("%w: %q has a negative piece size", ErrInvalid, n.Name)
			}
			if total > math.MaxInt64-r.Size { // pieces that wrap around to the right sum
				return fmt.Errorf("%w: %q has pieces larger than any file", ErrInvalid, n.Name)
			}
			total += r.Size
		}
		if total != n.Size || n.Size < 0 {
			return fmt.Errorf("%w: %q has size %d but its content adds up to %d", ErrInvalid, n.Name, n.Size, total)
		}
	case Dir:
		if n.Subtree == nil {
			return fmt.Errorf("%w: directory %q has no subtree", ErrInvalid, n.Name)
		}
	case Symlink, HardLink:
		if len(n.LinkTarget) == 0 {
			return fmt.Errorf("%w: link %q has no target", ErrInvalid, n.Name)
		}
	case FIFO, Socket, Device:
	default:
		return fmt.Errorf("%w: %q has unknown type %d", ErrInvalid, n.Name, n.Type)
	}
	return nil
}

func ValidName(name []byte) error {
	switch {
	case len(name) == 0:
		return fmt.Errorf("%w: an entry has an empty name", ErrInvalid)
	case len(name) > maxNameBytes:
		return fmt.Errorf("%w: an entry name is %d bytes long", ErrInvalid, len(name))
	case string(name) == "." || string(name) == "..":
		return fmt.Errorf("%w: an entry is named %q", ErrInvalid, name)
	case bytes.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: entry name %q contains a path separator or NUL", ErrInvalid, name)
	}
	return nil
}
