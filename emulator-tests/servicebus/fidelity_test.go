package servicebus

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// Behaviours of the service that the JavaScript and .NET SDKs, or careful users, rely on beyond what
// the rest of these tests cover. The JavaScript SDK's own run is in emulator-tests/sdkconformance.

const kib = 1024

// fits tells whether a message of n body bytes can be added to a new batch on queue.
func fits(t *testing.T, s *azservicebus.Sender, n int) bool {
	t.Helper()
	b, err := s.NewMessageBatch(testContext(t, 10*time.Second), nil)
	if err != nil {
		t.Fatalf("NewMessageBatch: %v", err)
	}
	err = b.AddMessage(&azservicebus.Message{Body: make([]byte, n)}, nil)
	if errors.Is(err, azservicebus.ErrMessageTooLarge) {
		return false
	}
	if err != nil {
		t.Fatalf("AddMessage(%d bytes): %v", n, err)
	}
	return true
}

// The Standard tier's 256 KB limit is advertised on the sending link, so the client sizes batches by
// it and refuses a larger message before sending; a message just under it goes through whole.
func TestStandardTierAdvertisesAndKeepsTo256KB(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "size-limit")
	if !fits(t, s, 250*kib) {
		t.Fatal("a 250 KB message does not fit a batch on a Standard namespace")
	}
	if fits(t, s, 257*kib) {
		t.Fatal("a 257 KB message fits a batch: the link does not advertise Standard's 256 KB limit")
	}
	err := s.SendMessage(testContext(t, 10*time.Second), &azservicebus.Message{Body: make([]byte, 300*kib)}, nil)
	if err == nil {
		t.Fatal("a 300 KB message was sent to a Standard namespace")
	}
	body := make([]byte, 250*kib)
	for i := range body {
		body[i] = byte(i)
	}
	send(t, s, &azservicebus.Message{Body: body})
	r := newReceiver(t, c, "size-limit", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if m := receiveOne(t, r, 10*time.Second); string(m.Body) != string(body) {
		t.Fatalf("a 250 KB message came back with %d bytes, not the same", len(m.Body))
	}
}

