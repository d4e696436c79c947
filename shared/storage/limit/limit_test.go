package limit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

// counting records the most operations it ever had in flight.
type counting struct {
	storage.Backend
	now, max atomic.Int32
	bytes    atomic.Int64
}

func (c *counting) enter() func() {
	n := c.now.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond) // let others pile up
	return func() { c.now.Add(-1) }
}

func (c *counting) Create(ctx context.Context, name string, data []byte) error {
	defer c.enter()()
	c.bytes.Add(int64(len(data)))
	return c.Backend.Create(ctx, name, data)
}

func (c *counting) Stat(ctx context.Context, name string) (storage.Info, error) {
	defer c.enter()()
	return c.Backend.Stat(ctx, name)
}

// Read counts until the reader is closed.
func (c *counting) Read(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	done := c.enter()
	rc, err := c.Backend.Read(ctx, name, off, n)
	if err != nil {
		done()
		return nil, err
	}
	return readCloser{rc, done}, nil
}

type readCloser struct {
	io.ReadCloser
	done func()
}

func (r readCloser) Close() error { r.done(); return r.ReadCloser.Close() }

func newCounting(t *testing.T) *counting {
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &counting{Backend: b}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := local.New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return New(b, Options{Concurrency: 2, Upload: rate.NewLimiter(1<<30, 1<<20)})
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	c := newCounting(t)
	b := New(c, Options{Concurrency: 3})
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			name := string(rune('a'+i%26)) + "/" + string(rune('a'+i/26))
			if err := b.Create(ctx, name, []byte(name)); err != nil {
				t.Error(err)
				return
			}
			if _, err := b.Stat(ctx, name); err != nil {
				t.Error(err)
			}
			rc, err := b.Read(ctx, name, 0, -1)
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			rc.Close()
		})
	}
	wg.Wait()
	if m := c.max.Load(); m > 3 || m < 2 {
		t.Fatalf("at most %d operations were in flight, want 3 (2 at least, to show they ran in parallel)", m)
	}
}

// An unclosed reader keeps its slot; closing it frees the slot.
func TestReadHoldsSlotUntilClose(t *testing.T) {
	c := newCounting(t)
	if err := c.Backend.Create(t.Context(), "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := New(c, Options{Concurrency: 1})
	rc, err := b.Read(t.Context(), "x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Stat(short, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stat while the only slot is held: got %v, want to wait until the deadline", err)
	}
	rc.Close()
	rc.Close() // a second Close must not free a second slot
	if _, err := b.Stat(t.Context(), "x"); err != nil {
		t.Fatalf("Stat after Close: %v", err)
	}
	// Both slots free again would let two run; the bound is still 1.
	rc1, _ := b.Read(t.Context(), "x", 0, -1)
	if _, err := b.Stat(short, "x"); err == nil {
		t.Fatal("a double Close freed an extra slot")
	}
	rc1.Close()
}

func TestListCallbackMayUseTheBackend(t *testing.T) {
	c := newCounting(t)
	for _, n := range []string{"a", "b", "c"} {
		if err := c.Backend.Create(t.Context(), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	b := New(c, Options{Concurrency: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n := 0
	err := b.List(ctx, "", func(i storage.Info) error {
		n++
		_, err := b.Stat(ctx, i.Name)
		return err
	})
	if err != nil || n != 3 {
		t.Fatalf("List with Stat in fn: %d objects, %v; want 3 and no deadlock", n, err)
	}
}

func TestUploadBytesPassThrough(t *testing.T) {
	c := newCounting(t)
	// A burst far below the object's size makes Create wait in pieces.
	b := New(c, Options{Upload: rate.NewLimiter(1<<30, 64<<10)})
	data := bytes.Repeat([]byte("coffer"), 1<<20)
	if err := b.Create(t.Context(), "big", data); err != nil {
		t.Fatal(err)
	}
	got, err := storage.ReadAll(t.Context(), b, "big")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; want the %d written", len(got), err, len(data))
	}
	if c.bytes.Load() != int64(len(data)) {
		t.Fatalf("backend saw %d bytes, want %d", c.bytes.Load(), len(data))
	}
}

// The limiter really paces: 384 KiB beyond the burst at 1 MiB/s take
// about 0.375s.
func TestUploadIsThrottled(t *testing.T) {
	c := newCounting(t)
	lim := rate.NewLimiter(1<<20, 128<<10)
	b := New(c, Options{Upload: lim})
	start := time.Now()
	if err := b.Create(t.Context(), "x", make([]byte, 512<<10)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("512 KiB at 1 MiB/s with a 128 KiB burst took %v, want about 375ms", d)
	}
	// Raising the limit takes effect at once.
	lim.SetLimit(rate.Inf)
	start = time.Now()
	if err := b.Create(t.Context(), "y", make([]byte, 4<<20)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("an unlimited upload took %v", d)
	}
}

func TestPausedUploadWaitsForResume(t *testing.T) {
	old := pollInterval
	pollInterval = 5 * time.Millisecond
	t.Cleanup(func() { pollInterval = old })
	c := newCounting(t)
	lim := rate.NewLimiter(0, 1<<20)
	lim.AllowN(time.Now(), 1<<20) // spend the initial burst
	b := New(c, Options{Upload: lim})

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := b.Create(short, "x", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create while paused: got %v, want to wait until the deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Create(t.Context(), "x", []byte("x")) }()
	time.Sleep(30 * time.Millisecond)
	lim.SetLimit(rate.Inf)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Create did not resume after the limit was raised")
	}
}

func TestZeroBurstIsAnError(t *testing.T) {
	b := New(newCounting(t), Options{Upload: rate.NewLimiter(100, 0)})
	if err := b.Create(t.Context(), "x", []byte("x")); err == nil {
		t.Fatal("Create with a zero-burst limiter succeeded")
	}
}

func TestCanceledWhileWaitingForSlot(t *testing.T) {
	c := newCounting(t)
	if err := c.Backend.Create(t.Context(), "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := New(c, Options{Concurrency: 1})
	rc, err := b.Read(t.Context(), "x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := b.Create(ctx, "y", []byte("y")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := c.Backend.Stat(t.Context(), "y"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the canceled Create stored the object: %v", err)
	}
}
