package repository

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"github.com/fxamacker/cbor/v2"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/tree"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/storage"
)

// BlobType tells data chunks from tree blobs.
type BlobType uint8

const (
	DataBlob BlobType = 0
	TreeBlob BlobType = 1
)

func (t BlobType) String() string {
	if t == TreeBlob {
		return "tree"
	}
	return "data"
}

// BlobEntry locates one blob inside a pack: sealed on its own, or as a
// member of a group (GroupLength above 0), small blobs compressed and
// sealed together so that zstd finds what they share.
type BlobEntry struct {
	Type      BlobType        `cbor:"1,keyasint"`
	ID        crypto.ID       `cbor:"2,keyasint"`
	Offset    uint32          `cbor:"3,keyasint"` // of the sealed blob, or of its sealed group
	Length    uint32          `cbor:"4,keyasint"` // sealed length, of the blob or of its group
	RawLength uint32          `cbor:"5,keyasint"` // the blob's plaintext length
	Method    compress.Method `cbor:"6,keyasint"` // how the blob, or its group, is compressed
	// A group member's plaintext is bytes [GroupOffset, GroupOffset +
	// RawLength) of its group's, which is GroupLength bytes long.
	GroupOffset uint32 `cbor:"7,keyasint,omitempty"`
	GroupLength uint32 `cbor:"8,keyasint,omitempty"`
}

// Grouped reports whether the blob is stored in a group.
func (e *BlobEntry) Grouped() bool { return e.GroupLength > 0 }

// StoredSize is the blob's share of the stored bytes: its sealed length,
// or, in a group, the group's sealed length in proportion to its
// plaintext.
func (e *BlobEntry) StoredSize() int64 {
	if !e.Grouped() {
		return int64(e.Length)
	}
	return int64(e.Length) * int64(e.RawLength) / int64(e.GroupLength)
}

// SameGroup reports whether e is a member of the group o is stored in:
// the same sealed bytes of the same pack.
func (e *BlobEntry) SameGroup(o *BlobEntry) bool {
	return e.Grouped() && e.Offset == o.Offset && e.Length == o.Length
}

// groupInRange reports whether a member's group is within what a reader
// allocates and the member lies inside it.
func (e *BlobEntry) groupInRange() bool {
	return e.GroupLength <= maxGroupLength && int64(e.GroupOffset)+int64(e.RawLength) <= int64(e.GroupLength)
}

// Limits on what a hostile repository can make a reader allocate.
const (
	maxPackHeader    = 64 << 20
	maxBlobsPerPack  = 1 << 20
	maxBlobRawLength = 64 << 20 // trees may exceed the chunk maximum
	maxGroupLength   = 16 << 20 // writers make groups of about GroupTarget
)

// Groups: a data blob under GroupBlobMax is added to the group filling for
// its folder, which is compressed and sealed once it holds GroupTarget
// bytes. On cofferbench's source and office datasets that stored 10% and 4%
// less than sealing each small file on its own (docs/benchmarks.md). A
// reader of one member decompresses the whole group, so groups are kept
// small enough for the restore's workers to hold one each; 1 MiB groups
// stored 0.3% less on office and peaked 4 MiB higher in its restore.
const (
	GroupBlobMax = 64 << 10
	GroupTarget  = 512 << 10
)

// GroupLimits is when a writer seals a group, for packs of packSize
// bytes: at target bytes or at members blobs, so that a group and its
// header entries fit an empty pack (the least pack size is 1 MiB).
func GroupLimits(packSize int) (target, members int) {
	return min(GroupTarget, packSize/4), packSize / 8 / maxEntryBytes
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	// Point times keep nanoseconds (RFC 3339 text): two backups in one second must still
	// sort, so that "latest" is the last one made.
	opts := cbor.CoreDetEncOptions()
	opts.Time = cbor.TimeRFC3339Nano
	if encMode, err = opts.EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{MaxArrayElements: maxBlobsPerPack * 4, MaxMapPairs: 64, MaxNestedLevels: 8}).DecMode(); err != nil {
		panic(err)
	}
}

// Packer gathers sealed blobs into one pack object:
//
//	blob 1 | blob 2 | … | sealed header | header length (uint32, little endian)
//
// The header lists each blob's type, ID, offset and lengths, so a pack can
// be indexed from itself alone if its index file was never written.
type Packer struct {
	buf     []byte
	entries []BlobEntry

	// A spooled pack (spoolTo) writes its blobs out as they come and
	// keeps only their running hash and size.
	spool storage.Spool
	out   *bufio.Writer
	hash  hash.Hash
	size  int
	err   error // the first failed write to the spool
}

