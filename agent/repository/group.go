package repository

import (
	"fmt"
	"slices"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
)

// adGroup binds a sealed group to its role and its blobs' type. A group
// has no single ID to bind; each member is checked against its own ID
// once opened.
func adGroup(t BlobType) []byte {
	return append([]byte("coffer/group/v1"), byte(t))
}

// SealGroup compresses and encrypts a group's plaintext: its members'
// plaintexts one after another.
func (r *Repository) SealGroup(dst []byte, t BlobType, plain, scratch []byte) (sealed []byte, m compress.Method, scratchOut []byte) {
	comp, m := compress.Compress(scratch[:0], plain, r.cfg.Compression)
	return r.key.Seal(dst, comp, adGroup(t)), m, comp
}

// GroupBuf keeps the plaintext of the group last opened through it, so
// that the members of a group a reader meets one after another (a pack's
// entries in order) are decrypted and decompressed once. The zero value is
// ready; one goroutine uses it at a time.
type GroupBuf struct {
	// The sealed group's nonce and tag name it: the same pair with other
	// bytes would be a forgery under the repository's key.
	name    [crypto.NonceSize + crypto.TagSize]byte
	t       BlobType
	held    bool
	plain   []byte
	scratch []byte
}

func groupName(sealed []byte) (n [crypto.NonceSize + crypto.TagSize]byte) {
	copy(n[:crypto.NonceSize], sealed)
	copy(n[crypto.NonceSize:], sealed[len(sealed)-crypto.TagSize:])
	return n
}

// OpenMember returns the plaintext of a group member, given the sealed
// bytes of its group, after checking it against its ID. The result is in
// g's storage: valid until g opens another group.
func (r *Repository) OpenMember(g *GroupBuf, e BlobEntry, sealed []byte) ([]byte, error) {
	if !e.Grouped() || !e.groupInRange() {
		return nil, fmt.Errorf("%w: %s blob %s: group entry out of range", ErrDamaged, e.Type, e.ID)
	}
	if len(sealed) < crypto.Overhead {
		return nil, fmt.Errorf("%w: %s blob %s: group of %d bytes", ErrDamaged, e.Type, e.ID, len(sealed))
	}
	name := groupName(sealed)
	if !g.held || g.name != name || g.t != e.Type || len(g.plain) != int(e.GroupLength) {
		g.held = false
		if err := r.openGroup(g, e, sealed); err != nil {
			return nil, err
		}
		g.name, g.t, g.held = name, e.Type, true
	}
	out := g.plain[e.GroupOffset : e.GroupOffset+e.RawLength]
	if r.key.ChunkID(out) != e.ID {
		return nil, fmt.Errorf("%w: %s blob %s does not match its ID", ErrDamaged, e.Type, e.ID)
	}
	return out, nil
}

func (r *Repository) openGroup(g *GroupBuf, e BlobEntry, sealed []byte) error {
	dst := g.scratch[:0]
	if e.Method == compress.None {
		dst = g.plain[:0]
	}
	dec, err := r.key.Open(dst, sealed, adGroup(e.Type))
	if err != nil {
		return fmt.Errorf("%w: %s blob %s: its group: %v", ErrDamaged, e.Type, e.ID, err)
	}
	if e.Method == compress.None {
		g.plain = dec
	} else {
		g.scratch = dec
		// Kept even on failure: a buffer Decompress had to grow.
		g.plain, err = compress.Decompress(g.plain[:0], dec, e.Method, int(e.GroupLength))
		if err != nil {
			return fmt.Errorf("%w: %s blob %s: its group: %v", ErrDamaged, e.Type, e.ID, err)
		}
	}
	if len(g.plain) != int(e.GroupLength) {
		return fmt.Errorf("%w: %s blob %s: its group holds %d bytes, the index says %d", ErrDamaged, e.Type, e.ID, len(g.plain), e.GroupLength)
	}
	return nil
}

// GroupBuilder gathers small blobs' plaintexts, one after another, into a
// group; SealGroupOf seals it. The zero value is empty and ready.
type GroupBuilder struct {
	plain   []byte
	members []BlobEntry
}

// Add appends a blob to the group.
func (g *GroupBuilder) Add(t BlobType, id crypto.ID, plain []byte) {
	g.members = append(g.members, BlobEntry{Type: t, ID: id, RawLength: uint32(len(plain)), GroupOffset: uint32(len(g.plain))})
	g.plain = append(g.plain, plain...)
}

// Full reports whether the group has reached target bytes or members
// blobs (see GroupLimits).
func (g *GroupBuilder) Full(target, members int) bool {
	return len(g.plain) >= target || len(g.members) >= members
}

// Empty reports whether the group holds no blob.
func (g *GroupBuilder) Empty() bool { return len(g.members) == 0 }

// Reset empties the group, keeping its buffers.
func (g *GroupBuilder) Reset() { g.plain, g.members = g.plain[:0], g.members[:0] }

// SealGroupOf compresses and encrypts a group that is not empty into dst
// (SealGroup) and empties the builder. It returns the members' entries,
// which Packer.AddGroup completes with the group's place in its pack.
func (r *Repository) SealGroupOf(g *GroupBuilder, dst, scratch []byte) (sealed []byte, m compress.Method, members []BlobEntry, scratchOut []byte) {
	members = slices.Clone(g.members)
	for i := range members {
		members[i].GroupLength = uint32(len(g.plain))
	}
	sealed, m, scratchOut = r.SealGroup(dst, members[0].Type, g.plain, scratch)
	g.Reset()
	return sealed, m, members, scratchOut
}

// openGrouped is OpenMember for a caller without a GroupBuf: the member
// is copied to plain[:0] (grown if needed).
func (r *Repository) openGrouped(plain []byte, e BlobEntry, sealed []byte) ([]byte, error) {
	var g GroupBuf
	m, err := r.OpenMember(&g, e, sealed)
	if err != nil {
		return plain, err
	}
	return append(plain[:0], m...), nil
}
