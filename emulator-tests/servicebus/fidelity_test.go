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

// Sessions: a session queue takes only messages with a SessionId, a receiver must accept a session
// (by ID or the next free one) and then gets that session's messages only, in order; a held session
// cannot be accepted twice; session state and the session lock work through $management; closing
// the receiver frees the session. A plain receiver on a session queue, and a session receiver on a
// queue without sessions, are refused as Service Bus refuses them.
func TestSessions(t *testing.T) {
	t.Parallel()
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	check := func(what string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if emu != nil && !strings.Contains(err.Error(), want) { // the wording is the emulator's
			t.Fatalf("%s: error = %v, want one containing %q", what, err, want)
		}
	}
	s := newSender(t, c, "sessions")
	check("send without a SessionId", s.SendMessage(testContext(t, 10*time.Second), textMessage("nobody's"), nil), "SessionId was not set")
	for _, m := range []struct{ session, body string }{{"s1", "a1"}, {"s2", "b1"}, {"s1", "a2"}, {"s2", "b2"}, {"s1", "a3"}} {
		send(t, s, &azservicebus.Message{Body: []byte(m.body), SessionID: to.Ptr(m.session)})
	}

	plain := newReceiver(t, c, "sessions", nil)
	_, err = plain.ReceiveMessages(testContext(t, 10*time.Second), 1, nil)
	check("a receiver without a session", err, "requires sessions")
	_, err = c.AcceptSessionForQueue(testContext(t, 10*time.Second), "size-limit", "s1", nil)
	check("a session receiver on a queue without sessions", err, "does not require sessions")

	s1, err := c.AcceptSessionForQueue(testContext(t, 10*time.Second), "sessions", "s1", nil)
	if err != nil {
		t.Fatalf("AcceptSessionForQueue(s1): %v", err)
	}
	if s1.SessionID() != "s1" || !s1.LockedUntil().After(time.Now()) {
		t.Fatalf("session %q locked until %v", s1.SessionID(), s1.LockedUntil())
	}
	got := []*azservicebus.ReceivedMessage{}
	for ctx := testContext(t, 10*time.Second); len(got) < 3; {
		ms, err := s1.ReceiveMessages(ctx, 3-len(got), nil)
		if err != nil {
			t.Fatalf("receive from s1 after %d: %v", len(got), err)
		}
		got = append(got, ms...)
	}
	if b := bodies(got); strings.Join(b, ",") != "a1,a2,a3" {
		t.Fatalf("session s1 gave %v, want a1,a2,a3", b)
	}
	for _, m := range got {
		if m.SessionID == nil || *m.SessionID != "s1" {
			t.Fatalf("message %q has SessionID %v", m.Body, m.SessionID)
		}
		if err := s1.CompleteMessage(testContext(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
	_, err = c.AcceptSessionForQueue(testContext(t, 10*time.Second), "sessions", "s1", nil)
	check("accept a held session", err, "cannot be accepted")

	if err := s1.SetSessionState(testContext(t, 10*time.Second), []byte("checkpoint"), nil); err != nil {
		t.Fatalf("SetSessionState: %v", err)
	}
	if st, err := s1.GetSessionState(testContext(t, 10*time.Second), nil); err != nil || string(st) != "checkpoint" {
		t.Fatalf("GetSessionState = %q, %v", st, err)
	}
	before := s1.LockedUntil()
	if err := s1.RenewSessionLock(testContext(t, 10*time.Second), nil); err != nil || !s1.LockedUntil().After(before) {
		t.Fatalf("RenewSessionLock: %v; locked until %v, was %v", err, s1.LockedUntil(), before)
	}

	next, err := c.AcceptNextSessionForQueue(testContext(t, 10*time.Second), "sessions", nil)
	if err != nil {
		t.Fatalf("AcceptNextSessionForQueue: %v", err)
	}
	if next.SessionID() != "s2" {
		t.Fatalf("next free session is %q, want s2 (s1 is held)", next.SessionID())
	}
	peeked, err := next.PeekMessages(testContext(t, 10*time.Second), 10, nil)
	if err != nil || strings.Join(bodies(peeked), ",") != "b1,b2" {
		t.Fatalf("peek on session s2 = %v, %v; want b1,b2 only", bodies(peeked), err)
	}
	var fromS2 []*azservicebus.ReceivedMessage
	for ctx := testContext(t, 10*time.Second); len(fromS2) < 2; {
		ms, err := next.ReceiveMessages(ctx, 2-len(fromS2), nil)
		if err != nil {
			t.Fatalf("receive from s2 after %d: %v", len(fromS2), err)
		}
		fromS2 = append(fromS2, ms...)
	}
	for _, m := range fromS2 {
		if err := next.CompleteMessage(testContext(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
	_ = next.Close(context.Background())

	// With no session free, accepting the next one waits, as on Service Bus: until the client's
	// timeout (an error) or until a session has a message.
	// (The client's context and the broker's com.microsoft:timeout, set from it, run out together.)
	if _, err = c.AcceptNextSessionForQueue(testContext(t, 2*time.Second), "sessions", nil); err == nil {
		t.Fatal("accepted the next session with none free")
	}
	accepted := make(chan *azservicebus.SessionReceiver, 1)
	acceptErr := make(chan error, 1)
	go func() {
		r, err := c.AcceptNextSessionForQueue(testContext(t, 30*time.Second), "sessions", nil)
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- r
	}()
	if emu != nil {
		waitForLog(t, "session receiver waits for a free session on sessions")
	}
	send(t, s, &azservicebus.Message{Body: []byte("c1"), SessionID: to.Ptr("s3")})
	select {
	case r := <-accepted:
		defer r.Close(context.Background())
		if r.SessionID() != "s3" {
			t.Fatalf("the waiting accept got session %q, want s3", r.SessionID())
		}
	case err := <-acceptErr:
		t.Fatalf("the waiting accept failed: %v", err)
	}

	// Closing the receiver frees the session; its state stays.
	if err := s1.Close(testContext(t, 10*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := c.AcceptSessionForQueue(testContext(t, 10*time.Second), "sessions", "s1", nil)
	if err != nil {
		t.Fatalf("accept s1 after its receiver closed: %v", err)
	}
	defer again.Close(context.Background())
	if st, err := again.GetSessionState(testContext(t, 10*time.Second), nil); err != nil || string(st) != "checkpoint" {
		t.Fatalf("GetSessionState after re-accepting = %q, %v", st, err)
	}
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

// A session lock that runs out frees the session: the receiver that held it loses it (its link is
// detached with session-lock-lost) and another receiver can accept it.
func TestExpiredSessionLockFreesTheSession(t *testing.T) {
	t.Parallel()
	localOnly(t) // Azure refuses a lock duration under 5 s
	c, err := azservicebus.NewClientFromConnectionString(connStr, &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	send(t, newSender(t, c, "session-lock"), &azservicebus.Message{Body: []byte("held"), SessionID: to.Ptr("x")})
	first, err := c.AcceptSessionForQueue(testContext(t, 10*time.Second), "session-lock", "x", nil) // LockDuration PT1S
	if err != nil {
		t.Fatalf("AcceptSessionForQueue: %v", err)
	}
	defer first.Close(context.Background())
	until := first.LockedUntil()
	for time.Now().Before(until.Add(200 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond) // the session lock is the condition waited on
	}
	second, err := c.AcceptSessionForQueue(testContext(t, 10*time.Second), "session-lock", "x", nil)
	if err != nil {
		t.Fatalf("accept the session after its lock ran out: %v", err)
	}
	defer second.Close(context.Background())
	msgs, err := second.ReceiveMessages(testContext(t, 10*time.Second), 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "held" {
		t.Fatalf("the new holder received %v, %v", bodies(msgs), err)
	}
	if err := first.RenewSessionLock(testContext(t, 10*time.Second), nil); err == nil {
		t.Fatal("the first receiver renewed a session it lost")
	}
}