// NewPacker starts an empty pack with room for sizeHint bytes.
func NewPacker(sizeHint int) *Packer { return &Packer{buf: make([]byte, 0, sizeHint)} }

// Reset empties the pack for reuse once its bytes are stored, so a backup
// cycles through a few pack buffers instead of allocating one per pack.
func (p *Packer) Reset() {
	p.buf = p.buf[:0]
	p.entries = nil
	if p.spool != nil {
		p.spool.Abort() // a no-op once committed
	}
	p.spool, p.size, p.err = nil, 0, nil
	if p.out != nil {
		p.out.Reset(nil)
	}
}

// spoolTo makes the (empty) pack write its bytes to s as they are added
// instead of keeping them: a local folder takes a pack that way, and a
// backup then holds no pack in memory.
func (p *Packer) spoolTo(s storage.Spool) {
	p.spool = s
	if p.out == nil {
		p.out = bufio.NewWriterSize(s, 256<<10)
		p.hash = sha256.New()
	} else {
		p.out.Reset(s)
		p.hash.Reset()
	}
}

// Spooled reports whether the pack's bytes are in a spool, not in memory.
func (p *Packer) Spooled() bool { return p.spool != nil }

// Add appends a sealed blob.
func (p *Packer) Add(t BlobType, id crypto.ID, sealed []byte, rawLen int, m compress.Method) {
	p.entries = append(p.entries, BlobEntry{Type: t, ID: id, Offset: uint32(p.Size()), Length: uint32(len(sealed)), RawLength: uint32(rawLen), Method: m})
	p.write(sealed)
}

// AddGroup appends a sealed group and an entry for each of members, which
// give each blob's type, ID, lengths and place in the group; the group's
// offset, sealed length and method are set here.
func (p *Packer) AddGroup(sealed []byte, m compress.Method, members []BlobEntry) {
	off := uint32(p.Size())
	for _, e := range members {
		e.Offset, e.Length, e.Method = off, uint32(len(sealed)), m
		p.entries = append(p.entries, e)
	}
	p.write(sealed)
}

func (p *Packer) write(b []byte) {
	if p.spool == nil {
		p.buf = append(p.buf, b...)
		return
	}
	if p.err == nil {
		_, p.err = p.out.Write(b)
	}
	p.hash.Write(b)
	p.size += len(b)
}

// Size is the bytes added so far.
func (p *Packer) Size() int {
	if p.spool != nil {
		return p.size
	}
	return len(p.buf)
}

// maxEntryBytes bounds one header entry as encoded (a test checks it).
const maxEntryBytes = 80

// SizeWith bounds the finished pack's size if a sealed blob of n bytes were
// added (or a group with SizeWithGroup): blobs, header and its length. A pack of many small blobs (a folder
// of mail) has a header of a megabyte or more, which must fit the buffer,
// or appending it copies the whole pack to a larger one.
func (p *Packer) SizeWith(n int) int { return p.SizeWithGroup(n, 1) }

// SizeWithGroup is SizeWith for a sealed group of n bytes and members
// blobs.
func (p *Packer) SizeWithGroup(n, members int) int {
	return p.Size() + n + (len(p.entries)+members)*maxEntryBytes + 9 + crypto.Overhead + 4
}

// Count is the number of blobs added so far.
func (p *Packer) Count() int { return len(p.entries) }

// Finish seals the header and returns the pack's bytes (nil for a spooled
// pack, whose bytes are in its spool), its ID (the SHA-256 of those bytes)
// and its entries.
func (p *Packer) Finish(key *crypto.Key) (data []byte, id crypto.ID, entries []BlobEntry, err error) {
	hdr, err := encMode.Marshal(p.entries)
	if err != nil {
		return nil, id, nil, fmt.Errorf("encode pack header: %w", err)
	}
	if p.spool != nil {
		// The pack's bytes are in the spool: its ID comes from the
		// running hash, and data is nil.
		sealed := key.Seal(nil, hdr, adPackHeader)
		p.write(sealed)
		p.write(binary.LittleEndian.AppendUint32(nil, uint32(len(sealed))))
		if p.err == nil {
			p.err = p.out.Flush()
		}
		if p.err != nil {
			return nil, id, nil, fmt.Errorf("write pack: %w", p.err)
		}
		copy(id[:], p.hash.Sum(nil))
		return nil, id, p.entries, nil
	}
	start := len(p.buf)
	p.buf = key.Seal(p.buf, hdr, adPackHeader)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(p.buf)-start))
	return p.buf, sha256.Sum256(p.buf), p.entries, nil
}

// PackName is the object name of a pack.
func PackName(id crypto.ID) string {
	return layout.Pack(hex.EncodeToString(id[:]))
}

