package servicebus

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestClientAuthenticatesWithSASLAnonymousAndACBSToken(t *testing.T) {
	t.Parallel()
	// The client dials with SASL ANONYMOUS and then puts a token on $cbs for the entity before it
	// attaches a link; the emulator must accept the token (202) or the send below fails.
	c := newClient(t)
	send(t, newSender(t, c, "cbs"), textMessage("authorised"))
	r := newReceiver(t, c, "cbs", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if m := receiveOne(t, r, 10*time.Second); string(m.Body) != "authorised" {
		t.Fatalf("body = %q", m.Body)
	}
	// And the emulator saw the put-token for this entity's audience.
	if emu == nil {
		return
	}
	waitForLog(t, "cbs put-token for amqp://"+emu.Endpoint()+"/cbs")
}

// waitForLog waits for a line in the emulator's log (written with SB_EMULATOR_DEBUG=1).
func waitForLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator log has no %q", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSurplusPrefetchIsReleasedWithoutCountingADelivery(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "released-prefetch")
	send(t, s, textMessage("first"))
	r := newReceiver(t, c, "released-prefetch", nil)

	// Ask for 5 with only one waiting: 4 credits stay open on the link after the call returns.
	got, err := r.ReceiveMessages(testContext(t, 10*time.Second), 5, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReceiveMessages = %d messages, %v; want 1", len(got), err)
	}
	if err := r.CompleteMessage(testContext(t, 5*time.Second), got[0], nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
	// The next message goes to that open credit; the client releases it because nobody is
	// receiving. A release puts it back as it was, so it is not counted as a delivery.
	send(t, s, textMessage("second"))
	time.Sleep(300 * time.Millisecond)

	other := newReceiver(t, c, "released-prefetch", nil)
	m := receiveOne(t, other, 10*time.Second)
	if string(m.Body) != "second" || m.DeliveryCount != 1 {
		t.Fatalf("got %q with DeliveryCount %d, want second with 1", m.Body, m.DeliveryCount)
	}
	if err := other.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
}

func TestLockOfADetachedReceiverExpiresThenTheMessageIsRedelivered(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "detach": LockDuration PT1S
	send(t, newSender(t, c, "detach"), textMessage("orphan"))
	r := newReceiver(t, c, "detach", nil)
	first := receiveOne(t, r, 10*time.Second)
	if err := r.Close(testContext(t, 5*time.Second)); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// The lock outlives the receiver, so the message stays hidden until the lock expires.
	next := newReceiver(t, c, "detach", nil)
	expectNothing(t, next, time.Until(*first.LockedUntil)-200*time.Millisecond)
	m := receiveOne(t, next, 5*time.Second)
	if string(m.Body) != "orphan" || m.DeliveryCount != 2 {
		t.Fatalf("got %q with DeliveryCount %d, want orphan with 2", m.Body, m.DeliveryCount)
	}
	if err := next.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("CompleteMessage: %v", err)
	}
}

