package servicebus

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

var zeroLockToken [16]byte

func TestPeekLockCompleteRemovesTheMessage(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "peek-lock-complete"), textMessage("work"))

	r := newReceiver(t, c, "peek-lock-complete", nil)
	m := receiveOne(t, r, 10*time.Second)
	if m.LockToken == zeroLockToken {
		t.Fatal("a peek-locked message has no lock token")
	}
	if m.LockedUntil == nil {
		t.Fatal("a peek-locked message has no LockedUntil")
	}
	if m.DeliveryCount != 1 {
		t.Errorf("DeliveryCount = %d, want 1", m.DeliveryCount)
	}
	// While locked, the message is not handed to anyone else.
	other := newReceiver(t, c, "peek-lock-complete", nil)
	expectNothing(t, other, 300*time.Millisecond)

	if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
	peeked, err := r.PeekMessages(testContext(t, 5*time.Second), 10, nil)
	if err != nil {
		t.Fatalf("PeekMessages: %v", err)
	}
	if len(peeked) != 0 {
		t.Fatalf("%d messages left after Complete, want 0", len(peeked))
	}
}

func TestLockedUntilFollowsTheQueueLockDuration(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "lock-duration" has LockDuration PT5S
	send(t, newSender(t, c, "lock-duration"), textMessage("x"))
	r := newReceiver(t, c, "lock-duration", nil)
	before := time.Now()
	m := receiveOne(t, r, 10*time.Second)
	after := time.Now()
	lo, hi := before.Add(5*time.Second-500*time.Millisecond), after.Add(5*time.Second+500*time.Millisecond)
	if m.LockedUntil.Before(lo) || m.LockedUntil.After(hi) {
		t.Fatalf("LockedUntil = %v, want about 5s after receipt (%v .. %v)", m.LockedUntil, lo, hi)
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
}

func TestExpiredLockRedeliversWithRisingDeliveryCount(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "lock-expiry": LockDuration PT1S, MaxDeliveryCount 5
	send(t, newSender(t, c, "lock-expiry"), textMessage("slow"))
	r := newReceiver(t, c, "lock-expiry", nil)

	first := receiveOne(t, r, 10*time.Second)
	// Do not settle: after the 1 s lock the message comes back.
	second := receiveOne(t, r, 10*time.Second)
	if !second.LockedUntil.After(*first.LockedUntil) {
		t.Errorf("redelivered LockedUntil %v is not after the first lock %v", second.LockedUntil, first.LockedUntil)
	}
	third := receiveOne(t, r, 10*time.Second)

	if got := []uint32{first.DeliveryCount, second.DeliveryCount, third.DeliveryCount}; !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("delivery counts = %v, want [1 2 3]", got)
	}
	if *first.SequenceNumber != *third.SequenceNumber || string(third.Body) != "slow" {
		t.Fatalf("redelivered a different message: seq %d/%d body %q", *first.SequenceNumber, *third.SequenceNumber, third.Body)
	}
	if first.LockToken == second.LockToken {
		t.Error("the redelivery reused the expired lock token")
	}
	// The expired lock can no longer settle the message; the current one can.
	if err := r.CompleteMessage(testContext(t, 5*time.Second), first, nil); !isLockLost(err) {
		t.Errorf("Complete with an expired lock: err = %v, want ErrCodeLockLost", err)
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), third, nil); err != nil {
		t.Fatalf("CompleteMessage with the current lock: %v", err)
	}
}

func isLockLost(err error) bool {
	var sbErr *azservicebus.Error
	return errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost
}

func TestMaxDeliveryCountMovesTheMessageToTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "max-delivery": LockDuration PT0.5S, MaxDeliveryCount 3
	send(t, newSender(t, c, "max-delivery"), &azservicebus.Message{Body: []byte("poison"), MessageID: to.Ptr("poison-1")})
	r := newReceiver(t, c, "max-delivery", nil)

	for want := uint32(1); want <= 3; want++ {
		m := receiveOne(t, r, 10*time.Second)
		if m.DeliveryCount != want {
			t.Fatalf("delivery %d has DeliveryCount %d", want, m.DeliveryCount)
		}
		// Let the lock expire.
	}
	expectNothing(t, r, 1500*time.Millisecond)

	dlq := newReceiver(t, c, "max-delivery", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	m := receiveOne(t, dlq, 10*time.Second)
	if m.MessageID != "poison-1" || string(m.Body) != "poison" {
		t.Fatalf("dead-lettered message = %q/%q, want poison-1/poison", m.MessageID, m.Body)
	}
	if m.DeadLetterReason == nil || *m.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("DeadLetterReason = %v, want MaxDeliveryCountExceeded", m.DeadLetterReason)
	}
	if err := dlq.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("Complete in the dead-letter queue: %v", err)
	}
}

func TestAbandonRedeliversWithDeliveryCountPlusOne(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "abandon": LockDuration PT1M, MaxDeliveryCount 5
	send(t, newSender(t, c, "abandon"), textMessage("retry me"))
	r := newReceiver(t, c, "abandon", nil)

	first := receiveOne(t, r, 10*time.Second)
	if err := r.AbandonMessage(testContext(t, 5*time.Second), first, nil); err != nil {
		t.Fatalf("AbandonMessage: %v", err)
	}
	// Redelivered at once, not after the one-minute lock.
	second := receiveOne(t, r, 3*time.Second)
	if second.DeliveryCount != first.DeliveryCount+1 {
		t.Fatalf("DeliveryCount after Abandon = %d, want %d", second.DeliveryCount, first.DeliveryCount+1)
	}
	if *second.SequenceNumber != *first.SequenceNumber {
		t.Fatalf("Abandon redelivered sequence number %d, want %d", *second.SequenceNumber, *first.SequenceNumber)
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), second, nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
}

func TestDeadLetterMessageCarriesReasonAndDescription(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "dead-letter"), &azservicebus.Message{Body: []byte("bad"), ApplicationProperties: map[string]any{"tenant": "t1"}})
	r := newReceiver(t, c, "dead-letter", nil)
	m := receiveOne(t, r, 10*time.Second)
	err := r.DeadLetterMessage(testContext(t, 5*time.Second), m, &azservicebus.DeadLetterOptions{
		Reason:           to.Ptr("InvalidPayload"),
		ErrorDescription: to.Ptr("the alert could not be parsed"),
	})
	if err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	expectNothing(t, r, 300*time.Millisecond)

	dlq := newReceiver(t, c, "dead-letter", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := receiveOne(t, dlq, 10*time.Second)
	if string(d.Body) != "bad" || d.ApplicationProperties["tenant"] != "t1" {
		t.Fatalf("dead-lettered message = %q %v", d.Body, d.ApplicationProperties)
	}
	if d.DeadLetterReason == nil || *d.DeadLetterReason != "InvalidPayload" {
		t.Errorf("DeadLetterReason = %v, want InvalidPayload", d.DeadLetterReason)
	}
	if d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != "the alert could not be parsed" {
		t.Errorf("DeadLetterErrorDescription = %v", d.DeadLetterErrorDescription)
	}
	if err := dlq.CompleteMessage(testContext(t, 5*time.Second), d, nil); err != nil {
		t.Fatalf("Complete in the dead-letter queue: %v", err)
	}
}

