// Package retry wraps a storage.Backend so that transient failures (a
// dropped connection, a throttled or busy service, a flaky network share)
// are retried with exponential backoff and jitter.
//
// The Azure SDK already retries each HTTP request; this wrapper retries
// whole operations, for every backend, and knows the one thing the SDK
// cannot: that a Create which failed ambiguously and then finds its name
// taken most likely succeeded the first time.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/coffer-backup/coffer/shared/storage"
)

// Policy says how often and how long to retry. The zero Policy is usable.
type Policy struct {
	// MaxAttempts counts the first try; 0 means 5, 1 never retries.
	MaxAttempts int
	// BaseDelay is the wait before the first retry, doubled for each
	// further one up to MaxDelay; 0 means 500ms and 30s.
	BaseDelay, MaxDelay time.Duration
	// Retryable decides which errors are worth another try; nil means
	// IsTransient.
	Retryable func(error) bool
	// Sleep waits d or until ctx is done; nil means a real timer. Tests
	// inject one that does not sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for jitter; nil means math/rand.
	Rand func() float64
	// OnRetry, if set, hears of every retry before its wait, for logs.
	OnRetry func(op, name string, attempt int, err error, wait time.Duration)
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.Retryable == nil {
		p.Retryable = IsTransient
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Delay is the wait before retry number n (1 for the first retry): the
// exponential delay capped at MaxDelay, of which the upper half is random
// ("equal jitter"), so that agents throttled together do not retry together
// yet each still backs off.
func (p Policy) Delay(n int) time.Duration {
	p = p.withDefaults()
	d := p.MaxDelay
	if n-1 < 32 {
		if e := p.BaseDelay << (n - 1); e > 0 && e < p.MaxDelay {
			d = e
		}
	}
	return d/2 + time.Duration(p.Rand()*float64(d/2))
}

type backend struct {
	b storage.Backend
	p Policy
}

// New wraps b so that its operations are retried under p.
func New(b storage.Backend, p Policy) storage.Backend {
	return &backend{b: b, p: p.withDefaults()}
}

func (r *backend) Location() string { return r.b.Location() }

// do runs op until it succeeds, fails for good, or attempts run out. op
// reports through final that its error must not be retried whatever it is.
func (r *backend) do(ctx context.Context, opName, name string, op func(attempt int) (final bool, err error)) error {
	var err error
	for attempt := 1; ; attempt++ {
		var final bool
		final, err = op(attempt)
		if err == nil || final || !r.p.Retryable(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= r.p.MaxAttempts {
			if Unreachable(err) {
				return fmt.Errorf("cannot reach the storage at %s: %w (gave up after %d attempts; check the address, the network and any firewall or proxy)", r.b.Location(), err, attempt)
			}
			return fmt.Errorf("%w (gave up after %d attempts; the storage may be unreachable or overloaded, try again later)", err, attempt)
		}
		wait := r.p.Delay(attempt)
		if r.p.OnRetry != nil {
			r.p.OnRetry(opName, name, attempt, err, wait)
		}
		if serr := r.p.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %v)", serr, err)
		}
	}
}

// Create retries a failed Create. After a transient failure the first try
// may have stored the object before the connection dropped, so a retry that
// finds the name taken by an object of the same size counts as success:
// names are content hashes, so same name and size means same content, and
// a concurrent writer of the same name wrote the same bytes.
func (r *backend) Create(ctx context.Context, name string, data []byte) error {
	ambiguous := false
	return r.do(ctx, "create", name, func(int) (bool, error) {
		err := r.b.Create(ctx, name, data)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, storage.ErrExists) && ambiguous:
			info, serr := r.b.Stat(ctx, name)
			if serr == nil && info.Size == int64(len(data)) {
				return true, nil
			}
			return true, err
		case r.p.Retryable(err):
			ambiguous = true
		}
		return false, err
	})
}

func (r *backend) Read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	// Only opening is retried; a stream that fails part way reports it to
	// the reader (the Azure backend resumes its own streams).
	var rc io.ReadCloser
	err := r.do(ctx, "read", name, func(int) (bool, error) {
		var err error
		rc, err = r.b.Read(ctx, name, offset, length)
		return false, err
	})
	if err != nil {
		return nil, err
	}
	return rc, nil
}

func (r *backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	var info storage.Info
	err := r.do(ctx, "stat", name, func(int) (bool, error) {
		var err error
		info, err = r.b.Stat(ctx, name)
		return false, err
	})
	return info, err
}

// List restarts a listing that failed part way, and skips the names already
// handed to fn so that fn sees each object once.
func (r *backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	seen := map[string]bool{}
	var fnErr error
	return r.do(ctx, "list", prefix, func(int) (bool, error) {
		err := r.b.List(ctx, prefix, func(i storage.Info) error {
			if seen[i.Name] {
				return nil
			}
			seen[i.Name] = true
			if err := fn(i); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		// fn's error is the caller's to see, never retried.
		return fnErr != nil, err
	})
}

// Delete retries a failed Delete; after a transient failure, ErrNotFound
// means the first try deleted the object before the connection dropped.
func (r *backend) Delete(ctx context.Context, name string) error {
	ambiguous := false
	return r.do(ctx, "delete", name, func(int) (bool, error) {
		err := r.b.Delete(ctx, name)
		if errors.Is(err, storage.ErrNotFound) && ambiguous {
			return true, nil
		}
		if err != nil && r.p.Retryable(err) {
			ambiguous = true
		}
		return false, err
	})
}

// PassThrough returns the wrapped backend: a spooled write or a sweep
// (storage.AsSpooler, AsTempSweeper) goes to it directly, as a local
// folder's writes need no retrying.
func (r *backend) PassThrough() storage.Backend { return r.b }
