package containers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/layout"
	"github.com/coffer-backup/coffer/shared/packrefs"
)

// Point checks are limited in concurrency: each streams a pack list of up
// to packrefs.MaxSize against a listing of data/, which takes a second or
// two for the largest repositories. One at a time per machine (an agent
// registers one point per backup, so a second one at once is a retry or an
// abuse), and a few at a time in all, keeps the control plane's memory
// bounded however many registrations arrive.
const (
	checksPerMachine = 1
	checksInAll      = 4
	// checkWait is how long a check waits for its turn before the agent is
	// told to retry.
	checkWait = time.Minute
	// listPage is the listing page size of checks: smaller than the
	// service's 5,000 so that a page, decoded, stays near a megabyte.
	listPage = 1000
	// missingSample is how many missing packs a check names.
	missingSample = 10
)

// ErrBusy: too many point checks are running; the caller should retry.
var ErrBusy = errors.New("too many recovery point checks are running")

// Missing is what a point check found.
type Missing struct {
	Count int      // packs the point's list names that are not stored
	First []string // the first few of them, in order
}

// limiter bounds concurrent checks per container and in all.
type limiter struct {
	all chan struct{}
	mu  sync.Mutex
	per map[string]chan struct{}
	ref map[string]int
}

func newLimiter() *limiter {
	return &limiter{all: make(chan struct{}, checksInAll), per: map[string]chan struct{}{}, ref: map[string]int{}}
}

// acquire waits for a turn for key; release must be called once it is done.
func (l *limiter) acquire(ctx context.Context, key string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, checkWait)
	defer cancel()
	l.mu.Lock()
	ch, ok := l.per[key]
	if !ok {
		ch = make(chan struct{}, checksPerMachine)
		l.per[key] = ch
	}
	l.ref[key]++
	l.mu.Unlock()
	unref := func() {
		l.mu.Lock()
		if l.ref[key]--; l.ref[key] == 0 {
			delete(l.ref, key)
			delete(l.per, key)
		}
		l.mu.Unlock()
	}
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		unref()
		return nil, fmt.Errorf("%w for this machine; retry in a minute", ErrBusy)
	}
	select {
	case l.all <- struct{}{}:
	case <-ctx.Done():
		<-ch
		unref()
		return nil, fmt.Errorf("%w; retry in a minute", ErrBusy)
	}
	return func() {
		<-l.all
		<-ch
		unref()
	}, nil
}

// CheckPoint reports which packs refs/<pointID> names that are not stored
// under data/. The agent uploads refs/<pointID> before it registers the
// point, so its absence is an error, and so is a list that is not valid or
// names another point.
//
// Both the list and the listing of data/ are in pack order, so it merges
// the two streams: memory stays about a megabyte whatever their length.
func (c *Containers) CheckPoint(ctx context.Context, name, pointID string) (Missing, error) {
	var m Missing
	if err := sas.CheckContainerName(name); err != nil {
		return m, err
	}
	if !packrefs.ValidID(pointID) {
		return m, fmt.Errorf("point ID %q is not 64 lower-case hex digits", pointID)
	}
	release, err := c.checks.acquire(ctx, name)
	if err != nil {
		return m, err
	}
	defer release()

	cc := c.svc.NewContainerClient(name)
	// A pack list without its point is what a backup killed between the
	// two writes leaves (refs/ is written first): registering it would
	// make a point nothing can restore.
	if _, err := cc.NewBlobClient(layout.Point(pointID)).GetProperties(ctx, nil); err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return m, fmt.Errorf("container %s has no %s: the agent must upload the point before registering it: %w", name, layout.Point(pointID), err)
		}
		return m, fmt.Errorf("container %s: read %s: %w", name, layout.Point(pointID), err)
	}
	obj := packrefs.Name(pointID)
	resp, err := cc.NewBlobClient(obj).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return m, fmt.Errorf("container %s has no %s: the agent must upload the point's pack list before registering the point: %w", name, obj, err)
	}
	if err != nil {
		return m, fmt.Errorf("container %s: read %s: %w", name, obj, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > packrefs.MaxSize {
		return m, fmt.Errorf("container %s: %w: %s is %d bytes, more than a pack list may be (%d)", name, packrefs.ErrInvalid, obj, *resp.ContentLength, packrefs.MaxSize)
	}
	stored := &packCursor{ctx: ctx, pager: cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix: to.Ptr(layout.DataPrefix), MaxResults: to.Ptr(int32(listPage))})}
	h, err := packrefs.DecodeStream(resp.Body, pointID, func(want packrefs.ID) error {
		for {
			have, ok, err := stored.peek()
			if err != nil {
				return err
			}
			if ok && have == want {
				stored.advance()
				return nil
			}
			if !ok || bytes.Compare(have[:], want[:]) > 0 {
				m.Count++
				if len(m.First) < missingSample {
					m.First = append(m.First, want.String())
				}
				return nil
			}
			stored.advance() // a stored pack this point does not name
		}
	})
	if err != nil {
		var le listError
		if errors.As(err, &le) {
			return Missing{}, fmt.Errorf("container %s: list packs: %w", name, le.err)
		}
		return Missing{}, fmt.Errorf("container %s: %s: %w", name, obj, err)
	}
	if h.Point != pointID {
		return Missing{}, fmt.Errorf("container %s: %w: %s names point %s, not its own", name, packrefs.ErrInvalid, obj, h.Point)
	}
	return m, nil
}