func TestDeferThenReceiveDeferredBySequenceNumber(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "defer"), textMessage("later"), textMessage("now"))
	r := newReceiver(t, c, "defer", nil)

	later := receiveOne(t, r, 10*time.Second)
	if string(later.Body) != "later" {
		t.Fatalf("first message = %q, want later", later.Body)
	}
	if err := r.DeferMessage(testContext(t, 5*time.Second), later, nil); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	// A deferred message is not received again by ordinary receives.
	now := receiveOne(t, r, 10*time.Second)
	if string(now.Body) != "now" {
		t.Fatalf("after deferring, received %q, want now", now.Body)
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), now, nil); err != nil {
		t.Fatalf("CompleteMessage(now): %v", err)
	}
	expectNothing(t, r, 300*time.Millisecond)

	got, err := r.ReceiveDeferredMessages(testContext(t, 5*time.Second), []int64{*later.SequenceNumber}, nil)
	if err != nil {
		t.Fatalf("ReceiveDeferredMessages: %v", err)
	}
	if len(got) != 1 || string(got[0].Body) != "later" {
		t.Fatalf("ReceiveDeferredMessages = %q, want [later]", bodies(got))
	}
	d := got[0]
	if d.State != azservicebus.MessageStateDeferred {
		t.Errorf("State = %v, want deferred", d.State)
	}
	if d.LockToken == zeroLockToken || d.LockedUntil == nil {
		t.Fatal("a deferred message received in peek-lock mode has no lock")
	}
	// Settling a deferred message goes through $management update-disposition.
	if err := r.CompleteMessage(testContext(t, 5*time.Second), d, nil); err != nil {
		t.Fatalf("CompleteMessage(deferred): %v", err)
	}
	again, err := r.ReceiveDeferredMessages(testContext(t, 5*time.Second), []int64{*later.SequenceNumber}, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeNotFound {
		t.Fatalf("receiving the completed deferred message again = %q, %v; want ErrCodeNotFound", bodies(again), err)
	}
	peeked, err := r.PeekMessages(testContext(t, 5*time.Second), 10, nil)
	if err != nil || len(peeked) != 0 {
		t.Fatalf("PeekMessages after completing everything = %q, %v; want none", bodies(peeked), err)
	}
}

func TestDeferredMessageCanBeDeadLetteredThroughManagement(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "defer-dead-letter"), textMessage("deferred then dead"))
	r := newReceiver(t, c, "defer-dead-letter", nil)
	m := receiveOne(t, r, 10*time.Second)
	if err := r.DeferMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("DeferMessage: %v", err)
	}
	got, err := r.ReceiveDeferredMessages(testContext(t, 5*time.Second), []int64{*m.SequenceNumber}, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReceiveDeferredMessages = %d messages, %v", len(got), err)
	}
	if err := r.DeadLetterMessage(testContext(t, 5*time.Second), got[0], &azservicebus.DeadLetterOptions{Reason: to.Ptr("GaveUp")}); err != nil {
		t.Fatalf("DeadLetterMessage(deferred): %v", err)
	}
	dlq := newReceiver(t, c, "defer-dead-letter", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter, ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	d := receiveOne(t, dlq, 10*time.Second)
	if string(d.Body) != "deferred then dead" || d.DeadLetterReason == nil || *d.DeadLetterReason != "GaveUp" {
		t.Fatalf("dead-letter queue holds %q with reason %v", d.Body, d.DeadLetterReason)
	}
}

