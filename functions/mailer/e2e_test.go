package mailer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/shared/wire"
)

// TestServiceBusToEmailRetriesAndDeadLetters wires the real pieces: an alert
// raised by alerts.Store goes through the Service Bus emulator's "alerts"
// queue (MaxDeliveryCount 3) to a receiver loop that does what the
// SendAlertEmail function does with HandleAlert's result. The relay refuses
// the first delivery; the abandoned message comes back and the email goes
// out on the second. A poison message is dead-lettered at once.
func TestServiceBusToEmailRetriesAndDeadLetters(t *testing.T) {
	emulators(t)
	ctx := testContext(t, 90*time.Second)
	sink, cfg := tlsSink(t, smtpsink.Options{RejectFirst: 1})

	client, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(ctx) })
	sender, err := client.NewSender("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := client.NewReceiverForQueue("alerts", nil)
	if err != nil {
		t.Fatal(err)
	}

	svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	store := alerts.New(svc.NewClient("alertse2e"), sender, clk.Now)
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	reg := &vaults{to: map[string][]string{"contoso-robo": {"ops@contoso.example"}}}
	m, err := New(cfg, reg, readyTable(t), clk.Now)
	if err != nil {
		t.Fatal(err)
	}

	raised, err := store.Raise(ctx, wire.Alert{
		VaultID: "contoso-robo", VaultName: "contoso-robo", MachineID: "m-01", MachineName: "branch-01", JobID: "job-42",
		Severity: wire.SeverityCritical, Kind: wire.AlertJobFailed, Title: "Backup failed on branch-01",
		Detail: "Disk D: was not found. Reconnect it and run the backup again.",
	})
	if err != nil {
		t.Fatalf("Raise: %v", err)
	}
	if err := sender.SendMessage(ctx, &azservicebus.Message{Body: []byte(`{"id":"not-an-alert"`), MessageID: ptr("poison-1")}, nil); err != nil {
		t.Fatal(err)
	}

	// The receiver loop, as the Functions host runs SendAlertEmail in
	// PeekLock mode.
	var attempts []uint32
	delivered, deadLettered := false, false
	for !delivered || !deadLettered {
		msgs, err := receiver.ReceiveMessages(ctx, 10, nil)
		if err != nil {
			t.Fatalf("receive (delivered=%v dead-lettered=%v): %v", delivered, deadLettered, err)
		}
		for _, msg := range msgs {
			err := m.HandleAlert(ctx, msg.Body)
			switch {
			case errors.Is(err, ErrPoison):
				if err := receiver.DeadLetterMessage(ctx, msg, &azservicebus.DeadLetterOptions{
					Reason: ptr("PoisonMessage"), ErrorDescription: ptr(err.Error()),
				}); err != nil {
					t.Fatal(err)
				}
				deadLettered = deadLettered || msg.MessageID == "poison-1"
			case err != nil:
				attempts = append(attempts, msg.DeliveryCount)
				if err := receiver.AbandonMessage(ctx, msg, nil); err != nil {
					t.Fatal(err)
				}
			default:
				attempts = append(attempts, msg.DeliveryCount)
				if err := receiver.CompleteMessage(ctx, msg, nil); err != nil {
					t.Fatal(err)
				}
				delivered = delivered || msg.MessageID == raised.ID
			}
		}
	}

	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Errorf("delivery counts %v, want [1 2]: refused once, sent on the redelivery", attempts)
	}
	got := sink.Messages()
	if len(got) != 1 || sink.Rejected() != 1 {
		t.Fatalf("sink captured %d and refused %d, want 1 and 1", len(got), sink.Rejected())
	}
	if want := "[Coffer] CRITICAL: Backup failed on branch-01 (vault contoso-robo)"; got[0].Subject != want {
		t.Errorf("subject %q, want %q", got[0].Subject, want)
	}
	if !strings.Contains(got[0].Header.Get("Message-Id"), raised.ID) {
		t.Errorf("Message-ID %q does not name alert %s", got[0].Header.Get("Message-Id"), raised.ID)
	}

	left, err := receiver.PeekMessages(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d messages left on the queue, want none", len(left))
	}
	dlq, err := client.NewReceiverForQueue("alerts", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := dlq.ReceiveMessages(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].MessageID != "poison-1" || dead[0].DeadLetterReason == nil || *dead[0].DeadLetterReason != "PoisonMessage" {
		t.Fatalf("dead-letter queue holds %d messages (%+v), want only the poison one", len(dead), dead)
	}
	if err := dlq.CompleteMessage(ctx, dead[0], nil); err != nil {
		t.Fatal(err)
	}
}