// MissingPacks returns, sorted, the first few packs refs/<pointID> names
// that are not stored (nil if none); CheckPoint also counts them.
func (c *Containers) MissingPacks(ctx context.Context, name, pointID string) ([]string, error) {
	m, err := c.CheckPoint(ctx, name, pointID)
	return m.First, err
}

// listError marks a failure of the listing inside the decoder's callback.
type listError struct{ err error }

func (e listError) Error() string { return e.err.Error() }

// packCursor walks the pack IDs under data/ in name order, which is pack ID
// order, one listing page at a time.
type packCursor struct {
	ctx   context.Context
	pager interface {
		More() bool
		NextPage(context.Context) (container.ListBlobsFlatResponse, error)
	}
	page []packrefs.ID
	prev packrefs.ID
	any  bool
}

// peek returns the current pack, or ok false at the end.
func (p *packCursor) peek() (packrefs.ID, bool, error) {
	for len(p.page) == 0 {
		if !p.pager.More() {
			return packrefs.ID{}, false, nil
		}
		resp, err := p.pager.NextPage(p.ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				err = fmt.Errorf("the container does not exist; is the machine registered? %w", err)
			}
			return packrefs.ID{}, false, listError{err}
		}
		if resp.Segment == nil {
			continue
		}
		for _, it := range resp.Segment.BlobItems {
			if it.Name == nil {
				continue
			}
			s, ok := layout.ParsePack(*it.Name)
			if !ok {
				continue
			}
			id, _ := packrefs.ParseID(s)
			// The merge is only right over a sorted listing; the service
			// promises one, and this makes sure.
			if p.any && bytes.Compare(id[:], p.prev[:]) <= 0 {
				return packrefs.ID{}, false, listError{fmt.Errorf("the listing of data/ is not in name order at %s", s)}
			}
			p.prev, p.any = id, true
			p.page = append(p.page, id)
		}
	}
	return p.page[0], true, nil
}

func (p *packCursor) advance() { p.page = p.page[1:] }

// refsMeta are the metadata keys quarantine sets on a refs/ object. Agents
// cannot set metadata on an object that exists (their SAS has no write).
const (
	metaQuarantined = "cofferquarantined"
	metaReason      = "cofferreason"
)

// Quarantined is a refs/ object garbage collection set aside.
type Quarantined struct {
	Object string // its name
	Reason string
}

// quarantine marks obj so that garbage collection leaves it out from now
// on, if it is still the version that was read.
func (c *Containers) quarantine(ctx context.Context, cc *container.Client, obj string, etag azcore.ETag, reason string) error {
	md := map[string]*string{metaQuarantined: to.Ptr(c.now().UTC().Format(time.RFC3339)), metaReason: to.Ptr(headerSafe(reason))}
	opts := &blob.SetMetadataOptions{}
	if etag != "" {
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
	}
	_, err := cc.NewBlobClient(obj).SetMetadata(ctx, md, opts)
	if err != nil {
		return fmt.Errorf("quarantine %s: %w", obj, err)
	}
	return nil
}

// headerSafe keeps printable ASCII only: metadata travels in HTTP headers.
func headerSafe(s string) string {
	b := []byte(s)
	out := b[:0]
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	if len(out) > 512 {
		out = out[:512]
	}
	return string(out)
}