func TestRenewMessageLockExtendsLockedUntil(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "renew-lock": LockDuration PT2S
	send(t, newSender(t, c, "renew-lock"), textMessage("long job"))
	r := newReceiver(t, c, "renew-lock", nil)
	m := receiveOne(t, r, 10*time.Second)
	firstLock := *m.LockedUntil

	// Keep renewing past the original lock; the message must not come back meanwhile.
	for i := 0; i < 3; i++ {
		time.Sleep(1 * time.Second)
		if err := r.RenewMessageLock(testContext(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("RenewMessageLock #%d: %v", i+1, err)
		}
	}
	if !m.LockedUntil.After(firstLock.Add(2 * time.Second)) {
		t.Fatalf("LockedUntil after renewing = %v, want well after the first lock %v", m.LockedUntil, firstLock)
	}
	if time.Now().Before(firstLock) {
		t.Fatal("test did not outlive the first lock")
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("CompleteMessage after renewals (the lock should still be held): %v", err)
	}
}

func TestPeekMessagesDoesNotLock(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "peek"), textMessage("p1"), textMessage("p2"), textMessage("p3"))
	r := newReceiver(t, c, "peek", nil)

	first, err := r.PeekMessages(testContext(t, 5*time.Second), 2, nil)
	if err != nil {
		t.Fatalf("PeekMessages: %v", err)
	}
	if !slices.Equal(bodies(first), []string{"p1", "p2"}) {
		t.Fatalf("first peek = %q, want [p1 p2]", bodies(first))
	}
	for _, m := range first {
		if m.LockToken != zeroLockToken || m.SequenceNumber == nil {
			t.Fatalf("peeked message %q: lock token %x, sequence number %v", m.Body, m.LockToken, m.SequenceNumber)
		}
	}
	// The next peek continues after the last peeked sequence number.
	next, err := r.PeekMessages(testContext(t, 5*time.Second), 10, nil)
	if err != nil {
		t.Fatalf("PeekMessages: %v", err)
	}
	if !slices.Equal(bodies(next), []string{"p3"}) {
		t.Fatalf("second peek = %q, want [p3]", bodies(next))
	}
	// Peeking locked nothing: all three can be received and completed at once.
	got := receiveN(t, r, 3, 10*time.Second)
	for _, m := range got {
		if m.DeliveryCount != 1 {
			t.Errorf("%q DeliveryCount = %d after peeks, want 1", m.Body, m.DeliveryCount)
		}
		if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
	// An empty queue peeks as no messages (204), not an error.
	empty, err := r.PeekMessages(testContext(t, 5*time.Second), 10, &azservicebus.PeekMessagesOptions{FromSequenceNumber: to.Ptr(int64(0))})
	if err != nil || len(empty) != 0 {
		t.Fatalf("peek on an empty queue = %q, %v", bodies(empty), err)
	}
}

func TestReceiverGetsNoMoreMessagesThanItsCredit(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	send(t, newSender(t, c, "credit"), textMessage("c1"), textMessage("c2"), textMessage("c3"), textMessage("c4"))
	r := newReceiver(t, c, "credit", nil)

	// Wait long enough after the first message that both credited messages surely arrive.
	got, err := r.ReceiveMessages(testContext(t, 10*time.Second), 2, &azservicebus.ReceiveMessagesOptions{TimeAfterFirstMessage: time.Second})
	if err != nil {
		t.Fatalf("ReceiveMessages: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("ReceiveMessages(2) returned %d messages", len(got))
	}
	// The two messages beyond the credit stay in the queue, unlocked: another receiver gets them.
	other := newReceiver(t, c, "credit", nil)
	rest := receiveN(t, other, 2, 10*time.Second)
	if !slices.Equal(bodies(rest), []string{"c3", "c4"}) {
		t.Fatalf("other receiver got %q, want [c3 c4]", bodies(rest))
	}
	for _, m := range append(got, rest...) {
		if m.DeliveryCount != 1 {
			t.Errorf("%q DeliveryCount = %d, want 1", m.Body, m.DeliveryCount)
		}
	}
}

func TestSettlingAfterTheLockExpiredFailsWithLockLost(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "settle-after-lock-lost": LockDuration PT0.5S
	send(t, newSender(t, c, "settle-after-lock-lost"), textMessage("late"))
	r := newReceiver(t, c, "settle-after-lock-lost", nil)
	m := receiveOne(t, r, 10*time.Second)
	time.Sleep(time.Until(*m.LockedUntil) + 200*time.Millisecond)
	if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); !isLockLost(err) {
		t.Fatalf("Complete after the lock expired: err = %v, want ErrCodeLockLost", err)
	}
	if err := r.RenewMessageLock(testContext(t, 5*time.Second), m, nil); !isLockLost(err) {
		t.Fatalf("RenewMessageLock after the lock expired: err = %v, want ErrCodeLockLost", err)
	}
}