// ErrDamaged marks an object that fails authentication or decoding.
var ErrDamaged = errors.New("damaged object")

// parsePackHeader decodes a pack's header given its trailing bytes (the
// sealed header and its length) and the pack's total size.
func parsePackHeader(key *crypto.Key, tail []byte, packSize int64) ([]BlobEntry, error) {
	if len(tail) < 4 {
		return nil, fmt.Errorf("%w: pack too short", ErrDamaged)
	}
	n := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if n > int64(len(tail)-4) || n < crypto.Overhead {
		return nil, fmt.Errorf("%w: pack header length %d out of range", ErrDamaged, n)
	}
	sealed := tail[len(tail)-4-int(n) : len(tail)-4]
	hdr, err := key.Open(nil, sealed, adPackHeader)
	if err != nil {
		return nil, fmt.Errorf("%w: pack header: %v", ErrDamaged, err)
	}
	var entries []BlobEntry
	if err := decMode.Unmarshal(hdr, &entries); err != nil {
		return nil, fmt.Errorf("%w: pack header: %v", ErrDamaged, err)
	}
	limit := packSize - 4 - n
	for _, e := range entries {
		if !e.valid(limit) {
			return nil, fmt.Errorf("%w: pack header entry for %s is out of range", ErrDamaged, e.ID)
		}
	}
	return entries, nil
}

// valid reports whether an entry lies within the first limit bytes of its
// pack and its lengths are within what a reader allocates.
func (e *BlobEntry) valid(limit int64) bool {
	if int64(e.Offset)+int64(e.Length) > limit || e.Length < crypto.Overhead || e.RawLength > maxBlobRawLength || e.Type > TreeBlob {
		return false
	}
	if !e.Grouped() {
		return e.GroupOffset == 0
	}
	return e.groupInRange()
}

// ReadPack reads n bytes of a pack from offset off.
func (r *Repository) ReadPack(ctx context.Context, id crypto.ID, off, n int64) ([]byte, error) {
	return r.readRange(ctx, nil, PackName(id), off, n)
}

// ReadPackInto is ReadPack reading into buf (grown if too small), for
// loops that read many ranges.
func (r *Repository) ReadPackInto(ctx context.Context, buf []byte, id crypto.ID, off, n int64) ([]byte, error) {
	return r.readRange(ctx, buf, PackName(id), off, n)
}

// ReadPackHeader reads and authenticates the header of a stored pack.
func (r *Repository) ReadPackHeader(ctx context.Context, id crypto.ID, size int64) ([]BlobEntry, error) {
	// Read the last 64 KiB in one go: it usually holds the whole header.
	n := min(size, 64<<10)
	tail, err := r.ReadPack(ctx, id, size-n, n)
	if err != nil {
		return nil, err
	}
	hl := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if hl+4 > n && hl+4 <= min(size, maxPackHeader) {
		if tail, err = r.ReadPack(ctx, id, size-hl-4, hl+4); err != nil {
			return nil, err
		}
	}
	return parsePackHeader(r.key, tail, size)
}

// SealBlob compresses and encrypts one blob's plaintext. Safe for concurrent
// use; the expensive part of a backup runs here on every core.
func (r *Repository) SealBlob(dst []byte, t BlobType, id crypto.ID, plain []byte, scratch []byte) (sealed []byte, m compress.Method, scratchOut []byte) {
	comp, m := compress.Compress(scratch[:0], plain, r.cfg.Compression)
	return r.key.Seal(dst, comp, blobAD(t, id)), m, comp
}

// OpenBlob authenticates, decrypts and decompresses a sealed blob, and
// checks its content against its ID.
func (r *Repository) OpenBlob(e BlobEntry, sealed []byte) ([]byte, error) {
	plain, _, err := r.OpenBlobInto(nil, nil, e, sealed)
	return plain, err
}

// OpenBlobInPlace is OpenBlobInto for a caller that is done with sealed
// once it is opened: the blob is decrypted in sealed's own storage, so only
// a compressed blob needs a second buffer, plain (decompressed into at
// plain[:0]). It returns plain, grown if it had to be, for the next call;
// out is in sealed's storage when the blob was stored as is. A restore's
// fetch workers kept a third of their memory in the buffers this saves.
func (r *Repository) OpenBlobInPlace(plain []byte, e BlobEntry, sealed []byte) (out, plainOut []byte, err error) {
	if e.Grouped() {
		// The group's sealed bytes are its other members' too: not in place.
		out, err = r.openGrouped(plain, e, sealed)
		return out, out, err
	}
	dec, err := r.key.Open(sealed[:0], sealed, blobAD(e.Type, e.ID))
	if err != nil {
		return nil, plain, fmt.Errorf("%w: %s blob %s: %v", ErrDamaged, e.Type, e.ID, err)
	}
	out, err = r.plaintext(plain, e, dec)
	// A decompressed blob's capacity is capped at its size: keep the
	// larger buffer, or every larger blob after a smaller one allocates.
	plainOut = plain
	if e.Method != compress.None && cap(out) > cap(plain) {
		plainOut = out
	}
	if err != nil {
		return nil, plainOut, err
	}
	return out, plainOut, nil
}