// Properties to modify given to Abandon and DeadLetter on the receiving link become application
// properties of the message, with the types the client gave them, beside the ones it was sent with.
func TestPropertiesToModifyAreKeptOnAbandonAndDeadLetter(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "properties-to-modify"), &azservicebus.Message{
		Body:                  []byte("modify me"),
		ApplicationProperties: map[string]any{"origin": "test", "attempt": int64(0)},
	})
	r := newReceiver(t, c, "properties-to-modify", nil)
	m := receiveOne(t, r, 10*time.Second)
	if err := r.AbandonMessage(testContext(t, 10*time.Second), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"attempt": int64(1), "note": "retry"},
	}); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	m = receiveOne(t, r, 10*time.Second)
	want := map[string]any{"origin": "test", "attempt": int64(1), "note": "retry"}
	for k, v := range want {
		if got := m.ApplicationProperties[k]; got != v {
			t.Fatalf("after Abandon, property %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if err := r.DeadLetterMessage(testContext(t, 10*time.Second), m, &azservicebus.DeadLetterOptions{
		Reason:             to.Ptr("poison"),
		ErrorDescription:   to.Ptr("cannot parse"),
		PropertiesToModify: map[string]any{"final": true, "seen": int32(2)},
	}); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	dlq := newReceiver(t, c, "properties-to-modify", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := receiveOne(t, dlq, 10*time.Second)
	want = map[string]any{"origin": "test", "attempt": int64(1), "note": "retry", "final": true, "seen": int32(2),
		"DeadLetterReason": "poison", "DeadLetterErrorDescription": "cannot parse"}
	for k, v := range want {
		if got := d.ApplicationProperties[k]; got != v {
			t.Fatalf("dead-lettered message: property %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "poison" {
		t.Fatalf("DeadLetterReason = %v", d.DeadLetterReason)
	}
	if err := dlq.CompleteMessage(testContext(t, 10*time.Second), d, nil); err != nil {
		t.Fatalf("CompleteMessage on the dead-letter queue: %v", err)
	}
}

// A deferred message is settled through $management (update-disposition); its properties to modify
// are applied there too: on Defer (link), Abandon and DeadLetter (management).
func TestPropertiesToModifyAreKeptThroughManagement(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "properties-to-modify-mgmt"), textMessage("deferred"))
	r := newReceiver(t, c, "properties-to-modify-mgmt", nil)
	m := receiveOne(t, r, 10*time.Second)
	if err := r.DeferMessage(testContext(t, 10*time.Second), m, &azservicebus.DeferMessageOptions{
		PropertiesToModify: map[string]any{"deferred-by": "test"},
	}); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	seq := []int64{*m.SequenceNumber}
	deferred := func() *azservicebus.ReceivedMessage {
		t.Helper()
		got, err := r.ReceiveDeferredMessages(testContext(t, 10*time.Second), seq, nil)
		if err != nil || len(got) != 1 {
			t.Fatalf("ReceiveDeferredMessages = %d, %v", len(got), err)
		}
		return got[0]
	}
	m = deferred()
	if got := m.ApplicationProperties["deferred-by"]; got != "test" {
		t.Fatalf("after Defer, deferred-by = %#v", got)
	}
	if err := r.AbandonMessage(testContext(t, 10*time.Second), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"via": "management", "n": int32(3)},
	}); err != nil {
		t.Fatalf("AbandonMessage of a deferred message: %v", err)
	}
	m = deferred()
	if m.ApplicationProperties["via"] != "management" || m.ApplicationProperties["n"] != int32(3) {
		t.Fatalf("after Abandon through $management, properties = %#v", m.ApplicationProperties)
	}
	if err := r.DeadLetterMessage(testContext(t, 10*time.Second), m, &azservicebus.DeadLetterOptions{
		Reason:             to.Ptr("given up"),
		PropertiesToModify: map[string]any{"n": int64(4)},
	}); err != nil {
		t.Fatalf("DeadLetterMessage of a deferred message: %v", err)
	}
	dlq := newReceiver(t, c, "properties-to-modify-mgmt", &azservicebus.ReceiverOptions{
		SubQueue: azservicebus.SubQueueDeadLetter, ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete,
	})
	d := receiveOne(t, dlq, 10*time.Second)
	for k, v := range map[string]any{"deferred-by": "test", "via": "management", "n": int64(4), "DeadLetterReason": "given up"} {
		if got := d.ApplicationProperties[k]; got != v {
			t.Fatalf("dead-lettered through $management: property %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
}

// The transfer dead-letter queue is a queue of its own: what is dead-lettered lands in the
// dead-letter queue only.
func TestTransferDeadLetterQueueIsNotTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "transfer-dead-letter"), textMessage("dead"))
	r := newReceiver(t, c, "transfer-dead-letter", nil)
	if err := r.DeadLetterMessage(testContext(t, 10*time.Second), receiveOne(t, r, 10*time.Second), nil); err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	peek := func(sub azservicebus.SubQueue) int {
		t.Helper()
		pr := newReceiver(t, c, "transfer-dead-letter", &azservicebus.ReceiverOptions{SubQueue: sub})
		got, err := pr.PeekMessages(testContext(t, 10*time.Second), 10, nil)
		if err != nil {
			t.Fatalf("PeekMessages(sub-queue %d): %v", sub, err)
		}
		return len(got)
	}
	if n := peek(azservicebus.SubQueueDeadLetter); n != 1 {
		t.Fatalf("dead-letter queue holds %d messages, want 1", n)
	}
	if n := peek(azservicebus.SubQueueTransfer); n != 0 {
		t.Fatalf("transfer dead-letter queue holds %d messages, want 0", n)
	}
}

