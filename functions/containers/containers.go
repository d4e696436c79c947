// Package containers manages each machine's blob container from the
// control plane, which holds full data rights (agents only create, read and
// list): creating and purging containers, deleting recovery points, checking
// that a point's packs are all stored, collecting packs no point needs, and
// measuring usage. None of it needs the repository key: it works from the
// plaintext pack reference lists (refs/<point>) alone.
package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
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
	return &Containers{svc: svc, now: now, log: slog.Default()}
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

// MissingPacks returns, sorted, the packs refs/<pointID> names that are not
// stored under data/. The agent uploads refs/<pointID> before it registers
// the point, so its absence is an error.
func (c *Containers) MissingPacks(ctx context.Context, name, pointID string) ([]string, error) {
	if err := sas.CheckContainerName(name); err != nil {
		return nil, err
	}
	if !layout.ValidID(pointID) {
		return nil, fmt.Errorf("point ID %q is not 64 lower-case hex digits", pointID)
	}
	cc := c.svc.NewContainerClient(name)
	refs, _, err := readRefs(ctx, cc, layout.Refs(pointID))
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil, fmt.Errorf("container %s has no %s: the agent must upload the point's pack list before registering the point: %w",
			name, layout.Refs(pointID), err)
	}
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	// One listing of data/ costs a request per 5,000 packs; a point usually
	// names most of the repository's packs, so this beats a request per pack.
	stored := map[string]bool{}
	err = list(ctx, cc, layout.DataPrefix, func(it *container.BlobItem) error {
		if id, ok := layout.ParsePack(*it.Name); ok {
			stored[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs in container %s: %w", name, err)
	}
	var missing []string
	for _, p := range refs.Packs {
		if !stored[p] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// GCResult describes one garbage collection.
type GCResult struct {
	Referenced   int      // distinct packs named by the container's refs/ objects
	Deleted      int      // packs deleted
	KeptYoung    int      // unreferenced packs kept because they are newer than the grace period
	BytesFreed   int64    // size of the deleted packs
	DeletedPacks []string // IDs of the deleted packs, sorted
}

// CollectGarbage deletes the packs under data/ that no refs/ object names
// and that were last modified more than grace ago (by the injected clock).
// The grace period protects packs a running backup has uploaded but not yet
// referenced.
//
// It never deletes on doubt: if any refs/ object cannot be read or decoded,
// or names another point than its own name, it deletes nothing and returns
// an error. Before deleting it lists refs/ again and adds the packs of any
// list that appeared or changed meanwhile, which narrows, but cannot close,
// the race with a backup that finishes during the collection; the purge
// timer should therefore avoid machines with a backup in progress.
//
// Packs are deleted eight at a time. If a deletion fails, it stops and
// returns what it has deleted so far with the error; running it again is
// safe.
func (c *Containers) CollectGarbage(ctx context.Context, name string, grace time.Duration) (GCResult, error) {
	var res GCResult
	if err := sas.CheckContainerName(name); err != nil {
		return res, err
	}
	if grace < 0 {
		return res, fmt.Errorf("GC grace period %v is negative; use at least the longest a backup runs", grace)
	}
	cc := c.svc.NewContainerClient(name)
	cutoff := c.now().Add(-grace)

	keep := newKeepSet()
	nRefs, err := keep.addRefs(ctx, cc)
	if err != nil {
		return res, fmt.Errorf("garbage collection of container %s deleted nothing: %w", name, err)
	}

	type pack struct {
		id   string
		size int64
		etag azcore.ETag
	}
	var candidates []pack
	var stored, unrecognised int
	err = list(ctx, cc, layout.DataPrefix, func(it *container.BlobItem) error {
		id, ok := layout.ParsePack(*it.Name)
		if !ok {
			// Not a pack name we wrote: never delete what we do not understand.
			unrecognised++
			return nil
		}
		if keep.has(id) {
			stored++
			return nil
		}
		p := it.Properties
		if p == nil || p.LastModified == nil || !p.LastModified.Before(cutoff) {
			res.KeptYoung++
			return nil
		}
		pk := pack{id: id}
		if p.ContentLength != nil {
			pk.size = *p.ContentLength
		}
		if p.ETag != nil {
			pk.etag = *p.ETag
		}
		candidates = append(candidates, pk)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("garbage collection of container %s deleted nothing: list packs: %w", name, err)
	}
	if missing := keep.len() - stored; missing > 0 {
		c.log.WarnContext(ctx, "points name packs that are not stored; run coffer check on the machine",
			"container", name, "missingPacks", missing)
	}
	if unrecognised > 0 {
		c.log.WarnContext(ctx, "objects under data/ are not named like packs; left alone", "container", name, "objects", unrecognised)
	}

	if len(candidates) > 0 {
		if c.beforeRecheck != nil {
			c.beforeRecheck()
		}
		reread, err := keep.addRefs(ctx, cc)
		if err != nil {
			return res, fmt.Errorf("garbage collection of container %s deleted nothing: second look at refs/: %w", name, err)
		}
		if reread > 0 {
			c.log.InfoContext(ctx, "pack lists appeared during garbage collection", "container", name, "lists", reread)
			candidates = slices.DeleteFunc(candidates, func(p pack) bool { return keep.has(p.id) })
		}
	}
	res.Referenced = keep.len()

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, p := range candidates {
		g.Go(func() error {
			obj := layout.Pack(p.id)
			opts := &blob.DeleteOptions{DeleteSnapshots: new(blob.DeleteSnapshotsOptionTypeInclude)}
			if p.etag != "" {
				// Delete exactly the object judged unreferenced, nothing written since.
				opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &p.etag}}
			}
			_, err := cc.NewBlobClient(obj).Delete(gctx, opts)
			switch {
			case err == nil:
				mu.Lock()
				res.Deleted++
				res.BytesFreed += p.size
				res.DeletedPacks = append(res.DeletedPacks, p.id)
				mu.Unlock()
				return nil
			case bloberror.HasCode(err, bloberror.BlobNotFound):
				return nil // someone else got there first
			case bloberror.HasCode(err, bloberror.ConditionNotMet):
				c.log.WarnContext(gctx, "pack changed during garbage collection; kept", "container", name, "pack", p.id)
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

// keepSet is the packs that some refs/ object names, and which version of
// each refs/ object has been read.
type keepSet struct {
	mu    sync.Mutex
	packs map[string]struct{}
	read  map[string]azcore.ETag // refs object name → ETag read
}

func newKeepSet() *keepSet {
	return &keepSet{packs: map[string]struct{}{}, read: map[string]azcore.ETag{}}
}

func (k *keepSet) has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.packs[id]
	return ok
}

func (k *keepSet) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.packs)
}

// addRefs lists refs/ and reads every object not yet read in its current
// version, adding its packs. It returns how many it read. A refs object
// deleted between the listing and the read belongs to a deleted point and
// is skipped; any other failure is an error.
func (k *keepSet) addRefs(ctx context.Context, cc *container.Client) (int, error) {
	var todo []string
	err := list(ctx, cc, layout.RefsPrefix, func(it *container.BlobItem) error {
		k.mu.Lock()
		etag, seen := k.read[*it.Name]
		k.mu.Unlock()
		if !seen || it.Properties == nil || it.Properties.ETag == nil || !sameETag(etag, *it.Properties.ETag) {
			todo = append(todo, *it.Name)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list refs/: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, obj := range todo {
		g.Go(func() error {
			refs, etag, err := readRefs(gctx, cc, obj)
			if bloberror.HasCode(err, bloberror.BlobNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			for _, p := range refs.Packs {
				k.packs[p] = struct{}{}
			}
			k.read[obj] = etag
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(todo), nil
}

// readRefs downloads and decodes one refs/ object, checking that it names
// the point its object name says.
func readRefs(ctx context.Context, cc *container.Client, obj string) (*packrefs.Refs, azcore.ETag, error) {
	resp, err := cc.NewBlobClient(obj).DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", obj, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > packrefs.MaxSize {
		return nil, "", fmt.Errorf("%s is %d bytes, more than a pack list may be (%d)", obj, *resp.ContentLength, packrefs.MaxSize)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, packrefs.MaxSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", obj, err)
	}
	refs, err := packrefs.Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w; inspect or remove it by hand", obj, err)
	}
	if layout.Refs(refs.Point) != obj {
		return nil, "", fmt.Errorf("%s names point %s, not its own; inspect or remove it by hand", obj, refs.Point)
	}
	var etag azcore.ETag
	if resp.ETag != nil {
		etag = *resp.ETag
	}
	return refs, etag, nil
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

// RetireKey deletes keys/<keyID> after a passphrase change, but only while
// another key file remains: the repository must always stay openable.
func (c *Containers) RetireKey(ctx context.Context, name, keyID string) error {
	if err := sas.CheckContainerName(name); err != nil {
		return err
	}
	if !layout.ValidID(keyID) {
		return fmt.Errorf("key ID %q is not 64 lower-case hex digits", keyID)
	}
	cc := c.svc.NewContainerClient(name)
	found, others := false, 0
	err := list(ctx, cc, layout.KeysPrefix, func(b *container.BlobItem) error {
		if b.Name != nil && *b.Name == layout.Key(keyID) {
			found = true
		} else {
			others++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list key files of %s: %w", name, err)
	}
	if !found {
		return fmt.Errorf("%w: key file keys/%s is not in %s", ErrNoSuchKey, keyID, name)
	}
	if others == 0 {
		return fmt.Errorf("%w: keys/%s is the only key file of %s; write the new one first", ErrLastKey, keyID, name)
	}
	if _, err := cc.NewBlobClient(layout.Key(keyID)).Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return fmt.Errorf("delete keys/%s in %s: %w", keyID, name, err)
	}
	c.log.InfoContext(ctx, "old key file retired", "container", name, "key", keyID)
	return nil
}

// Errors RetireKey reports for a request that cannot be done.
var (
	ErrNoSuchKey = errors.New("no such key file")
	ErrLastKey   = errors.New("last key file")
)
