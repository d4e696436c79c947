package servicebus

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestReceiveAndDeleteRemovesTheMessage(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "send-receive-delete"), textMessage("hello"))

	r := newReceiver(t, c, "send-receive-delete", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	m := receiveOne(t, r, 10*time.Second)
	if string(m.Body) != "hello" {
		t.Fatalf("body = %q, want hello", m.Body)
	}
	if m.DeliveryCount != 1 {
		t.Errorf("DeliveryCount = %d, want 1", m.DeliveryCount)
	}

	// The message is gone: a new receiver sees nothing, and peeking finds nothing.
	r2 := newReceiver(t, c, "send-receive-delete", nil)
	expectNothing(t, r2, 500*time.Millisecond)
	peeked, err := r2.PeekMessages(testContext(t, 5*time.Second), 10, nil)
	if err != nil {
		t.Fatalf("PeekMessages: %v", err)
	}
	if len(peeked) != 0 {
		t.Fatalf("peeked %d messages after receive-and-delete, want 0", len(peeked))
	}
}

func TestSendMessageBatchDeliversEveryMessageInOrder(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "batch")
	batch, err := s.NewMessageBatch(testContext(t, 5*time.Second), nil)
	if err != nil {
		t.Fatalf("NewMessageBatch: %v", err)
	}
	want := []string{"one", "two", "three", "four", "five"}
	for _, b := range want {
		if err := batch.AddMessage(&azservicebus.Message{Body: []byte(b), ApplicationProperties: map[string]any{"name": b}}, nil); err != nil {
			t.Fatalf("AddMessage(%s): %v", b, err)
		}
	}
	if err := s.SendMessageBatch(testContext(t, 10*time.Second), batch, nil); err != nil {
		t.Fatalf("SendMessageBatch: %v", err)
	}

	r := newReceiver(t, c, "batch", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, r, len(want), 10*time.Second)
	if !slices.Equal(bodies(got), want) {
		t.Fatalf("bodies = %q, want %q", bodies(got), want)
	}
	for _, m := range got {
		if m.ApplicationProperties["name"] != string(m.Body) {
			t.Errorf("message %q has application property name=%v", m.Body, m.ApplicationProperties["name"])
		}
	}
}

func TestMessagePropertiesArePreserved(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	scheduled := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	sent := &azservicebus.Message{
		Body:                 []byte(`{"alert":"disk"}`),
		MessageID:            to.Ptr("message-1"),
		ContentType:          to.Ptr("application/json"),
		CorrelationID:        to.Ptr("correlation-1"),
		Subject:              to.Ptr("backup-failed"),
		To:                   to.Ptr("ops"),
		ReplyTo:              to.Ptr("replies"),
		ReplyToSessionID:     to.Ptr("reply-session"),
		TimeToLive:           to.Ptr(10 * time.Minute),
		ScheduledEnqueueTime: &scheduled,
		ApplicationProperties: map[string]any{
			"string": "text",
			"int64":  int64(1) << 40,
			"int32":  int32(-7),
			"bool":   true,
			"double": 2.5,
			"time":   time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		},
	}
	before := time.Now().Add(-time.Second)
	send(t, newSender(t, c, "properties"), sent)

	r := newReceiver(t, c, "properties", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	m := receiveOne(t, r, 10*time.Second)

	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("Body", string(m.Body), string(sent.Body))
	check("MessageID", m.MessageID, "message-1")
	check("ContentType", m.ContentType, sent.ContentType)
	check("CorrelationID", m.CorrelationID, sent.CorrelationID)
	check("Subject", m.Subject, sent.Subject)
	check("To", m.To, sent.To)
	check("ReplyTo", m.ReplyTo, sent.ReplyTo)
	check("ReplyToSessionID", m.ReplyToSessionID, sent.ReplyToSessionID)
	check("TimeToLive", m.TimeToLive, sent.TimeToLive)
	if m.ScheduledEnqueueTime == nil || !m.ScheduledEnqueueTime.Equal(scheduled) {
		t.Errorf("ScheduledEnqueueTime = %v, want %v", m.ScheduledEnqueueTime, scheduled)
	}
	for k, v := range sent.ApplicationProperties {
		got := m.ApplicationProperties[k]
		if tv, ok := v.(time.Time); ok {
			if gt, ok := got.(time.Time); !ok || !gt.Equal(tv) {
				t.Errorf("ApplicationProperties[%s] = %#v, want %v", k, got, tv)
			}
			continue
		}
		check("ApplicationProperties["+k+"]", got, v)
	}
	if m.SequenceNumber == nil || *m.SequenceNumber <= 0 {
		t.Errorf("SequenceNumber = %v, want a positive number", m.SequenceNumber)
	}
	if m.EnqueuedTime == nil || m.EnqueuedTime.Before(before) || m.EnqueuedTime.After(time.Now().Add(time.Second)) {
		t.Errorf("EnqueuedTime = %v, want about now", m.EnqueuedTime)
	}
	if m.ExpiresAt == nil || !m.ExpiresAt.Equal(m.EnqueuedTime.Add(10*time.Minute)) {
		t.Errorf("ExpiresAt = %v, want EnqueuedTime + TimeToLive", m.ExpiresAt)
	}
}

func TestSequenceNumbersRiseWithEachMessage(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "sequence"), textMessage("a"), textMessage("b"), textMessage("c"))
	r := newReceiver(t, c, "sequence", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, r, 3, 10*time.Second)
	for i := 1; i < len(got); i++ {
		if *got[i].SequenceNumber <= *got[i-1].SequenceNumber {
			t.Fatalf("sequence numbers %d then %d, want rising", *got[i-1].SequenceNumber, *got[i].SequenceNumber)
		}
	}
}

func TestTopicCopiesEachMessageToEverySubscription(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "fanout"), textMessage("for everyone"))

	for _, sub := range []string{"first", "second"} {
		r, err := c.NewReceiverForSubscription("fanout", sub, nil)
		if err != nil {
			t.Fatalf("NewReceiverForSubscription(%s): %v", sub, err)
		}
		m := receiveOne(t, r, 10*time.Second)
		if string(m.Body) != "for everyone" {
			t.Errorf("subscription %s got %q", sub, m.Body)
		}
		// Completing in one subscription leaves the other subscription's copy alone.
		if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("CompleteMessage in %s: %v", sub, err)
		}
		_ = r.Close(testContext(t, 5*time.Second))
	}
}

func TestUnknownEntityIsRejected(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s, err := c.NewSender("no-such-queue", nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	defer s.Close(testContext(t, 5*time.Second))
	err = s.SendMessage(testContext(t, 20*time.Second), textMessage("lost"), nil)
	if err == nil {
		t.Fatal("SendMessage to an unknown queue succeeded, want an error")
	}
}
