package triggers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
)

// The receiver tests talk to the local Service Bus emulator, serving
// testdata/servicebus-emulator.json: one queue per test, each with
// MaxDeliveryCount 3 like the deployed "alerts" queue.
var (
	emuOnce sync.Once
	emu     *servicebus.Emulator
	emuErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if emu != nil {
		if err := emu.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the Service Bus emulator:", err)
		}
	}
	os.Exit(code)
}

func emulator(t *testing.T) *servicebus.Emulator {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Service Bus emulator; run without -short")
	}
	emuOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		emu, emuErr = servicebus.Start(ctx, servicebus.Options{ConfigPath: "testdata/servicebus-emulator.json"})
	})
	if emuErr != nil {
		t.Fatalf("start the Service Bus emulator (it needs node and `npm ci` in emulator-tests): %v", emuErr)
	}
	return emu
}

func newClient(t *testing.T, connStr string, opts *azservicebus.ClientOptions) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(connStr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

func sendText(t *testing.T, c *azservicebus.Client, queue, id, body string) {
	t.Helper()
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.SendMessage(timeout(t), &azservicebus.Message{MessageID: to.Ptr(id), Body: []byte(body)}, nil); err != nil {
		t.Fatalf("send to %s: %v", queue, err)
	}
}

// settlement is what the receiver did with one delivery.
type settlement struct {
	id, outcome string
	delivery    uint32
	err         error
}

// runReceiver runs r until the test stops it and reports its settlements.
func runReceiver(t *testing.T, r *Receiver) (settled <-chan settlement, stop func()) {
	t.Helper()
	ch := make(chan settlement, 100)
	r.onSettle = func(m *azservicebus.ReceivedMessage, outcome string, err error) {
		ch <- settlement{id: m.MessageID, outcome: outcome, delivery: m.DeliveryCount, err: err}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(waitLimit):
				t.Fatal("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return ch, stop
}

func nextSettlement(t *testing.T, ch <-chan settlement) settlement {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for the receiver to settle a message")
		return settlement{}
	}
}

func peekAll(t *testing.T, c *azservicebus.Client, queue string, sub azservicebus.SubQueue) []*azservicebus.ReceivedMessage {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{SubQueue: sub})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	msgs, err := r.PeekMessages(timeout(t), 10, nil)
	if err != nil {
		t.Fatalf("peek %s: %v", queue, err)
	}
	return msgs
}

func TestReceiverSettlesEachOutcome(t *testing.T) {
	errTransient := errors.New("smtp server busy")
	tests := []struct {
		name  string
		queue string
		// fail decides the handler's result for the n-th call (from 1).
		fail func(n int) error
		want []settlement
		// wantDeadLetter is the DeadLetterReason expected, "" for none.
		wantDeadLetter string
	}{
		{
			name: "handled is completed", queue: "alerts-complete",
			fail: func(int) error { return nil },
			want: []settlement{{outcome: outcomeComplete, delivery: 1}},
		},
		{
			name: "failing once is redelivered then completed", queue: "alerts-retry",
			fail: func(n int) error { return map[bool]error{true: errTransient}[n == 1] },
			want: []settlement{{outcome: outcomeAbandon, delivery: 1}, {outcome: outcomeComplete, delivery: 2}},
		},
		{
			name: "failing always is dead-lettered after three deliveries", queue: "alerts-failing",
			fail:           func(int) error { return errTransient },
			want:           []settlement{{outcome: outcomeAbandon, delivery: 1}, {outcome: outcomeAbandon, delivery: 2}, {outcome: outcomeAbandon, delivery: 3}},
			wantDeadLetter: "MaxDeliveryCountExceeded",
		},
		{
			name: "poison is dead-lettered at once", queue: "alerts-poison",
			fail: func(int) error {
				return fmt.Errorf("alert names vault %q, which does not exist: %w", "gone", ErrPoison)
			},
			want:           []settlement{{outcome: outcomeDeadLetter, delivery: 1}},
			wantDeadLetter: PoisonReason,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, emulator(t).ConnectionString(), nil)
			id := "alert-" + tc.queue
			sendText(t, c, tc.queue, id, `{"kind":"BackupFailed"}`)

			var mu sync.Mutex
			var bodies []string
			r := NewReceiver(c, tc.queue, func(_ context.Context, body []byte) error {
				mu.Lock()
				defer mu.Unlock()
				bodies = append(bodies, string(body))
				return tc.fail(len(bodies))
			}, quiet)
			settled, stop := runReceiver(t, r)
			for i, want := range tc.want {
				got := nextSettlement(t, settled)
				want.id = id
				if got != want {
					t.Fatalf("settlement %d = %+v, want %+v", i+1, got, want)
				}
			}
			var dead *azservicebus.ReceivedMessage
			if tc.wantDeadLetter != "" {
				dlq, err := c.NewReceiverForQueue(tc.queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
				if err != nil {
					t.Fatal(err)
				}
				defer dlq.Close(context.Background())
				msgs, err := dlq.ReceiveMessages(timeout(t), 1, nil)
				if err != nil || len(msgs) != 1 {
					t.Fatalf("dead-letter queue: %d messages, %v", len(msgs), err)
				}
				dead = msgs[0]
				if err := dlq.CompleteMessage(timeout(t), dead, nil); err != nil {
					t.Fatal(err)
				}
			}
			stop()

			select {
			case extra := <-settled:
				t.Fatalf("unexpected further delivery: %+v", extra)
			default:
			}
			if len(bodies) != len(tc.want) || bodies[0] != `{"kind":"BackupFailed"}` {
				t.Errorf("handler saw %q", bodies)
			}
			if left := peekAll(t, c, tc.queue, 0); len(left) != 0 {
				t.Errorf("%d messages left in the queue", len(left))
			}
			if left := peekAll(t, c, tc.queue, azservicebus.SubQueueDeadLetter); len(left) != 0 {
				t.Errorf("%d further messages in the dead-letter queue", len(left))
			}
			if tc.wantDeadLetter == "" {
				return
			}
			if dead.MessageID != id || dead.DeadLetterReason == nil || *dead.DeadLetterReason != tc.wantDeadLetter {
				t.Fatalf("dead-lettered %s with reason %v, want %s with %s", dead.MessageID, dead.DeadLetterReason, id, tc.wantDeadLetter)
			}
			if tc.wantDeadLetter == PoisonReason && (dead.DeadLetterErrorDescription == nil || !strings.Contains(*dead.DeadLetterErrorDescription, `vault "gone"`)) {
				t.Errorf("dead-letter description %v does not carry the handler's error", dead.DeadLetterErrorDescription)
			}
		})
	}
}

