// Package containers manages each machine's blob container from the
// control plane, which holds full data rights (agents only create, read and
// list): creating and purging containers, deleting recovery points, checking
// that a point's packs are all stored, collecting packs no point needs, and
// measuring usage. None of it needs the repository key: it works from the
// plaintext pack reference lists (refs/<point>) alone.
package containers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
)

// concurrency bounds parallel reads and deletes in one container: enough to
// hide latency without tripping the account's request throttling.
const concurrency = 8

// Containers manages the machines' containers of one storage account.
type Containers struct {
	svc *service.Client
	now func() time.Time
	log *slog.Logger

	// SoftDeleteFor is how long what is removed on an agent's request (a
	// retired key file) stays undeletable (COFFER_SOFT_DELETE_DAYS).
	SoftDeleteFor time.Duration

	checks *limiter

	// beforeRecheck, if set, runs between GC's decision and its second look
	// at refs/: tests use it to finish a backup in the middle of a GC.
	beforeRecheck func()
}

// New manages containers through svc, which must have data rights to
// create and delete containers and blobs (Storage Blob Data Contributor or
// the account key). now is the clock GC measures pack age with.
func New(svc *service.Client, now func() time.Time) *Containers {
	if now == nil {
		now = time.Now
	}
	return &Containers{svc: svc, now: now, log: slog.Default(), SoftDeleteFor: DefaultSoftDelete, checks: newLimiter()}
}

// SetLogger sends the package's logs to l.
func (c *Containers) SetLogger(l *slog.Logger) { c.log = l.With("component", "containers") }

// Ensure creates the container if it does not exist yet, with no public access.
func (c *Containers) Ensure(ctx context.Context, name string) error {
	if err := sas.CheckContainerName(name); err != nil {
		return err
	}
	_, err := c.svc.CreateContainer(ctx, name, nil)
	switch {
	case err == nil:
		c.log.InfoContext(ctx, "container created", "container", name)
		return nil
	case bloberror.HasCode(err, bloberror.ContainerAlreadyExists):
		return nil
	case bloberror.HasCode(err, bloberror.ContainerBeingDeleted):
		return fmt.Errorf("create container %s: it is still being deleted; retry in a minute: %w", name, err)
	default:
		return fmt.Errorf("create container %s: %w", name, err)
	}
}

// Delete deletes the container and everything in it: a machine's data
// purged for good. A container that is already gone is fine.
func (c *Containers) Delete(ctx context.Context, name string) error {
	if err := sas.CheckContainerName(name); err != nil {
		return err
	}
	_, err := c.svc.DeleteContainer(ctx, name, nil)
	switch {
	case err == nil:
		c.log.InfoContext(ctx, "container deleted", "container", name)
		return nil
	case bloberror.HasCode(err, bloberror.ContainerNotFound, bloberror.ContainerBeingDeleted):
		return nil
	default:
		return fmt.Errorf("delete container %s: %w", name, err)
	}
}

// DeletePoint deletes a recovery point: points/<id>, then refs/<id>. Its
// packs stay until CollectGarbage finds no other point needs them. Objects
// that are already gone are fine, so a failed call can simply be repeated.
func (c *Containers) DeletePoint(ctx context.Context, name, pointID string) error {
	if err := sas.CheckContainerName(name); err != nil {
		return err
	}
	if !layout.ValidID(pointID) {
		return fmt.Errorf("point ID %q is not 64 lower-case hex digits", pointID)
	}
	cc := c.svc.NewContainerClient(name)
	// points/ goes first: if we stop halfway, the leftover refs/ only keeps
	// packs alive, whereas a point without its refs/ could lose its packs.
	for _, obj := range []string{layout.Point(pointID), layout.Refs(pointID)} {
		_, err := cc.NewBlobClient(obj).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: new(blob.DeleteSnapshotsOptionTypeInclude)})
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return fmt.Errorf("delete %s in container %s: %w; retry, deleting a point is idempotent", obj, name, err)
		}
	}
	c.log.InfoContext(ctx, "point deleted", "container", name, "point", pointID)
	return nil
}