// A session entity is refused on every link with an error that names it and says sessions are not
// emulated; a session receiver on an entity without sessions is refused as the service refuses it.
func TestSessionEntitiesAreRefusedClearly(t *testing.T) {
	t.Parallel()
	localOnly(t) // a real broker serves sessions
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	const want = "does not support sessions: 'sessions' requires sessions"
	check := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error = %v, want one containing %q", what, err, want)
		}
	}
	s, err := c.NewSender("sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	check("send to a session queue", s.SendMessage(testContext(t, 30*time.Second), &azservicebus.Message{Body: []byte("x"), SessionID: to.Ptr("s1")}, nil), want)
	_, err = c.AcceptSessionForQueue(testContext(t, 30*time.Second), "sessions", "s1", nil)
	check("accept a session", err, want)
	r, err := c.NewReceiverForQueue("sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	_, err = r.ReceiveMessages(testContext(t, 30*time.Second), 1, nil)
	check("receive from a session queue without a session", err, want)
	_, err = c.AcceptSessionForQueue(testContext(t, 30*time.Second), "size-limit", "s1", nil)
	check("accept a session on a queue without sessions", err, "does not require sessions")
}

// The tier is part of the configuration: Basic has no topics, MaxMessageSizeInKilobytes is a
// Premium setting, and on Premium it sets the entity's limit (1 MB by default).
func TestTierSetsTheMessageSizeLimit(t *testing.T) {
	t.Parallel()
	localOnly(t)
	write := func(config string) string {
		path := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct{ name, tier, config, want string }{
		{"topic on Basic", "Basic", `{"UserConfig":{"Namespaces":[{"Name":"ns","Topics":[{"Name":"t"}]}]}}`, "Topics[0] is a topic, which the Basic tier does not have"},
		{"size on Standard", "", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q","Properties":{"MaxMessageSizeInKilobytes":2048}}]}]}}`, "MaxMessageSizeInKilobytes is a Premium setting; the tier is Standard"},
		{"size out of range", "Premium", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q","Properties":{"MaxMessageSizeInKilobytes":512}}]}]}}`, "MaxMessageSizeInKilobytes must be a whole number from 1024 to 102400"},
		{"unknown tier", "Gold", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q"}]}]}}`, "--tier Gold: want Basic, Standard or Premium"},
	} {
		e, err := Start(testContext(t, 30*time.Second), Options{ConfigPath: write(tc.config), Tier: tc.tier})
		if err == nil {
			e.Stop()
			t.Fatalf("%s: the emulator started", tc.name)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: error = %v\nwant it to contain %q", tc.name, err, tc.want)
		}
	}

	e, err := Start(testContext(t, 30*time.Second), Options{Tier: "Premium", ConfigPath: write(
		`{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"default"},{"Name":"big","Properties":{"MaxMessageSizeInKilobytes":4096}}]}]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop() })
	c, err := azservicebus.NewClientFromConnectionString(e.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	def, big := newSender(t, c, "default"), newSender(t, c, "big")
	if !fits(t, def, 1000*kib) || fits(t, def, 1025*kib) {
		t.Fatal("a Premium queue without MaxMessageSizeInKilobytes does not advertise 1 MB")
	}
	if !fits(t, big, 4000*kib) || fits(t, big, 4097*kib) {
		t.Fatal("a Premium queue with MaxMessageSizeInKilobytes 4096 does not advertise 4 MB")
	}
	send(t, big, &azservicebus.Message{Body: make([]byte, 3*kib*kib)})
}

// server.js loads rhea with its disposition merging fixed (see the top of server.js); a rhea it
// cannot patch is reported on stderr, and outcomes of consecutive deliveries may then be merged.
func TestRheaIsTheVersionServerJSPatches(t *testing.T) {
	localOnly(t)
	waitForLog(t, "Service Bus emulator listening at amqp://")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "is not the version this emulator patches") {
		t.Fatal("rhea/lib/session.js changed: update the disposition fix at the top of server.js")
	}
}

// A scheduled message's time to live runs from its scheduled enqueue time, so one scheduled further
// out than its time to live still arrives.
func TestScheduledMessageLivesFromItsEnqueueTime(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "scheduled-ttl")
	at := time.Now().Add(4 * time.Second)
	if _, err := s.ScheduleMessages(testContext(t, 10*time.Second), []*azservicebus.Message{{
		Body: []byte("later"), TimeToLive: to.Ptr(3 * time.Second),
	}}, at, nil); err != nil {
		t.Fatalf("ScheduleMessages: %v", err)
	}
	r := newReceiver(t, c, "scheduled-ttl", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	m := receiveOne(t, r, 20*time.Second)
	if string(m.Body) != "later" {
		t.Fatalf("body = %q", m.Body)
	}
	if m.EnqueuedTime == nil || m.EnqueuedTime.Before(at.Add(-100*time.Millisecond)) {
		t.Fatalf("enqueued at %v, scheduled for %v", m.EnqueuedTime, at)
	}
}
