// Package limit wraps a storage.Backend to bound how many operations are in
// flight and how fast Create sends bytes, so a backup leaves the office
// line and the storage account usable for others.
package limit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Options say what to limit. The zero Options limit nothing.
type Options struct {
	// Concurrency is the most operations in flight at once; 0 is no bound.
	// A Read counts until its reader is closed, since its connection is in
	// use until then.
	Concurrency int
	// Upload limits the bytes per second Create sends; nil is no limit.
	// The caller may change it at any time with SetLimit and SetBurst, as a
	// schedule does that allows more bandwidth outside working hours. A
	// limit of 0 pauses uploads until it is raised; rate.Inf lifts it.
	// The burst is the largest piece waited for at once: keep it at least
	// a few hundred KiB for a smooth pace.
	Upload *rate.Limiter
}

// pollInterval is how often a paused upload checks whether it may resume.
var pollInterval = time.Second

type backend struct {
	b      storage.Backend
	slots  chan struct{} // nil: unbounded
	upload *rate.Limiter
}

// New wraps b with the limits in o.
func New(b storage.Backend, o Options) storage.Backend {
	l := &backend{b: b, upload: o.Upload}
	if o.Concurrency > 0 {
		l.slots = make(chan struct{}, o.Concurrency)
	}
	return l
}

func (l *backend) Location() string { return l.b.Location() }

// acquire takes a slot, waiting for one or for ctx to be done.
func (l *backend) acquire(ctx context.Context) error {
	if l.slots == nil {
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *backend) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// Create waits for the bandwidth to send data, then for a slot. Waiting for
// bandwidth holds no slot, so throttled uploads do not starve reads.
func (l *backend) Create(ctx context.Context, name string, data []byte) error {
	if err := l.waitBytes(ctx, len(data)); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.b.Create(ctx, name, data)
}

// waitBytes waits until the limiter allows n bytes, in pieces no larger
// than its burst (WaitN refuses more than the burst at once).
func (l *backend) waitBytes(ctx context.Context, n int) error {
	if l.upload == nil {
		return nil
	}
	for n > 0 {
		limit, burst := l.upload.Limit(), l.upload.Burst()
		switch {
		case limit == rate.Inf:
			return nil
		case limit <= 0:
			// Paused: check again later rather than fail the backup.
			t := time.NewTimer(pollInterval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			continue
		case burst <= 0:
			return errors.New("the upload rate limiter has a burst of 0, which allows no bytes; give it a burst of at least 64 KiB")
		}
		piece := min(n, burst)
		if err := l.upload.WaitN(ctx, piece); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if l.upload.Burst() != burst || l.upload.Limit() != limit {
				continue // changed under us: size the piece again
			}
			// A deadline sooner than the wait: say so in the context's terms.
			return fmt.Errorf("waiting for upload bandwidth: %w", err)
		}
		n -= piece
	}
	return nil
}

func (l *backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := l.b.Read(ctx, name, offset, length)
	if err != nil {
		l.release()
		return nil, err
	}
	return &slotReader{ReadCloser: rc, release: l.release}, nil
}

// slotReader gives its slot back on the first Close.
type slotReader struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *slotReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

func (l *backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := l.acquire(ctx); err != nil {
		return storage.Info{}, err
	}
	defer l.release()
	return l.b.Stat(ctx, name)
}

// List holds a slot while the backend lists, not while fn runs, so fn may
// use the same backend (Stat, Read) without deadlocking on the bound.
func (l *backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	held := true
	defer func() {
		if held {
			l.release()
		}
	}()
	return l.b.List(ctx, prefix, func(i storage.Info) error {
		l.release()
		held = false
		if err := fn(i); err != nil {
			return err
		}
		if err := l.acquire(ctx); err != nil {
			return err
		}
		held = true
		return nil
	})
}

func (l *backend) Delete(ctx context.Context, name string) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.b.Delete(ctx, name)
}