// A handler that outlasts the queue's lock keeps the message: the receiver
// renews the lock, so the message is completed after one delivery.
func TestReceiverRenewsTheLockOfASlowHandler(t *testing.T) {
	t.Parallel()
	c := newClient(t, emulator(t).ConnectionString(), nil) // alerts-renew: LockDuration PT1S
	sendText(t, c, "alerts-renew", "slow-1", "slow")

	waits := make(chan time.Duration, 10)
	handled := 0
	r := NewReceiver(c, "alerts-renew", func(ctx context.Context, _ []byte) error {
		handled++
		// Hold on until the lock has been renewed three times: by then the
		// first one-second lock has long expired.
		for range 4 {
			select {
			case <-waits:
			case <-time.After(waitLimit):
				return errors.New("the lock was not renewed")
			}
		}
		return nil
	}, quiet)
	r.renewAfter = func(d time.Duration) <-chan time.Time {
		waits <- d
		return time.After(d)
	}
	settled, stop := runReceiver(t, r)
	got := nextSettlement(t, settled)
	stop()
	if want := (settlement{id: "slow-1", outcome: outcomeComplete, delivery: 1}); got != want || handled != 1 {
		t.Fatalf("settlement %+v after %d calls, want %+v after one", got, handled, want)
	}
}

// When the connection drops and the SDK's own retries fail, the receiver
// backs off and reopens; messages sent meanwhile are still handled.
func TestReceiverReconnectsAfterTheConnectionFails(t *testing.T) {
	t.Parallel()
	e := emulator(t)
	direct := newClient(t, e.ConnectionString(), nil)
	p := startProxy(t, e.Endpoint())
	viaProxy := newClient(t, strings.Replace(e.ConnectionString(), e.Endpoint(), p.addr(), 1), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 10 * time.Millisecond},
	})

	backoffs := make(chan time.Duration, 10)
	resume := make(chan time.Time)
	r := NewReceiver(viaProxy, "alerts-reconnect", func(context.Context, []byte) error { return nil }, quiet)
	r.retryAfter = func(d time.Duration) <-chan time.Time {
		backoffs <- d
		return resume
	}
	settled, stop := runReceiver(t, r)

	sendText(t, direct, "alerts-reconnect", "before", "1")
	if got := nextSettlement(t, settled); got.id != "before" || got.outcome != outcomeComplete {
		t.Fatalf("before the outage: %+v", got)
	}

	p.cut()
	select {
	case d := <-backoffs:
		if d != minRetryDelay {
			t.Errorf("first backoff %v, want %v", d, minRetryDelay)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver did not notice the lost connection")
	}
	p.restore()
	sendText(t, direct, "alerts-reconnect", "after", "2")
	close(resume)
	if got := nextSettlement(t, settled); got.id != "after" || got.outcome != outcomeComplete || got.err != nil {
		t.Fatalf("after the outage: %+v", got)
	}
	stop()
}

// proxy forwards TCP to the emulator and can cut every connection and
// refuse new ones, as a network outage would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func TestReceiverRunRefusesMisuse(t *testing.T) {
	for name, r := range map[string]*Receiver{
		"no client":  NewReceiver(nil, "alerts", func(context.Context, []byte) error { return nil }, nil),
		"no queue":   NewReceiver(&azservicebus.Client{}, "", func(context.Context, []byte) error { return nil }, nil),
		"no handler": NewReceiver(&azservicebus.Client{}, "alerts", nil, nil),
	} {
		if err := r.Run(context.Background()); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}
