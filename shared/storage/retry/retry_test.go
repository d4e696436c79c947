package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/coffer-backup/coffer/shared/storage"
	"github.com/coffer-backup/coffer/shared/storage/local"
	"github.com/coffer-backup/coffer/shared/storage/retry"
	"github.com/coffer-backup/coffer/shared/storage/storagetest"
)

// flaky fails each operation with the errors queued for it, then passes it
// on to the wrapped backend.
type flaky struct {
	storage.Backend
	fail  map[string][]error // by operation
	calls map[string]int
	// afterFail, if set, runs when a queued error is returned, to model an
	// operation that took effect although the caller saw it fail.
	afterFail func(op string)
}

func newFlaky(t *testing.T) *flaky {
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &flaky{Backend: b, fail: map[string][]error{}, calls: map[string]int{}}
}

func (f *flaky) next(op string) error {
	f.calls[op]++
	if q := f.fail[op]; len(q) > 0 {
		f.fail[op] = q[1:]
		return q[0]
	}
	return nil
}

func (f *flaky) Create(ctx context.Context, name string, data []byte) error {
	if err := f.next("create"); err != nil {
		if f.afterFail != nil {
			f.afterFail("create")
		}
		return err
	}
	return f.Backend.Create(ctx, name, data)
}

func (f *flaky) Read(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if err := f.next("read"); err != nil {
		return nil, err
	}
	return f.Backend.Read(ctx, name, off, n)
}

func (f *flaky) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := f.next("stat"); err != nil {
		return storage.Info{}, err
	}
	return f.Backend.Stat(ctx, name)
}

func (f *flaky) Delete(ctx context.Context, name string) error {
	if err := f.next("delete"); err != nil {
		if f.afterFail != nil {
			f.afterFail("delete")
		}
		return err
	}
	return f.Backend.Delete(ctx, name)
}

// List fails, if an error is queued, after handing fn the first object.
func (f *flaky) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	err := f.next("list")
	if err == nil {
		return f.Backend.List(ctx, prefix, fn)
	}
	stop := errors.New("stop")
	lerr := f.Backend.List(ctx, prefix, func(i storage.Info) error {
		if ferr := fn(i); ferr != nil {
			return ferr
		}
		return stop
	})
	if errors.Is(lerr, stop) {
		return err
	}
	return lerr
}

// clock records the waits instead of sleeping.
type clock struct{ waits []time.Duration }

func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	c.waits = append(c.waits, d)
	return ctx.Err()
}

func policy(c *clock) retry.Policy {
	return retry.Policy{
		MaxAttempts: 4, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second,
		Sleep: c.sleep, Rand: func() float64 { return 0.5 },
	}
}

var (
	reset    = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	busy     = &azcore.ResponseError{StatusCode: http.StatusServiceUnavailable, ErrorCode: "ServerBusy"}
	throttle = &azcore.ResponseError{StatusCode: http.StatusTooManyRequests}
	diskEIO  = &fs.PathError{Op: "write", Path: "/repo/data/x", Err: diskErrno}
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := local.New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return retry.New(b, retry.Policy{})
	})
}

func TestIsTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{reset, true},
		{busy, true},
		{throttle, true},
		{&azcore.ResponseError{StatusCode: http.StatusRequestTimeout}, true},
		{&azcore.ResponseError{StatusCode: http.StatusBadRequest}, false},
		{fmt.Errorf("stat x: %w", diskEIO), true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EAGAIN}, true},
		{io.ErrUnexpectedEOF, true},
		{&url.Error{Op: "Put", URL: "u", Err: io.EOF}, true},
		{&url.Error{Op: "Put", URL: "u", Err: errors.New("x509: certificate signed by unknown authority")}, false},
		{&net.DNSError{Err: "timeout", IsTimeout: true}, true},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, false},
		{fmt.Errorf("%w: %w", storage.ErrNotFound, busy), false},
		{fmt.Errorf("x: %w", storage.ErrExists), false},
		{fmt.Errorf("%w: %w", storage.ErrPermission, &azcore.ResponseError{StatusCode: 403}), false},
		{storage.ErrInvalidName, false},
		{context.Canceled, false},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), false},
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, false},
		{errors.New("something else"), false},
	} {
		if got := retry.IsTransient(c.err); got != c.want {
			t.Errorf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestTransientErrorsAreRetriedWithBackoff(t *testing.T) {
	f := newFlaky(t)
	f.fail["create"] = []error{reset, busy, diskEIO}
	c := &clock{}
	b := retry.New(f, policy(c))
	if err := b.Create(t.Context(), "x", []byte("data")); err != nil {
		t.Fatalf("Create after three transient failures: %v", err)
	}
	if f.calls["create"] != 4 {
		t.Fatalf("Create tried %d times, want 4", f.calls["create"])
	}
	// Half fixed, half jitter (Rand 0.5): 3/4 of 100, 200, 400ms.
	want := []time.Duration{75 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond}
	if fmt.Sprint(c.waits) != fmt.Sprint(want) {
		t.Fatalf("waits = %v, want %v", c.waits, want)
	}
}

func TestDelayIsCappedAndJittered(t *testing.T) {
	p := retry.Policy{BaseDelay: time.Second, MaxDelay: 8 * time.Second}
	for n := 1; n < 100; n++ {
		base := min(time.Second<<min(n-1, 10), 8*time.Second)
		for _, r := range []float64{0, 0.999} {
			p.Rand = func() float64 { return r }
			d := p.Delay(n)
			if d < base/2 || d > base {
				t.Fatalf("Delay(%d) with rand %v = %v, want within [%v, %v]", n, r, d, base/2, base)
			}
		}
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFlaky(t)
	f.fail["stat"] = []error{busy, busy, busy, busy, busy}
	c := &clock{}
	_, err := retry.New(f, policy(c)).Stat(t.Context(), "x")
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 503 {
		t.Fatalf("got %v, want the last 503 kept in the chain", err)
	}
	if !strings.Contains(err.Error(), "4 attempts") {
		t.Fatalf("error %q does not say how often it was tried", err)
	}
	if f.calls["stat"] != 4 || len(c.waits) != 3 {
		t.Fatalf("tried %d times with %d waits, want 4 and 3", f.calls["stat"], len(c.waits))
	}
}

func TestFinalErrorsAreNotRetried(t *testing.T) {
	for _, final := range []error{
		fmt.Errorf("x: %w", storage.ErrNotFound),
		fmt.Errorf("x: %w", storage.ErrExists),
		fmt.Errorf("%w: %w", storage.ErrPermission, &azcore.ResponseError{StatusCode: 403}),
		context.Canceled,
		errors.New("unknown"),
	} {
		f := newFlaky(t)
		f.fail["read"] = []error{final}
		c := &clock{}
		_, err := retry.New(f, policy(c)).Read(t.Context(), "x", 0, -1)
		if !errors.Is(err, final) {
			t.Errorf("got %v, want %v", err, final)
		}
		if f.calls["read"] != 1 || len(c.waits) != 0 {
			t.Errorf("%v: tried %d times, want once", final, f.calls["read"])
		}
	}
}

func TestCanceledContextStopsRetrying(t *testing.T) {
	f := newFlaky(t)
	f.fail["stat"] = []error{busy, busy, busy}
	ctx, cancel := context.WithCancel(t.Context())
	p := policy(&clock{})
	p.Sleep = func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	}
	_, err := retry.New(f, p).Stat(ctx, "x")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if f.calls["stat"] != 1 {
		t.Fatalf("tried %d times after cancellation, want 1", f.calls["stat"])
	}
}

// The real timer honours cancellation too.
func TestDefaultSleepHonoursContext(t *testing.T) {
	f := newFlaky(t)
	f.fail["stat"] = []error{busy, busy}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := retry.New(f, retry.Policy{BaseDelay: time.Hour}).Stat(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("the wait ignored the context")
	}
}

// The connection drops after the object was stored: the retry finds it
// and, since it has the size we wrote, reports success.
func TestCreateAmbiguousFailureThenExistsIsSuccess(t *testing.T) {
	f := newFlaky(t)
	f.fail["create"] = []error{reset}
	f.afterFail = func(string) {
		if err := f.Backend.Create(context.Background(), "data/ab/abcd", []byte("1234")); err != nil {
			t.Error(err)
		}
	}
	if err := retry.New(f, policy(&clock{})).Create(t.Context(), "data/ab/abcd", []byte("1234")); err != nil {
		t.Fatalf("got %v, want success", err)
	}
}

func TestCreateAmbiguousFailureThenExistsWithOtherSize(t *testing.T) {
	f := newFlaky(t)
	f.fail["create"] = []error{reset}
	f.afterFail = func(string) {
		if err := f.Backend.Create(context.Background(), "x", []byte("other content")); err != nil {
			t.Error(err)
		}
	}
	err := retry.New(f, policy(&clock{})).Create(t.Context(), "x", []byte("1234"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
}

// Without an earlier ambiguous failure, a taken name is just taken.
func TestCreateExistsOnFirstTryIsExists(t *testing.T) {
	f := newFlaky(t)
	if err := f.Backend.Create(t.Context(), "x", []byte("1234")); err != nil {
		t.Fatal(err)
	}
	err := retry.New(f, policy(&clock{})).Create(t.Context(), "x", []byte("1234"))
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if f.calls["create"] != 1 {
		t.Fatalf("tried %d times, want once", f.calls["create"])
	}
}

func TestDeleteAmbiguousFailureThenNotFoundIsSuccess(t *testing.T) {
	f := newFlaky(t)
	if err := f.Backend.Create(t.Context(), "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	f.fail["delete"] = []error{busy}
	f.afterFail = func(string) {
		if err := f.Backend.Delete(context.Background(), "x"); err != nil {
			t.Error(err)
		}
	}
	if err := retry.New(f, policy(&clock{})).Delete(t.Context(), "x"); err != nil {
		t.Fatalf("got %v, want success", err)
	}
	if err := retry.New(newFlaky(t), policy(&clock{})).Delete(t.Context(), "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete of a missing object: got %v, want ErrNotFound", err)
	}
}

// A listing that breaks part way is restarted without showing fn an object
// twice.
func TestListRestartsWithoutDuplicates(t *testing.T) {
	f := newFlaky(t)
	for _, n := range []string{"a", "b", "c"} {
		if err := f.Backend.Create(t.Context(), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	f.fail["list"] = []error{reset, reset}
	seen := map[string]int{}
	err := retry.New(f, policy(&clock{})).List(t.Context(), "", func(i storage.Info) error {
		seen[i.Name]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen["a"] != 1 || seen["b"] != 1 || seen["c"] != 1 {
		t.Fatalf("fn saw %v, want a, b and c once each", seen)
	}
}

func TestListCallbackErrorIsNotRetried(t *testing.T) {
	f := newFlaky(t)
	if err := f.Backend.Create(t.Context(), "a", nil); err != nil {
		t.Fatal(err)
	}
	// fn fails with what would be a transient error from storage.
	err := retry.New(f, policy(&clock{})).List(t.Context(), "", func(storage.Info) error { return busy })
	if !errors.Is(err, busy) || f.calls["list"] != 1 {
		t.Fatalf("got %v after %d calls, want fn's error after 1", err, f.calls["list"])
	}
}

func TestOnRetryIsTold(t *testing.T) {
	f := newFlaky(t)
	f.fail["stat"] = []error{throttle}
	if err := f.Backend.Create(t.Context(), "x", nil); err != nil {
		t.Fatal(err)
	}
	p := policy(&clock{})
	var got []string
	p.OnRetry = func(op, name string, attempt int, err error, wait time.Duration) {
		got = append(got, fmt.Sprintf("%s %s %d %v", op, name, attempt, wait))
	}
	if _, err := retry.New(f, p).Stat(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "stat x 1 75ms" {
		t.Fatalf("OnRetry heard %v", got)
	}
}
