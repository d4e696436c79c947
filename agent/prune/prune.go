// Package prune frees the space of blobs no recovery point uses any more,
// in a repository whose credentials may delete (a folder, or a SAS with
// delete and write), as restic's prune does:
//
//   - packs no point uses are deleted;
//   - packs partly used are repacked (their used blobs copied into new
//     packs, the old pack deleted), the emptiest first, until the space
//     left unused is at most MaxUnused of the space in use.
//
// Crash safety comes from the order of the writes, so a kill at any moment
// leaves a sound repository:
//
//  1. new packs, not yet indexed (readers still find every blob in the old
//     packs first, and a killed prune's packs are garbage for the next);
//  2. each changed pack list (refs/<point>) atomically replaced by one
//     naming the old packs and the new, right whichever copy a reader
//     picks;
//  3. a whole new index for the packs kept and the new ones;
//  4. a second look at points/ and refs/ for anything a backup saved
//     meanwhile; if such a list names a pack about to go, stop here;
//  5. the old index files deleted, so readers find the new copies first;
//  6. each changed pack list replaced by the exact one;
//  7. the packs no longer needed deleted.
//
// Nothing is deleted before the new index is stored, and at every step
// each point's list names every pack holding a blob it needs.
//
// Concurrent backups: prune holds repository.PruneLock, and a backup looks
// for it after writing its point's pack list and before the point. A
// backup that got past that look before the lock was taken has its list
// stored, which prune reads (the first listing or the second look) and
// whose packs it keeps. Any other backup finishing during or after the
// prune is refused with a clear message if it reuses a pack the prune
// removed (see repository.SavePoint).
package prune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/agent/crypto"
	"github.com/coffer-backup/coffer/agent/repository"
	"github.com/coffer-backup/coffer/agent/treerefs"
)

// Options tune a prune.
type Options struct {
	// MaxUnused is the share of the space in use that may stay unused in
	// partly used packs (0.05: 5 %). Negative means no limit: never
	// repack, only delete unused packs.
	MaxUnused float64
	// DryRun plans and reports without writing or deleting anything.
	DryRun bool
	// Log receives progress; nil discards it.
	Log *slog.Logger
	// beforeDelete, for tests, runs just before the second look.
	beforeDelete func()
}

// Stats say what a prune found and did (or, in a dry run, would do).
type Stats struct {
	Points        int   `json:"points"`
	Packs         int   `json:"packs"`
	BlobsUsed     int   `json:"blobsUsed"`
	BlobsUnused   int   `json:"blobsUnused"`
	BytesUsed     int64 `json:"bytesUsed"`   // stored size of the blobs in use
	BytesUnused   int64 `json:"bytesUnused"` // stored size of the rest, duplicates included
	PacksDeleted  int   `json:"packsDeleted"`
	PacksRepacked int   `json:"packsRepacked"`
	PacksKept     int   `json:"packsKept"`
	// KeptForLists are packs kept whole because a pack list without its
	// point names them (a backup saving its point, or a stopped one).
	KeptForLists      int   `json:"keptForLists"`
	BytesFreed        int64 `json:"bytesFreed"`    // stored size of the packs deleted
	BytesRepacked     int64 `json:"bytesRepacked"` // stored size of the blobs copied
	BytesWritten      int64 `json:"bytesWritten"`  // size of the new packs
	UnusedAfter       int64 `json:"unusedAfter"`   // unused bytes left in kept packs
	PacksWritten      int   `json:"packsWritten"`
	IndexFilesWritten int   `json:"indexFilesWritten"`
	IndexFilesDeleted int   `json:"indexFilesDeleted"`
	ListsRewritten    int   `json:"listsRewritten"`
	// TempFilesRemoved are temp files that interrupted writes (a backup
	// killed while a pack was spooling, say) left in a local folder.
	TempFilesRemoved int  `json:"tempFilesRemoved"`
	DryRun           bool `json:"dryRun,omitempty"`
}

// ErrDamaged stops a prune that cannot see everything points need: it
// deletes only what it is sure no point uses.
var ErrDamaged = errors.New("the repository is damaged, so prune deletes nothing")

// ErrRaced stops a prune before it deletes when a backup saved a point
// needing a pack it was about to delete.
var ErrRaced = errors.New("a backup saved a point during the prune")

