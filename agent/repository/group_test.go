package repository

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/agent/compress"
	"github.com/coffer-backup/coffer/shared/storage"
)

// prose makes n bytes of text from a small vocabulary: small files of it
// share most of their words, as a folder of documents does.
func prose(seed uint64, n int) []byte {
	words := strings.Fields("invoice branch office quarterly report customer order shipment total amount due paid account ledger balance")
	rng := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(" \n"[rng.IntN(2)])
		fmt.Fprint(&b, rng.IntN(1000), " ")
	}
	return b.Bytes()[:n]
}

// reopenIndexed opens the repository in be afresh, with its index loaded.
func reopenIndexed(t *testing.T, be storage.Backend) *Repository {
	t.Helper()
	r, err := Open(t.Context(), be, []byte(blobTestPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// sealedMembers packs plains as one group and returns the pack's entries
// and bytes as a reader finds them.
func sealedMembers(t *testing.T, r *Repository, plains ...[]byte) ([]BlobEntry, []byte) {
	t.Helper()
	var group []byte
	var members []BlobEntry
	for _, p := range plains {
		members = append(members, BlobEntry{Type: DataBlob, ID: r.BlobID(p), RawLength: uint32(len(p)), GroupOffset: uint32(len(group))})
		group = append(group, p...)
	}
	for i := range members {
		members[i].GroupLength = uint32(len(group))
	}
	pk := NewPacker(1 << 20)
	single := []byte("a blob sealed on its own, before the group")
	sealed, m, _ := r.SealBlob(nil, DataBlob, r.BlobID(single), single, nil)
	pk.Add(DataBlob, r.BlobID(single), sealed, len(single), m)
	gs, gm, _ := r.SealGroup(nil, DataBlob, group, nil)
	pk.AddGroup(gs, gm, members)
	data, _, _, err := pk.Finish(r.key)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parsePackHeader(r.key, data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return entries, data
}

func TestGroupMembersOpenFromTheirGroup(t *testing.T) {
	r := &Repository{key: testKey(t)}
	plains := [][]byte{prose(1, 3000), prose(2, 1), prose(3, 40<<10), prose(4, 2500)}
	entries, data := sealedMembers(t, r, plains...)
	if len(entries) != 1+len(plains) || entries[0].Grouped() {
		t.Fatalf("entries %+v", entries)
	}
	var g GroupBuf
	for i, e := range entries[1:] {
		if !e.Grouped() || e.Offset != entries[1].Offset || e.Length != entries[1].Length {
			t.Fatalf("member %d: %+v is not in the group", i, e)
		}
		sealed := data[e.Offset : e.Offset+e.Length]
		got, err := r.OpenMember(&g, e, sealed)
		if err != nil || !bytes.Equal(got, plains[i]) {
			t.Fatalf("member %d through a GroupBuf: %v", i, err)
		}
		// Every other way to open a blob gives the same bytes, and leaves
		// the group's sealed bytes as they were for the next member.
		for name, open := range map[string]func() ([]byte, error){
			"OpenBlob": func() ([]byte, error) { return r.OpenBlob(e, sealed) },
			"OpenBlobInPlace": func() ([]byte, error) {
				out, _, err := r.OpenBlobInPlace(nil, e, sealed)
				return out, err
			},
			"openKept": func() ([]byte, error) { return r.openKept(new(GroupBuf), e, sealed) },
		} {
			if got, err := open(); err != nil || !bytes.Equal(got, plains[i]) {
				t.Fatalf("member %d through %s: %v", i, name, err)
			}
		}
	}
	// A group's share of the stored bytes is split by plaintext.
	var share int64
	for _, e := range entries[1:] {
		share += e.StoredSize()
	}
	if whole := int64(entries[1].Length); share > whole || share < whole-int64(len(plains)) {
		t.Fatalf("members' shares add up to %d of the group's %d bytes", share, whole)
	}
}

func TestDamagedGroupFailsEveryMemberAndNothingElse(t *testing.T) {
	r := &Repository{key: testKey(t)}
	plains := [][]byte{prose(1, 3000), prose(2, 5000)}
	entries, data := sealedMembers(t, r, plains...)
	g0 := entries[1]
	for _, at := range []uint32{g0.Offset, g0.Offset + g0.Length/2, g0.Offset + g0.Length - 1} {
		bad := bytes.Clone(data)
		bad[at] ^= 0x40
		var g GroupBuf
		for _, e := range entries[1:] {
			if _, err := r.OpenMember(&g, e, bad[e.Offset:e.Offset+e.Length]); !errors.Is(err, ErrDamaged) {
				t.Fatalf("byte %d flipped: member opened with %v", at, err)
			}
		}
		e := entries[0]
		if _, err := r.OpenBlob(e, bad[e.Offset:e.Offset+e.Length]); err != nil {
			t.Fatalf("byte %d of the group flipped: the blob before it fails: %v", at, err)
		}
	}
	// A GroupBuf holding a group does not vouch for other bytes: a
	// member presented with another group's sealed bytes is refused.
	var g GroupBuf
	e := entries[1]
	if _, err := r.OpenMember(&g, e, data[e.Offset:e.Offset+e.Length]); err != nil {
		t.Fatal(err)
	}
	_, other := sealedMembers(t, r, prose(9, 3000), prose(10, 5000))
	if _, err := r.OpenMember(&g, e, other[e.Offset:e.Offset+e.Length]); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a member opened from another group's bytes: %v", err)
	}
	// Entries that lie about the group are refused before anything is
	// allocated for it.
	for name, lie := range map[string]func(*BlobEntry){
		"past the group's end": func(e *BlobEntry) { e.GroupOffset = e.GroupLength - e.RawLength + 1 },
		"group too large":      func(e *BlobEntry) { e.GroupLength = maxGroupLength + 1 },
		"wrong group length":   func(e *BlobEntry) { e.GroupLength++ },
		"wrong type":           func(e *BlobEntry) { e.Type = TreeBlob },
	} {
		e := entries[2]
		lie(&e)
		var g GroupBuf
		if _, err := r.OpenMember(&g, e, data[e.Offset:e.Offset+e.Length]); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: opened with %v", name, err)
		}
	}
}

func TestPackHeaderRefusesGroupEntriesOutOfRange(t *testing.T) {
	ok := BlobEntry{Offset: 0, Length: 100, RawLength: 10, GroupOffset: 5, GroupLength: 15}
	if !ok.valid(100) {
		t.Fatal("a sound group entry was refused")
	}
	for name, tc := range map[string]func(*BlobEntry){
		"member past the group":      func(e *BlobEntry) { e.GroupOffset = 6 },
		"group offset without group": func(e *BlobEntry) { e.GroupLength = 0 },
		"group too large":            func(e *BlobEntry) { e.GroupLength = maxGroupLength + 1; e.GroupOffset = maxGroupLength - 9 },
		"group past the pack":        func(e *BlobEntry) { e.Length = 101 },
	} {
		e := ok
		tc(&e)
		if e.valid(100) {
			t.Errorf("%s: accepted %+v", name, e)
		}
	}
}

// A backup's small data blobs go into groups, compressed together; large
// blobs and trees are sealed one by one. The group stores less than the
// same blobs compressed one at a time.
func TestBlobWriterGroupsSmallDataBlobs(t *testing.T) {
	r, f := blobTestRepo(t)
	var blobs [][]byte
	for i := range 300 {
		blobs = append(blobs, prose(uint64(i), 300+i*10))
	}
	for i := range 5 {
		blobs = append(blobs, incompressible(uint64(i), GroupBlobMax+i))
	}
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{})
	if err := saveAll(t.Context(), w, r, blobs); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	r2 := reopenIndexed(t, f)
	type place struct {
		pack   string
		offset uint32
	}
	groups := map[place]uint32{}
	var members, alone int64
	for i, b := range blobs {
		loc, ok := r2.index.Lookup(r.BlobID(b))
		if !ok {
			t.Fatalf("blob %d is not indexed", i)
		}
		wantGrouped := i%5 != 0 && len(b) < GroupBlobMax // saveAll makes every fifth a tree
		if loc.Grouped() != wantGrouped {
			t.Fatalf("blob %d (%d bytes, tree %v) grouped: %v", i, len(b), i%5 == 0, loc.Grouped())
		}
		if loc.Grouped() {
			groups[place{loc.Pack.String(), loc.Offset}] = loc.Length
			c, _ := compress.Compress(nil, b, compress.Auto)
			alone += int64(min(len(c), len(b)) + 28)
		}
		got, err := r2.LoadBlob(t.Context(), r.BlobID(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	for _, n := range groups {
		members += int64(n)
	}
	if members >= alone*9/10 {
		t.Fatalf("groups store %d bytes, the same blobs sealed alone %d: compressing together saved under 10%%", members, alone)
	}
	// Each pack's own header says what the index says.
	for id, p := range r2.index.Packs() {
		hdr, err := r2.ReadPackHeader(t.Context(), id, p.Size)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(hdr) != fmt.Sprint(p.Blobs) {
			t.Fatalf("pack %s: header %+v, index %+v", id, hdr, p.Blobs)
		}
	}
}

// A version 1 repository (made before groups) is written as version 1
// writers do, so older releases still read it, until it is upgraded;
// then its next backup groups small blobs and both kinds read back.
func TestVersion1RepositoryGroupsOnlyOnceUpgraded(t *testing.T) {
	r, f := blobTestRepo(t)
	if r.Config().Version != FormatVersion || !r.Config().Groups() {
		t.Fatalf("init wrote %+v, want version %d with groups", r.Config(), FormatVersion)
	}
	// Make it version 1, as an older release's init did.
	if err := r.replaceConfig(t.Context(), "test", func(c *Config) { c.Version = 1 }); err != nil {
		t.Fatal(err)
	}
	save := func(plains ...[]byte) *Repository {
		t.Helper()
		r := reopenIndexed(t, f)
		w := r.NewBlobWriter(t.Context(), BlobWriterOptions{})
		for _, p := range plains {
			if err := w.SaveBlob(t.Context(), DataBlob, r.BlobID(p), p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Finish(t.Context()); err != nil {
			t.Fatal(err)
		}
		return r
	}
	old, young := prose(1, 2000), prose(2, 2000)
	r1 := save(old)
	if l, _ := r1.index.Lookup(r1.BlobID(old)); l.Grouped() {
		t.Fatal("a version 1 repository got a group")
	}
	if err := r1.UpgradeFormat(t.Context()); err != nil {
		t.Fatal(err)
	}
	r2 := save(young)
	if r2.Config().Version != 2 {
		t.Fatalf("upgraded to version %d", r2.Config().Version)
	}
	if l, _ := r2.index.Lookup(r2.BlobID(young)); !l.Grouped() {
		t.Fatal("an upgraded repository does not group small blobs")
	}
	for _, p := range [][]byte{old, young} {
		if got, err := r2.LoadBlob(t.Context(), r2.BlobID(p)); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("load after upgrade: %v", err)
		}
	}
}

// Blobs saved near different keys (a backup's folders, read at once) go
// to different groups, so a group holds one folder's files and a restore,
// which writes a folder's files together, opens each group about once.
// More folders than groups may fill at once still store every blob.
func TestGroupsKeepEachFoldersBlobsTogether(t *testing.T) {
	r, f := blobTestRepo(t)
	folderOf := map[string]uint64{}
	w := r.NewBlobWriter(t.Context(), BlobWriterOptions{})
	var all [][]byte
	for i := range 40 * 30 { // 40 folders, interleaved as parallel walkers interleave them
		folder := uint64(i%40) + 1
		b := prose(uint64(i), 1000+i)
		all = append(all, b)
		folderOf[r.BlobID(b).String()] = folder
		if err := w.SaveBlobNear(t.Context(), folder, DataBlob, r.BlobID(b), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(t.Context()); err != nil {
		t.Fatal(err)
	}
	r2 := reopenIndexed(t, f)
	groups := 0
	for id, p := range r2.index.Packs() {
		folders := map[uint32]map[uint64]bool{}
		for _, e := range p.Blobs {
			if !e.Grouped() {
				t.Fatalf("blob %s is not grouped", e.ID)
			}
			if folders[e.Offset] == nil {
				folders[e.Offset] = map[uint64]bool{}
				groups++
			}
			folders[e.Offset][folderOf[e.ID.String()]] = true
		}
		for off, fs := range folders {
			if len(fs) != 1 {
				t.Fatalf("pack %s: the group at %d holds blobs of folders %v", id, off, fs)
			}
		}
	}
	if groups < 40 {
		t.Fatalf("%d groups for 40 folders", groups)
	}
	for i, b := range all {
		if got, err := r2.LoadBlob(t.Context(), r.BlobID(b)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
}