// GCResult describes one garbage collection.
type GCResult struct {
	Referenced   int      // stored packs past the grace period kept because a refs/ object names them
	Deleted      int      // packs deleted
	KeptYoung    int      // unreferenced packs kept because they are newer than the grace period
	BytesFreed   int64    // size of the deleted packs
	DeletedPacks []string // IDs of the deleted packs, sorted
	// Quarantined are the refs/ objects this collection set aside: not
	// valid pack lists, or lists naming another point than their own name,
	// of points the control plane never registered. Later collections
	// leave them out without reporting them again.
	Quarantined []Quarantined
	// OrphansRemoved are the points whose orphaned pack lists (and point
	// objects) this collection deleted (GCOptions.OrphanAfter), sorted.
	OrphansRemoved []string
}

// GCOptions tune a collection.
type GCOptions struct {
	// Grace: packs modified more recently are kept (by the injected clock).
	Grace time.Duration
	// Registered reports whether a point is recorded by the control plane
	// (in any state). Such a point's list was checked when it was
	// registered and cannot have been replaced since (agents only create),
	// so if it no longer decodes, something is deeply wrong: the collection
	// stops without deleting anything instead of quarantining it. nil
	// means no point is registered.
	Registered func(pointID string) bool
	// OrphanAfter: a pack list whose point the control plane has not
	// registered, last modified longer ago than this (by the injected
	// clock), is an orphan, left by a backup killed between writing its
	// list and registering its point, or by one whose point was refused.
	// Such a list would keep its packs forever, so it is deleted, with its
	// point object if any, once RegisteredNow confirms that the point is
	// still not registered. Zero keeps every list.
	OrphanAfter time.Duration
	// RegisteredNow reports whether a point is registered at the moment it
	// is asked: Registered may be a snapshot taken before the collection,
	// and an orphan is deleted only if this says no. Required with
	// OrphanAfter.
	RegisteredNow func(ctx context.Context, pointID string) (bool, error)
}

// CollectGarbage is Collect with only a grace period.
func (c *Containers) CollectGarbage(ctx context.Context, name string, grace time.Duration) (GCResult, error) {
	return c.Collect(ctx, name, GCOptions{Grace: grace})
}