func TestExpiredMessageIsDeadLetteredWhenTheQueueSaysSo(t *testing.T) {
	t.Parallel()
	c := newClient(t) // queue "ttl-expiry": DefaultMessageTimeToLive PT0.5S, DeadLetteringOnMessageExpiration
	send(t, newSender(t, c, "ttl-expiry"), textMessage("stale"))
	time.Sleep(700 * time.Millisecond)

	r := newReceiver(t, c, "ttl-expiry", nil)
	expectNothing(t, r, 300*time.Millisecond)
	dlq := newReceiver(t, c, "ttl-expiry", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter, ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	m := receiveOne(t, dlq, 5*time.Second)
	if string(m.Body) != "stale" || m.DeadLetterReason == nil || *m.DeadLetterReason != "TTLExpiredException" {
		t.Fatalf("dead-letter queue holds %q with reason %v", m.Body, m.DeadLetterReason)
	}
}

func TestScheduledMessagesAppearAtTheirEnqueueTime(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "scheduled")
	at := time.Now().Add(1500 * time.Millisecond)
	seqs, err := s.ScheduleMessages(testContext(t, 5*time.Second), []*azservicebus.Message{textMessage("scheduled")}, at, nil)
	if err != nil || len(seqs) != 1 {
		t.Fatalf("ScheduleMessages = %v, %v", seqs, err)
	}
	// SendMessage with ScheduledEnqueueTime schedules too.
	send(t, s, &azservicebus.Message{Body: []byte("also scheduled"), ScheduledEnqueueTime: to.Ptr(at)})

	r := newReceiver(t, c, "scheduled", nil)
	peeked, err := r.PeekMessages(testContext(t, 5*time.Second), 10, nil)
	if err != nil || len(peeked) != 2 {
		t.Fatalf("PeekMessages = %q, %v; want both scheduled messages", bodies(peeked), err)
	}
	for _, m := range peeked {
		if m.State != azservicebus.MessageStateScheduled {
			t.Errorf("%q has State %v, want scheduled", m.Body, m.State)
		}
	}
	expectNothing(t, r, time.Until(at)-300*time.Millisecond)
	got := receiveN(t, r, 2, 5*time.Second)
	if time.Now().Before(at) {
		t.Fatalf("scheduled messages arrived before %v", at)
	}
	if *got[0].SequenceNumber != seqs[0] && *got[1].SequenceNumber != seqs[0] {
		t.Errorf("ScheduleMessages returned sequence number %d, received %d and %d", seqs[0], *got[0].SequenceNumber, *got[1].SequenceNumber)
	}
	for _, m := range got {
		if err := r.CompleteMessage(testContext(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("CompleteMessage: %v", err)
		}
	}
}

func TestCancelledScheduledMessageNeverArrives(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := newSender(t, c, "cancel-scheduled")
	// Far enough out that the cancel (a $management link and its CBS token first) lands before it,
	// even on a busy machine: a message already enqueued is not cancelled, on Azure either.
	at := time.Now().Add(5 * time.Second)
	seqs, err := s.ScheduleMessages(testContext(t, 5*time.Second), []*azservicebus.Message{textMessage("never")}, at, nil)
	if err != nil {
		t.Fatalf("ScheduleMessages: %v", err)
	}
	if err := s.CancelScheduledMessages(testContext(t, 5*time.Second), seqs, nil); err != nil {
		t.Fatalf("CancelScheduledMessages: %v", err)
	}
	if time.Now().After(at) {
		t.Fatalf("scheduling and cancelling took more than 5 s; the message was enqueued before the cancel")
	}
	r := newReceiver(t, c, "cancel-scheduled", nil)
	expectNothing(t, r, time.Until(at)+time.Second)
}

func TestStartFindsServerJSAndStopEndsTheProcess(t *testing.T) {
	t.Parallel()
	localOnly(t)
	// Default options: server.js is found by walking up from the working directory, and the
	// default config.json serves Coffer's alert queue.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer e.Stop()
	if !strings.HasPrefix(e.ConnectionString(), "Endpoint=sb://127.0.0.1:") || !strings.Contains(e.ConnectionString(), "UseDevelopmentEmulator=true") {
		t.Fatalf("ConnectionString = %q", e.ConnectionString())
	}
	if e.Endpoint() == emu.Endpoint() {
		t.Fatalf("two emulators share %s", e.Endpoint())
	}
	c, err := azservicebus.NewClientFromConnectionString(e.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.NewSender("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMessage(testContext(t, 10*time.Second), textMessage("alert"), nil); err != nil {
		t.Fatalf("SendMessage to the default alerts queue: %v", err)
	}

	pid := e.PID()
	start := time.Now()
	if err := e.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Stop took %v; SIGTERM should end the server at once", took)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d is still alive after Stop", pid)
	}
}

func TestServerExitsPromptlyOnSIGTERMAndSIGINT(t *testing.T) {
	t.Parallel()
	localOnly(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			e, err := Start(testContext(t, 30*time.Second), Options{Dir: filepath.Join("..")})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer e.Stop()
			if err := syscall.Kill(e.PID(), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-e.Done():
			case <-time.After(2 * time.Second):
				t.Fatalf("server still running 2s after %v", sig)
			}
		})
	}
}