// OpenBlobInto is OpenBlob writing into the caller's buffers, for loops
// that open many blobs: the plaintext goes to plain[:0] and scratch holds
// the decrypted, still compressed bytes. Both come back (grown if needed)
// for the next call. A restore of many small files otherwise allocated
// twice per blob and spent a sixth of its CPU collecting the garbage.
func (r *Repository) OpenBlobInto(plain, scratch []byte, e BlobEntry, sealed []byte) (out, scratchOut []byte, err error) {
	if e.Grouped() {
		out, err = r.openGrouped(plain, e, sealed)
		return out, scratch, err
	}
	dst := scratch[:0]
	if e.Method == compress.None {
		dst = plain[:0] // stored as is: the decrypted bytes are the plaintext
	}
	dec, err := r.key.Open(dst, sealed, blobAD(e.Type, e.ID))
	if err != nil {
		return plain, scratch, fmt.Errorf("%w: %s blob %s: %v", ErrDamaged, e.Type, e.ID, err)
	}
	if e.Method != compress.None {
		scratch = dec
	}
	out, err = r.plaintext(plain, e, dec)
	if out == nil {
		out = plain
	}
	return out, scratch, err
}

// plaintext turns a blob's decrypted bytes into its plaintext (dec itself
// when the blob was stored as is, else dec decompressed into plain[:0])
// and checks it against the blob's length and ID. It returns the
// plaintext with the error when that does not match the ID, and nil on
// any other failure.
func (r *Repository) plaintext(plain []byte, e BlobEntry, dec []byte) ([]byte, error) {
	out := dec
	if e.Method == compress.None {
		if len(out) > int(e.RawLength) {
			return nil, fmt.Errorf("%w: %s blob %s: %d stored bytes, the index says %d", ErrDamaged, e.Type, e.ID, len(out), e.RawLength)
		}
	} else {
		var err error
		if out, err = compress.Decompress(plain[:0], dec, e.Method, int(e.RawLength)); err != nil {
			return nil, fmt.Errorf("%w: %s blob %s: %v", ErrDamaged, e.Type, e.ID, err)
		}
	}
	if len(out) != int(e.RawLength) || r.key.ChunkID(out) != e.ID {
		return out, fmt.Errorf("%w: %s blob %s does not match its ID", ErrDamaged, e.Type, e.ID)
	}
	return out, nil
}

// LoadBlob reads one blob through the index, into a buffer of its own.
func (r *Repository) LoadBlob(ctx context.Context, id crypto.ID) ([]byte, error) {
	out, _, _, err := r.LoadBlobInPlace(ctx, id, nil, nil)
	return out, err
}

// LoadBlobInPlace is LoadBlob into the caller's buffers: the blob is read
// into span and opened there (OpenBlobInPlace), a compressed one
// decompressed into plain. Both come back, grown if needed, for the next
// call. Streaming a 100 MiB file allocated two fresh buffers per chunk,
// and on a virtual machine the first touch of each page is a trap.
func (r *Repository) LoadBlobInPlace(ctx context.Context, id crypto.ID, span, plain []byte) (out, spanOut, plainOut []byte, err error) {
	loc, ok := r.index.Lookup(id)
	if !ok {
		return nil, span, plain, fmt.Errorf("blob %s is in no index: the repository is missing data (run `coffer check`)", id)
	}
	span, err = r.ReadPackInto(ctx, span, loc.Pack, int64(loc.Offset), int64(loc.Length))
	if err != nil {
		return nil, span, plain, err
	}
	out, plain, err = r.OpenBlobInPlace(plain, loc.BlobEntry, span)
	return out, span, plain, err
}

// LoadTreeBytes reads one tree blob without decoding it.
func (r *Repository) LoadTreeBytes(ctx context.Context, id crypto.ID) ([]byte, error) {
	return r.LoadBlob(ctx, id)
}

// LoadTree reads and decodes one tree blob.
func (r *Repository) LoadTree(ctx context.Context, id crypto.ID) (*tree.Tree, error) {
	b, err := r.LoadBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	return tree.Decode(b)
}