// Collect deletes the packs under data/ that no refs/ object names and
// that were last modified more than opts.Grace ago (by the injected clock).
// The grace period protects packs a running backup has uploaded but not yet
// referenced.
//
// A refs/ object that is not a valid pack list, that names another point
// than its own name, or whose name is not refs/<point ID> cannot have been
// accepted at registration (the control plane checks every list before it
// records a point, and agents cannot overwrite), so it is an agent's junk:
// it is quarantined (marked with metadata, left in place for inspection,
// and reported in the result so an alert can be raised) and the collection
// goes on without it. Only a registered point's list that no longer decodes,
// or a failure to read, stops the collection before it deletes anything.
//
// Before deleting it lists refs/ again and adds the packs of any list that
// appeared or changed meanwhile, which narrows, but cannot close, the race
// with a backup that finishes during the collection; registration then
// refuses a point whose packs are gone (point_incomplete), so the worst a
// lost race costs is a backup run again.
//
// Packs are deleted eight at a time. If a deletion fails, it stops and
// returns what it has deleted so far with the error; running it again is
// safe.
func (c *Containers) Collect(ctx context.Context, name string, opts GCOptions) (GCResult, error) {
	var res GCResult
	if err := sas.CheckContainerName(name); err != nil {
		return res, err
	}
	grace := opts.Grace
	if grace < 0 {
		return res, fmt.Errorf("GC grace period %v is negative; use at least the longest a backup runs", grace)
	}
	if opts.OrphanAfter < 0 || (opts.OrphanAfter > 0 && opts.RegisteredNow == nil) {
		return res, fmt.Errorf("GC orphan age %v needs a positive age and a RegisteredNow check", opts.OrphanAfter)
	}
	cc := c.svc.NewContainerClient(name)
	cutoff := c.now().Add(-grace)

	// The candidates are the stored packs older than the grace period, in
	// pack order, and the lists only strike them off. Memory is therefore
	// 40 bytes a stored pack (what the machine really uploaded), whatever
	// the lists name: an agent cannot grow it by writing lists of packs
	// that do not exist.
	var cands candidates
	var unrecognised int
	err := list(ctx, cc, layout.DataPrefix, func(it *container.BlobItem) error {
		sid, ok := layout.ParsePack(*it.Name)
		if !ok {
			// Not a pack name we wrote: never delete what we do not understand.
			unrecognised++
			return nil
		}
		p := it.Properties
		if p == nil || p.LastModified == nil || !p.LastModified.Before(cutoff) {
			res.KeptYoung++
			return nil
		}
		id, _ := packrefs.ParseID(sid)
		var size int64
		if p.ContentLength != nil {
			size = *p.ContentLength
		}
		cands.add(id, size)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("garbage collection of container %s deleted nothing: list packs: %w", name, err)
	}
	if unrecognised > 0 {
		c.log.WarnContext(ctx, "objects under data/ are not named like packs; left alone", "container", name, "objects", unrecognised)
	}
	cands.seal()

	keep := newKeepSet(c, opts.Registered, cands.mark)
	if opts.OrphanAfter > 0 {
		keep.orphanCutoff, keep.registeredNow, keep.container = c.now().Add(-opts.OrphanAfter), opts.RegisteredNow, name
	}
	nRefs, err := keep.addRefs(ctx, cc)
	if err != nil {
		return res, fmt.Errorf("garbage collection of container %s deleted nothing: %w", name, err)
	}
	if cands.unmarked() > 0 {
		if c.beforeRecheck != nil {
			c.beforeRecheck()
		}
		reread, err := keep.addRefs(ctx, cc)
		if err != nil {
			return res, fmt.Errorf("garbage collection of container %s deleted nothing: second look at refs/: %w", name, err)
		}
		if reread > 0 {
			c.log.InfoContext(ctx, "pack lists appeared during garbage collection", "container", name, "lists", reread)
		}
	}
	res.Referenced = len(cands.ids) - cands.unmarked()
	res.Quarantined = keep.quarantined
	res.OrphansRemoved = keep.orphans
	slices.Sort(res.OrphansRemoved)
	for _, q := range res.Quarantined {
		c.log.WarnContext(ctx, "pack list quarantined: garbage collection leaves it out", "container", name, "object", q.Object, "reason", q.Reason)
	}

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, id := range cands.ids {
		if cands.marked(i) {
			continue
		}
		size := cands.sizes[i]
		g.Go(func() error {
			obj := layout.Pack(id.String())
			// Delete exactly the object judged unreferenced: nothing written
			// since the cutoff (packs are never rewritten, but be sure).
			opts := &blob.DeleteOptions{DeleteSnapshots: new(blob.DeleteSnapshotsOptionTypeInclude),
				AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfUnmodifiedSince: &cutoff}}}
			_, err := cc.NewBlobClient(obj).Delete(gctx, opts)
			switch {
			case err == nil:
				mu.Lock()
				res.Deleted++
				res.BytesFreed += size
				res.DeletedPacks = append(res.DeletedPacks, id.String())
				mu.Unlock()
				return nil
			case bloberror.HasCode(err, bloberror.BlobNotFound):
				return nil // someone else got there first
			case bloberror.HasCode(err, bloberror.ConditionNotMet):
				c.log.WarnContext(gctx, "pack changed during garbage collection; kept", "container", name, "pack", id.String())
				return nil
			default:
				return fmt.Errorf("delete %s: %w", obj, err)
			}
		})
	}
	err = g.Wait()
	slices.Sort(res.DeletedPacks)
	c.log.InfoContext(ctx, "garbage collection",
		"container", name, "refs", nRefs, "referenced", res.Referenced, "deleted", res.Deleted,
		"bytesFreed", res.BytesFreed, "keptYoung", res.KeptYoung, "grace", grace, "err", err)
	if err != nil {
		return res, fmt.Errorf("garbage collection of container %s stopped after deleting %d packs; run it again: %w", name, res.Deleted, err)
	}
	return res, nil
}

// candidates are packs GC may delete, sorted by ID, with a bit each for
// "some list names it", set concurrently by the list readers.
type candidates struct {
	ids    []packrefs.ID
	sizes  []int64
	named  []atomic.Uint64
	sorted bool
}

func (c *candidates) add(id packrefs.ID, size int64) {
	c.ids = append(c.ids, id)
	c.sizes = append(c.sizes, size)
}

