package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

const (
	// settleTimeout bounds Complete, Abandon, DeadLetter and Close.
	settleTimeout = 30 * time.Second
	// Backoff between receiver restarts after a failure.
	minRetryDelay = time.Second
	maxRetryDelay = time.Minute
	// maxLockRenewal matches the host's maxAutoLockRenewalDuration default;
	// a handler running longer loses its lock and the message comes back.
	maxLockRenewal = 5 * time.Minute
	// minRenewWait keeps renewal from spinning when the broker's clock is
	// ahead of ours.
	minRenewWait = 100 * time.Millisecond
	// PoisonReason is the DeadLetterReason of messages whose handler
	// returned ErrPoison.
	PoisonReason = "PoisonMessage"
	// maxDescription keeps the dead-letter description within the broker's
	// limits on application properties.
	maxDescription = 1024
)

// Receiver takes messages off a queue in standalone mode, as the host's
// Service Bus trigger does in Azure: peek-lock, one message at a time, its
// lock renewed while the handler runs.
type Receiver struct {
	client *azservicebus.Client
	queue  string
	f      MessageFunc
	logger *slog.Logger

	now        func() time.Time
	renewAfter func(time.Duration) <-chan time.Time // waits between lock renewals
	retryAfter func(time.Duration) <-chan time.Time // waits before a reconnect
	onSettle   func(msg *azservicebus.ReceivedMessage, outcome string, err error)
	running    atomic.Bool
}

// Outcomes passed to onSettle.
const (
	outcomeComplete   = "complete"
	outcomeAbandon    = "abandon"
	outcomeDeadLetter = "deadletter"
)

// NewReceiver makes a Receiver that runs f for each message on queue.
// logger nil means slog.Default().
func NewReceiver(client *azservicebus.Client, queue string, f MessageFunc, logger *slog.Logger) *Receiver {
	if logger == nil {
		logger = slog.Default()
	}
	return &Receiver{
		client: client, queue: queue, f: f,
		logger:     logger.With("queue", queue),
		now:        time.Now,
		renewAfter: time.After,
		retryAfter: time.After,
	}
}

// Run receives until ctx is done, then settles the message in hand and
// returns nil. Each message is completed when f succeeds, dead-lettered at
// once when f's error wraps ErrPoison, and abandoned otherwise, so the
// broker redelivers it and dead-letters it after the queue's
// MaxDeliveryCount. When the link or connection fails beyond the SDK's own
// retries, Run reopens the receiver with a growing delay; it gives up only
// when ctx is done.
func (r *Receiver) Run(ctx context.Context) error {
	if r.client == nil || r.queue == "" || r.f == nil {
		return errors.New("service bus receiver needs a client, a queue name and a handler: build it with NewReceiver")
	}
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("receiver for queue %q is already running: run it once", r.queue)
	}
	defer r.running.Store(false)
	delay := minRetryDelay
	for {
		received, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if received {
			delay = minRetryDelay
		}
		r.logger.Warn("service bus receiver failed; reopening it. If this repeats, check the connection, that the queue exists and that the identity has the Azure Service Bus Data Receiver role",
			"err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-r.retryAfter(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// session opens one receiver link and handles messages until it fails or
// ctx is done. received says whether it got any message, which shows the
// connection worked and resets the backoff.
func (r *Receiver) session(ctx context.Context) (received bool, err error) {
	rcv, err := r.client.NewReceiverForQueue(r.queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		return false, fmt.Errorf("open receiver for queue %q: %w", r.queue, err)
	}
	defer func() {
		cctx, cancel := detach(ctx, settleTimeout)
		defer cancel()
		if err := rcv.Close(cctx); err != nil {
			r.logger.Debug("close service bus receiver", "err", err)
		}
	}()
	for {
		// One at a time: prefetched messages would sit locked while earlier
		// ones are handled.
		msgs, err := rcv.ReceiveMessages(ctx, 1, nil)
		if err != nil {
			if ctx.Err() != nil {
				return received, nil
			}
			return received, fmt.Errorf("receive from queue %q: %w", r.queue, err)
		}
		for _, m := range msgs {
			received = true
			if err := r.handle(ctx, rcv, m); err != nil {
				return received, err
			}
		}
		if ctx.Err() != nil {
			return received, nil
		}
	}
}

// handle runs f on one message and settles it. An error means the link is
// unusable and must be reopened.
func (r *Receiver) handle(ctx context.Context, rcv *azservicebus.Receiver, m *azservicebus.ReceivedMessage) error {
	log := r.logger.With("message_id", m.MessageID, "delivery_count", m.DeliveryCount)

	hctx, stop := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		r.renewLock(hctx, rcv, m, log)
	}()
	err := call(func() error { return r.f(hctx, m.Body) })
	stop()
	<-renewed

	// Settle even during shutdown: the work is done (or failed) already.
	sctx, cancel := detach(ctx, settleTimeout)
	defer cancel()
	var outcome string
	var serr error
	switch {
	case err == nil:
		outcome, serr = outcomeComplete, rcv.CompleteMessage(sctx, m, nil)
		log.Info("message handled", "settle_err", serr)
	case errors.Is(err, ErrPoison):
		outcome = outcomeDeadLetter
		serr = rcv.DeadLetterMessage(sctx, m, &azservicebus.DeadLetterOptions{
			Reason:           to.Ptr(PoisonReason),
			ErrorDescription: to.Ptr(truncate(err.Error(), maxDescription)),
		})
		log.Error("poison message dead-lettered; inspect it in the queue's dead-letter subqueue", "err", err, "settle_err", serr)
	default:
		outcome, serr = outcomeAbandon, rcv.AbandonMessage(sctx, m, nil)
		log.Warn("message failed; abandoned for redelivery", "err", err, "settle_err", serr)
	}
	if r.onSettle != nil {
		r.onSettle(m, outcome, serr)
	}
	if serr == nil {
		return nil
	}
	if sbErr := (*azservicebus.Error)(nil); errors.As(serr, &sbErr) && sbErr.Code == azservicebus.CodeLockLost {
		// The lock expired; the broker delivers the message again.
		log.Warn("message lock lost before it was settled; it will be delivered again", "outcome", outcome, "err", serr)
		return nil
	}
	return fmt.Errorf("settle message %s (%s): %w", m.MessageID, outcome, serr)
}

// renewLock keeps m locked while the handler runs, renewing at half of the
// remaining lock time, for at most maxLockRenewal.
func (r *Receiver) renewLock(ctx context.Context, rcv *azservicebus.Receiver, m *azservicebus.ReceivedMessage, log *slog.Logger) {
	if m.LockedUntil == nil {
		return
	}
	stopAt := r.now().Add(maxLockRenewal)
	for {
		wait := max(m.LockedUntil.Sub(r.now())/2, minRenewWait)
		if r.now().Add(wait).After(stopAt) {
			log.Warn("handler outlasted lock renewal; the message will be delivered again when the lock expires", "max_renewal", maxLockRenewal)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.renewAfter(wait):
		}
		if err := rcv.RenewMessageLock(ctx, m, nil); err != nil {
			if ctx.Err() == nil {
				log.Warn("renew message lock", "err", err)
			}
			return
		}
	}
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