// packPlan is what happens to one pack.
type packPlan struct {
	size              int64
	used, unused      int64 // sealed bytes
	usedN, unusedN    int
	keepForList       bool
	repack, deleteAll bool
	usedBlobs         []repository.BlobEntry // the copies in use, which a repack keeps
}

// Prune runs a prune. The repository must be opened but need not be
// indexed: Prune loads the index after taking the lock.
func Prune(ctx context.Context, repo *repository.Repository, o Options) (Stats, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := Stats{DryRun: o.DryRun}
	if !o.DryRun {
		release, err := repo.AcquirePruneLock(ctx)
		if err != nil {
			return st, err
		}
		defer func() {
			if err := release(context.WithoutCancel(ctx)); err != nil {
				log.ErrorContext(ctx, "prune lock", "err", err)
			}
		}()
	}
	ist, err := repo.LoadIndex(ctx)
	if err != nil {
		return st, fmt.Errorf("load the index: %w", err)
	}
	if len(ist.DamagedIndex) > 0 || len(ist.DamagedPacks) > 0 {
		return st, fmt.Errorf("%w: damaged index files %v, damaged packs %v; run `coffer check --read-data` and repair first", ErrDamaged, ist.DamagedIndex, ist.DamagedPacks)
	}
	oldIndex := repo.LoadedIndexFiles()
	if !o.DryRun {
		// Holding the lock: no backup starts a write meanwhile, and those
		// left from before are a day old at least.
		n, err := repo.SweepTemps(ctx)
		if err != nil {
			log.WarnContext(ctx, "leftover temp files not all removed", "err", err)
		}
		st.TempFilesRemoved = n
	}

	ids, err := repo.ListPoints(ctx)
	if err != nil {
		return st, err
	}
	points, err := repo.Points(ctx)
	if err != nil {
		return st, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	st.Points = len(points)

	// Packs a list without its point names are kept whole: it may be a
	// backup saving its point right now.
	listed := map[crypto.ID]bool{}
	for _, id := range ids.Orphans {
		packs, err := repo.ReadRefs(ctx, id)
		if err != nil {
			return st, fmt.Errorf("%w: %v; delete refs/%s if no backup is saving that point", ErrDamaged, err, id)
		}
		for _, p := range packs {
			listed[p] = true
		}
	}

	trees := treerefs.New(repo)
	used := map[crypto.ID]bool{}
	for _, p := range points {
		if err := trees.Walk(ctx, p.Tree, map[crypto.ID]bool{}, func(id crypto.ID) { used[id] = true }); err != nil {
			return st, fmt.Errorf("%w: point %s: %v; run `coffer check`", ErrDamaged, p.ID, err)
		}
	}

	idx := repo.Index()
	packs := idx.Packs()
	st.Packs = len(packs)
	plans := make(map[crypto.ID]*packPlan, len(packs))
	for id, pi := range packs {
		pp := &packPlan{size: pi.Size, keepForList: listed[id]}
		for _, e := range pi.Blobs {
			loc, _ := idx.Lookup(e.ID)
			// A group member's share: a repack groups the members in use
			// anew, so the others' bytes are freed.
			if used[e.ID] && loc.Pack == id && loc.Offset == e.Offset {
				pp.used += e.StoredSize()
				pp.usedN++
				pp.usedBlobs = append(pp.usedBlobs, e)
			} else {
				pp.unused += e.StoredSize()
				pp.unusedN++
			}
		}
		plans[id] = pp
		st.BytesUsed += pp.used
		st.BytesUnused += pp.unused
		st.BlobsUsed += pp.usedN
		st.BlobsUnused += pp.unusedN
	}
	for id := range used {
		if !idx.Has(id) {
			return st, fmt.Errorf("%w: blob %s that a point uses is in no pack; run `coffer check`", ErrDamaged, id)
		}
	}

	// Decide. Packs with nothing in use go; partly used ones are repacked,
	// the emptiest first, while the unused space left is above the limit.
	var partly []crypto.ID
	var unusedLeft int64
	for id, pp := range plans {
		switch {
		case pp.keepForList:
			st.KeptForLists++
		case pp.usedN == 0:
			pp.deleteAll = true
		case pp.unusedN > 0:
			partly = append(partly, id)
			unusedLeft += pp.unused
		}
	}
	slices.SortFunc(partly, func(a, b crypto.ID) int {
		pa, pb := plans[a], plans[b]
		// Higher unused share first: more space freed per byte copied.
		ra, rb := float64(pa.unused)/float64(pa.size), float64(pb.unused)/float64(pb.size)
		if ra != rb {
			if ra > rb {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a[:]), string(b[:]))
	})
	if o.MaxUnused >= 0 {
		limit := int64(o.MaxUnused * float64(st.BytesUsed))
		for _, id := range partly {
			if unusedLeft <= limit {
				break
			}
			plans[id].repack = true
			unusedLeft -= plans[id].unused
		}
	}
	if !repo.CanReplace() {
		for _, id := range partly {
			if plans[id].repack {
				log.WarnContext(ctx, "this storage cannot replace pack lists, so partly used packs are not repacked", "storage", repo.Backend().Location())
				break
			}
		}
		for _, id := range partly {
			plans[id].repack = false
		}
	}
	var gone []crypto.ID // deleted or repacked
	for id, pp := range plans {
		switch {
		case pp.deleteAll:
			st.PacksDeleted++
			st.BytesFreed += pp.size
			gone = append(gone, id)
		case pp.repack:
			st.PacksRepacked++
			st.BytesRepacked += pp.used
			st.BytesFreed += pp.size
			gone = append(gone, id)
		default:
			st.PacksKept++
			st.UnusedAfter += pp.unused
		}
	}
	log.InfoContext(ctx, "prune plan", "points", st.Points, "packs", st.Packs, "delete", st.PacksDeleted, "repack", st.PacksRepacked,
		"keptForLists", st.KeptForLists, "bytesUsed", st.BytesUsed, "bytesUnused", st.BytesUnused)
	if o.DryRun || len(gone) == 0 {
		return st, nil
	}

	// Blobs stored more than once (a backup killed before its index, a
	// prune killed after repacking): every pack with a copy. A reader's
	// index may pick any copy, so a pack list names every surviving one.
	dups := map[crypto.ID][]crypto.ID{}
	for id, pi := range packs {
		for _, e := range pi.Blobs {
			if loc, _ := idx.Lookup(e.ID); loc.Pack != id {
				dups[e.ID] = append(dups[e.ID], id)
			}
		}
	}
	survives := func(pack crypto.ID) bool {
		pp := plans[pack]
		return pp != nil && !pp.deleteAll && !pp.repack
	}

	// 1. Repack into new packs, not indexed yet: until the index names
	// them, readers find the blobs in the old packs, which the pack lists
	// name. A blob with a copy in a pack that stays is not copied again.
	newLoc := map[crypto.ID]crypto.ID{}
	if st.PacksRepacked > 0 {
		copyElsewhere := func(blob crypto.ID) bool { return slices.ContainsFunc(dups[blob], survives) }
		if err := repack(ctx, repo, plans, copyElsewhere, newLoc, &st); err != nil {
			return st, err
		}
	}
	// where calls fn with every pack holding blob after the prune.
	where := func(blob crypto.ID, fn func(crypto.ID)) bool {
		found := false
		if p, ok := newLoc[blob]; ok {
			fn(p)
			found = true
		}
		if loc, ok := idx.Lookup(blob); ok && survives(loc.Pack) {
			fn(loc.Pack)
			found = true
		}
		for _, p := range dups[blob] {
			if survives(p) {
				fn(p)
				found = true
			}
		}
		return found
	}

	// 2. Pack lists naming the old packs and the new, so a list is right
	// whichever copy of a blob a reader's index picks.
	type change struct {
		point      string
		have, want []crypto.ID
	}
	var changes []change
	for _, p := range points {
		need := map[crypto.ID]bool{}
		now := map[crypto.ID]bool{} // every copy stored now, whatever goes
		var missing error
		err := trees.Walk(ctx, p.Tree, map[crypto.ID]bool{}, func(b crypto.ID) {
			if loc, ok := idx.Lookup(b); ok {
				now[loc.Pack] = true
			}
			for _, pk := range dups[b] {
				now[pk] = true
			}
			if !where(b, func(pk crypto.ID) { need[pk] = true }) && missing == nil {
				missing = fmt.Errorf("blob %s of point %s has no pack after repacking", b, p.ID)
			}
		})
		if err == nil {
			err = missing
		}
		if err != nil {
			return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
		}
		want := sortedIDs(need)
		have, err := repo.ReadRefs(ctx, p.ID)
		if err != nil {
			return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
		}
		if slices.Equal(want, have) || !repo.CanReplace() && subset(want, have) {
			// Naming a deleted pack too costs nothing; nothing was repacked.
			continue
		}
		changes = append(changes, change{p.ID, have, want})
		if subset(want, have) && subset(sortedIDs(now), have) {
			continue
		}
		both := now
		for _, id := range slices.Concat(have, want) {
			both[id] = true
		}
		if err := repo.ReplaceRefs(ctx, p.ID, sortedIDs(both)); err != nil {
			return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
		}
	}

	// 3. The whole index anew: the packs kept and the new ones.
	keep := map[crypto.ID]*repository.PackInfo{}
	for id, pp := range plans {
		if !pp.deleteAll && !pp.repack {
			keep[id] = packs[id]
		}
	}
	for id, pi := range repo.Index().Packs() {
		if _, old := packs[id]; !old {
			keep[id] = pi
		}
	}
	written, err := repo.WriteIndex(ctx, keep)
	st.IndexFilesWritten += len(written)
	if err != nil {
		return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
	}

	// 4. A second look: a backup that passed its check for the lock just
	// before prune took it may have saved its point since the first
	// listing. Its list names every pack it needs.
	if o.beforeDelete != nil {
		o.beforeDelete()
	}
	goneSet := map[crypto.ID]bool{}
	for _, id := range gone {
		goneSet[id] = true
	}
	again, err := repo.ListPoints(ctx)
	if err != nil {
		return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range slices.Concat(ids.Complete, ids.Orphans) {
		seen[id] = true
	}
	for _, id := range slices.Concat(again.Complete, again.Orphans) {
		if seen[id] {
			continue
		}
		ps, err := repo.ReadRefs(ctx, id)
		if err != nil {
			return st, fmt.Errorf("prune stopped before deleting anything: %w", err)
		}
		for _, pk := range ps {
			if goneSet[pk] {
				return st, fmt.Errorf("%w (%s) that needs pack %s, which prune was about to delete; nothing was deleted: run prune again", ErrRaced, id, pk)
			}
		}
	}

	// 5. The index files replaced. Readers now find the old packs, if at
	// all, from their headers, after every indexed copy.
	rest := slices.DeleteFunc(slices.Clone(oldIndex), func(n string) bool { return slices.Contains(written, n) })
	if err := deleteAll(ctx, rest, repo.Delete); err != nil {
		return st, fmt.Errorf("prune stopped while deleting replaced index files (run it again to finish): %w", err)
	}
	st.IndexFilesDeleted = len(rest)

	// 6. Pack lists naming exactly what each point needs.
	for _, c := range changes {
		if err := repo.ReplaceRefs(ctx, c.point, c.want); err != nil {
			return st, fmt.Errorf("prune stopped before deleting packs (run it again to finish): %w", err)
		}
		st.ListsRewritten++
	}

	// 7. The packs no longer needed.
	names := make([]string, len(gone))
	for i, id := range gone {
		names[i] = repository.PackName(id)
	}
	slices.Sort(names)
	if err := deleteAll(ctx, names, repo.Delete); err != nil {
		return st, fmt.Errorf("prune stopped while deleting packs (run it again to finish): %w", err)
	}
	log.InfoContext(ctx, "prune done", "packsDeleted", st.PacksDeleted, "packsRepacked", st.PacksRepacked, "packsWritten", st.PacksWritten,
		"bytesFreed", st.BytesFreed, "bytesWritten", st.BytesWritten, "listsRewritten", st.ListsRewritten)
	return st, nil
}

// repack copies the used blobs of the packs marked for it, as they are
// sealed (a blob's encryption binds its type and ID, not its pack), into
// new packs, data and trees apart, after authenticating each. It stores
// the packs without indexing them and records in newLoc where each blob
// went.
func repack(ctx context.Context, repo *repository.Repository, plans map[crypto.ID]*packPlan, copyElsewhere func(crypto.ID) bool, newLoc map[crypto.ID]crypto.ID, st *Stats) error {
	size := repo.Config().PackSize
	packers := map[repository.BlobType]*repository.Packer{}
	flush := func(p *repository.Packer) error {
		if p.Count() == 0 {
			return nil
		}
		data, id, entries, err := p.Finish(repo.Key())
		if err != nil {
			return err
		}
		if err := repo.SavePack(ctx, data, id, entries); err != nil {
			return err
		}
		for _, e := range entries {
			newLoc[e.ID] = id
		}
		st.PacksWritten++
		st.BytesWritten += int64(len(data))
		p.Reset()
		return nil
	}
	// add puts a sealed blob or group of n bytes into the packer of its
	// type, storing the packer's pack first if it would overflow.
	add := func(t repository.BlobType, n int, put func(p *repository.Packer)) error {
		p := packers[t]
		if p == nil {
			p = repository.NewPacker(size + 1<<16)
			packers[t] = p
		}
		if p.Count() > 0 && p.Size()+n > size {
			if err := flush(p); err != nil {
				return fmt.Errorf("prune stopped before deleting anything: %w", err)
			}
		}
		put(p)
		return nil
	}
	group := regrouper{repo: repo, store: add}
	group.target, group.maxMembers = repository.GroupLimits(size)
	ids := make([]crypto.ID, 0, st.PacksRepacked)
	for id, pp := range plans {
		if pp.repack {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b crypto.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	for _, id := range ids {
		pp := plans[id]
		data, err := repo.ReadPack(ctx, id, 0, pp.size)
		if err != nil {
			return fmt.Errorf("prune stopped before deleting anything: read pack %s to repack it: %w", id, err)
		}
		var g repository.GroupBuf
		for _, e := range pp.usedBlobs {
			if copyElsewhere(e.ID) {
				continue
			}
			sealed := data[int64(e.Offset) : int64(e.Offset)+int64(e.Length)]
			if e.Grouped() {
				// Grouped anew with the other members in use: a group's
				// unused members are not copied.
				plain, err := repo.OpenMember(&g, e, sealed)
				if err != nil {
					return fmt.Errorf("%w: pack %s: %v; run `coffer check --read-data`", ErrDamaged, id, err)
				}
				if err := group.add(e, plain); err != nil {
					return err
				}
				continue
			}
			if _, err := repo.OpenBlob(e, sealed); err != nil {
				return fmt.Errorf("%w: pack %s: %v; run `coffer check --read-data`", ErrDamaged, id, err)
			}
			if err := add(e.Type, len(sealed), func(p *repository.Packer) {
				p.Add(e.Type, e.ID, sealed, int(e.RawLength), e.Method)
			}); err != nil {
				return err
			}
		}
	}
	if err := group.seal(); err != nil {
		return err
	}
	for _, t := range []repository.BlobType{repository.DataBlob, repository.TreeBlob} {
		if p := packers[t]; p != nil {
			if err := flush(p); err != nil {
				return fmt.Errorf("prune stopped before deleting anything: %w", err)
			}
		}
	}
	return nil
}

// regrouper gathers the group members a repack keeps into new groups.
type regrouper struct {
	repo               *repository.Repository
	target, maxMembers int
	store              func(t repository.BlobType, n int, put func(p *repository.Packer)) error
	group              repository.GroupBuilder
}

func (g *regrouper) add(e repository.BlobEntry, plain []byte) error {
	g.group.Add(e.Type, e.ID, plain)
	if !g.group.Full(g.target, g.maxMembers) {
		return nil
	}
	return g.seal()
}

func (g *regrouper) seal() error {
	if g.group.Empty() {
		return nil
	}
	sealed, m, members, _ := g.repo.SealGroupOf(&g.group, nil, nil)
	return g.store(members[0].Type, len(sealed), func(p *repository.Packer) { p.AddGroup(sealed, m, members) })
}

func deleteAll(ctx context.Context, names []string, del func(context.Context, string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, n := range names {
		g.Go(func() error { return del(gctx, n) })
	}
	return g.Wait()
}

// subset reports whether every ID of a is in b; b is sorted.
func subset(a, b []crypto.ID) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearchFunc(b, x, func(e, t crypto.ID) int { return strings.Compare(string(e[:]), string(t[:])) }); !ok {
			return false
		}
	}
	return true
}

func sortedIDs(set map[crypto.ID]bool) []crypto.ID {
	out := make([]crypto.ID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b crypto.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}
