package alerts

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
	"github.com/coffer-backup/coffer/shared/clocktest"
)

// The emulators start on first use, so the decoder tests and fuzzing run
// without them; TestMain stops whatever was started.
var (
	emu ondemand.Emulators
	az  *azurite.Azurite
	sb  *servicebus.Emulator
)

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func emulators(t *testing.T) {
	t.Helper()
	emu.Start(t)
	az, sb = emu.Azurite, emu.ServiceBus
}

var tableSeq atomic.Int64

// newTable is a fresh table per test, so tests never see each other's rows.
func newTable(t *testing.T) *aztables.Client {
	t.Helper()
	emulators(t)
	svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("alerts%d", tableSeq.Add(1))
	return svc.NewClient(name)
}

func newStore(t *testing.T, pub Publisher) (*Store, *clocktest.Fake, *aztables.Client) {
	t.Helper()
	tbl := newTable(t)
	c := newClock()
	s := New(tbl, pub, c.Now)
	if err := s.EnsureTable(testContext(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(testContext(t, 30*time.Second)); err != nil {
		t.Fatalf("EnsureTable on an existing table: %v", err)
	}
	return s, c, tbl
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func sbClient(t *testing.T) *azservicebus.Client {
	t.Helper()
	emulators(t)
	c, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// receiveByID completes messages on the alerts queue until the one with
// MessageID id arrives; earlier tests' leftovers are dropped on the way.
func receiveByID(t *testing.T, r *azservicebus.Receiver, id string) *azservicebus.ReceivedMessage {
	t.Helper()
	ctx := testContext(t, 20*time.Second)
	for {
		msgs, err := r.ReceiveMessages(ctx, 10, nil)
		if err != nil {
			t.Fatalf("waiting for message %s: %v", id, err)
		}
		var found *azservicebus.ReceivedMessage
		for _, m := range msgs {
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				t.Fatalf("CompleteMessage: %v", err)
			}
			if m.MessageID == id && found == nil {
				found = m
			} else if m.MessageID == id {
				t.Fatalf("message %s was delivered twice", id)
			}
		}
		if found != nil {
			return found
		}
	}
}

// okPublisher accepts every message and keeps it.
type okPublisher struct {
	mu   sync.Mutex
	msgs []*azservicebus.Message
}

func (p *okPublisher) SendMessage(_ context.Context, m *azservicebus.Message, _ *azservicebus.SendMessageOptions) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, m)
	return nil
}

// switchPublisher fails while down, as Service Bus does during an outage,
// and otherwise forwards to next, counting what got through.
type switchPublisher struct {
	mu   sync.Mutex
	down bool
	next Publisher
	sent map[string]int
}

func (p *switchPublisher) SendMessage(ctx context.Context, m *azservicebus.Message, o *azservicebus.SendMessageOptions) error {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		return fmt.Errorf("amqp: connection refused (test outage)")
	}
	if err := p.next.SendMessage(ctx, m, o); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent == nil {
		p.sent = map[string]int{}
	}
	p.sent[*m.MessageID]++
	return nil
}

func (p *switchPublisher) setDown(d bool) { p.mu.Lock(); p.down = d; p.mu.Unlock() }

// newClock is the test's clock, which it moves by hand.
func newClock() *clocktest.Fake { return clocktest.New(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)) }