// seal sorts (the listing is sorted already; this only makes sure) and
// makes the bits.
func (c *candidates) seal() {
	if !slices.IsSortedFunc(c.ids, func(a, b packrefs.ID) int { return bytes.Compare(a[:], b[:]) }) {
		idx := make([]int, len(c.ids))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return bytes.Compare(c.ids[a][:], c.ids[b][:]) })
		ids, sizes := make([]packrefs.ID, len(idx)), make([]int64, len(idx))
		for i, j := range idx {
			ids[i], sizes[i] = c.ids[j], c.sizes[j]
		}
		c.ids, c.sizes = ids, sizes
	}
	c.named = make([]atomic.Uint64, (len(c.ids)+63)/64)
}

// mark notes that a list names id; ids that are not candidates are ignored.
func (c *candidates) mark(id packrefs.ID) {
	i, ok := slices.BinarySearchFunc(c.ids, id, func(a, b packrefs.ID) int { return bytes.Compare(a[:], b[:]) })
	if ok {
		c.named[i/64].Or(1 << (i % 64))
	}
}

func (c *candidates) marked(i int) bool { return c.named[i/64].Load()&(1<<(i%64)) != 0 }

func (c *candidates) unmarked() int {
	n := 0
	for i := range c.ids {
		if !c.marked(i) {
			n++
		}
	}
	return n
}

// Usage is what a container holds.
type Usage struct {
	Bytes   int64 // total size of all objects
	Objects int   // number of objects
	Packs   int   // number of objects under data/
}

// Usage adds up the container's objects.
func (c *Containers) Usage(ctx context.Context, name string) (Usage, error) {
	var u Usage
	if err := sas.CheckContainerName(name); err != nil {
		return u, err
	}
	err := list(ctx, c.svc.NewContainerClient(name), "", func(it *container.BlobItem) error {
		u.Objects++
		if it.Properties != nil && it.Properties.ContentLength != nil {
			u.Bytes += *it.Properties.ContentLength
		}
		if strings.HasPrefix(*it.Name, layout.DataPrefix) {
			u.Packs++
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("usage of container %s: %w", name, err)
	}
	return u, nil
}

// keepSet reads the refs/ objects, passing every pack they name to mark,
// and remembers which version of each object it has read.
type keepSet struct {
	c           *Containers
	registered  func(string) bool
	mark        func(packrefs.ID)
	mu          sync.Mutex
	read        map[string]azcore.ETag // refs object name → ETag read
	quarantined []Quarantined
	// orphanCutoff is zero unless orphans are removed: an unregistered
	// point's list last modified before it is one (GCOptions.OrphanAfter).
	orphanCutoff  time.Time
	registeredNow func(context.Context, string) (bool, error)
	container     string
	orphans       []string // points whose orphan lists were deleted
}

func newKeepSet(c *Containers, registered func(string) bool, mark func(packrefs.ID)) *keepSet {
	if registered == nil {
		registered = func(string) bool { return false }
	}
	return &keepSet{c: c, registered: registered, mark: mark, read: map[string]azcore.ETag{}}
}

// addRefs lists refs/ and reads every object not yet read in its current
// version, adding its packs, and quarantines the objects that are junk. It
// returns how many it read. A refs object deleted between the listing and
// the read belongs to a deleted point and is skipped; any other failure is
// an error.
func (k *keepSet) addRefs(ctx context.Context, cc *container.Client) (int, error) {
	type todo struct {
		obj    string
		point  string // "" if the name is not refs/<point ID>
		etag   azcore.ETag
		orphan bool // old enough to be an orphan if its point is not registered
	}
	var todos []todo
	opts := &container.ListBlobsFlatOptions{Prefix: to.Ptr(layout.RefsPrefix), Include: container.ListBlobsInclude{Metadata: true}}
	pager := cc.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list refs/: %w", err)
		}
		if page.Segment == nil {
			continue
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil {
				continue
			}
			var etag azcore.ETag
			if it.Properties != nil && it.Properties.ETag != nil {
				etag = *it.Properties.ETag
			}
			k.mu.Lock()
			prev, seen := k.read[*it.Name]
			k.mu.Unlock()
			if seen && etag != "" && sameETag(prev, etag) {
				continue
			}
			point, _ := layout.ParseRefs(*it.Name)
			if quarantined(it.Metadata) && !(point != "" && k.registered(point)) {
				continue // set aside by an earlier collection
			}
			orphan := point != "" && !k.orphanCutoff.IsZero() && !k.registered(point) &&
				it.Properties != nil && it.Properties.LastModified != nil && it.Properties.LastModified.Before(k.orphanCutoff)
			todos = append(todos, todo{*it.Name, point, etag, orphan})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, t := range todos {
		g.Go(func() error {
			if t.point == "" {
				return k.setAside(gctx, cc, t.obj, t.etag, "the name is not refs/<point ID>")
			}
			if t.orphan {
				removed, err := k.removeOrphan(gctx, t.point)
				if err != nil || removed {
					return err
				}
				// Registered since the snapshot: its list is read below.
			}
			etag, err := k.readRefs(gctx, cc, t.obj, t.point)
			if bloberror.HasCode(err, bloberror.BlobNotFound) {
				return nil
			}
			if errors.Is(err, packrefs.ErrInvalid) {
				if k.registered(t.point) {
					return fmt.Errorf("%w; point %s is registered, so its list was valid once: inspect the object, nothing was deleted", err, t.point)
				}
				return k.setAside(gctx, cc, t.obj, t.etag, err.Error())
			}
			if err != nil {
				return err
			}
			k.mu.Lock()
			k.read[t.obj] = etag
			k.mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(todos), nil
}

// removeOrphan deletes an orphaned list and its point object, unless the
// point has been registered since the collection began.
func (k *keepSet) removeOrphan(ctx context.Context, point string) (bool, error) {
	registered, err := k.registeredNow(ctx, point)
	if err != nil {
		return false, fmt.Errorf("is point %s registered: %w", point, err)
	}
	if registered {
		return false, nil
	}
	if err := k.c.DeletePoint(ctx, k.container, point); err != nil {
		return false, err
	}
	k.c.log.InfoContext(ctx, "orphaned pack list deleted: its point was never registered", "container", k.container, "point", point)
	k.mu.Lock()
	k.orphans = append(k.orphans, point)
	k.mu.Unlock()
	return true, nil
}

// setAside quarantines obj and notes it; an object changed since it was
// listed is looked at again by the next collection.
func (k *keepSet) setAside(ctx context.Context, cc *container.Client, obj string, etag azcore.ETag, reason string) error {
	err := k.c.quarantine(ctx, cc, obj, etag, reason)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ConditionNotMet) {
		return nil
	}
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.quarantined = append(k.quarantined, Quarantined{Object: obj, Reason: reason})
	k.read[obj] = "" // never counted as read
	k.mu.Unlock()
	return nil
}

func quarantined(md map[string]*string) bool {
	for key := range md {
		if strings.EqualFold(key, metaQuarantined) {
			return true
		}
	}
	return false
}

// readRefs streams one refs/ object, marking its packs, checking that it
// names the point its object name says (before any pack). Packs of a list
// that turns out invalid half-way stay marked for this run: that only keeps
// more, once.
func (k *keepSet) readRefs(ctx context.Context, cc *container.Client, obj, point string) (azcore.ETag, error) {
	resp, err := cc.NewBlobClient(obj).DownloadStream(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", obj, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > packrefs.MaxSize {
		return "", fmt.Errorf("%s: %w: %d bytes, more than a pack list may be (%d)", obj, packrefs.ErrInvalid, *resp.ContentLength, packrefs.MaxSize)
	}
	h, err := packrefs.DecodeStream(resp.Body, point, func(id packrefs.ID) error {
		k.mark(id)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", obj, err)
	}
	if h.Point != point {
		return "", fmt.Errorf("%s: %w: it names point %s, not its own", obj, packrefs.ErrInvalid, h.Point)
	}
	var etag azcore.ETag
	if resp.ETag != nil {
		etag = *resp.ETag
	}
	return etag, nil
}

// list calls fn for every blob whose name starts with prefix.
func list(ctx context.Context, cc *container.Client, prefix string, fn func(*container.BlobItem) error) error {
	opts := &container.ListBlobsFlatOptions{}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	pager := cc.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				return fmt.Errorf("the container does not exist; is the machine registered? %w", err)
			}
			return err
		}
		if page.Segment == nil {
			continue
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil {
				continue
			}
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameETag compares ETags, which services return quoted in some responses
// and bare in others.
func sameETag(a, b azcore.ETag) bool {
	return strings.Trim(string(a), `"`) == strings.Trim(string(b), `"`)
}
