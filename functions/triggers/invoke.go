package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/invocation"
)

// reply is the custom-handler response. invocation.Response omits empty
// fields; the host is given all three keys, as documented.
type reply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

func answer(c echo.Context, status int, logs ...string) error {
	if logs == nil {
		logs = []string{}
	}
	return c.JSON(status, reply{Outputs: map[string]any{}, Logs: logs, ReturnValue: nil})
}

// TimerHandler answers the host's invocation of timer t: it decodes the
// timer binding, runs t.Run and replies 200, or 500 with the error in Logs
// so the host records a failed run. The host does not retry timers; the
// next run comes on schedule. A malformed payload gets 400.
func TimerHandler(t Timer) echo.HandlerFunc {
	return func(c echo.Context) error {
		log := slog.Default().With("function", t.Name)
		req, err := invocation.Decode(c.Request().Body)
		if err != nil {
			log.Warn("refused timer invocation", "err", err)
			return answer(c, http.StatusBadRequest, fmt.Sprintf("%s: %v", t.Name, err))
		}
		info, err := req.Timer(TimerBinding)
		if err != nil {
			log.Warn("refused timer invocation", "err", err)
			return answer(c, http.StatusBadRequest, fmt.Sprintf("%s: %v", t.Name, err))
		}
		start := time.Now()
		err = call(func() error { return t.Run(c.Request().Context(), info) })
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			log.Error("timer function failed", "past_due", info.IsPastDue, "took", took, "err", err)
			return answer(c, http.StatusInternalServerError, fmt.Sprintf("%s failed after %s: %v", t.Name, took, err))
		}
		log.Info("timer function done", "past_due", info.IsPastDue, "took", took)
		return answer(c, http.StatusOK, fmt.Sprintf("%s done in %s (past due: %t)", t.Name, took, info.IsPastDue))
	}
}

// MessageHandler answers the host's Service Bus invocation of function name:
// it unwraps the message body and runs f. Success is 200 (the host completes
// the message); failure is 500, so the host abandons it and the broker
// retries it, dead-lettering after the queue's MaxDeliveryCount. A custom
// handler cannot dead-letter directly, so ErrPoison is retried the same way
// here; Receiver dead-letters it at once in standalone mode.
func MessageHandler(name string, f MessageFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		log := slog.Default().With("function", name)
		req, err := invocation.Decode(c.Request().Body)
		if err != nil {
			log.Warn("refused Service Bus invocation", "err", err)
			return answer(c, http.StatusBadRequest, fmt.Sprintf("%s: %v", name, err))
		}
		body, err := req.Message(MessageBinding)
		if err != nil {
			log.Warn("refused Service Bus invocation", "err", err)
			return answer(c, http.StatusBadRequest, fmt.Sprintf("%s: %v", name, err))
		}
		log = log.With("message_id", req.MetadataString("MessageId"), "delivery_count", req.MetadataString("DeliveryCount"))
		err = call(func() error { return f(c.Request().Context(), body) })
		switch {
		case errors.Is(err, ErrPoison):
			log.Error("poison message; it will be dead-lettered once the queue's MaxDeliveryCount is reached", "err", err)
			return answer(c, http.StatusInternalServerError, fmt.Sprintf("%s: poison message, retried until dead-lettered: %v", name, err))
		case err != nil:
			log.Warn("message failed; the host abandons it for a retry", "err", err)
			return answer(c, http.StatusInternalServerError, fmt.Sprintf("%s failed: %v", name, err))
		}
		log.Info("message handled")
		return answer(c, http.StatusOK, name+": message handled")
	}
}

// Register routes POST /<Name> for every timer and message function. Under
// the host these routes are reached only by the host itself: the HTTP
// function forwards /api/... alone. A name used twice is a programming
// error and panics, as a duplicate ServeMux pattern does.
func Register(e *echo.Echo, timers []Timer, messages map[string]MessageFunc) {
	seen := map[string]bool{}
	claim := func(name string) {
		if name == "" || seen[name] {
			panic(fmt.Sprintf("triggers.Register: function name %q is empty or used twice", name))
		}
		seen[name] = true
	}
	for _, t := range timers {
		claim(t.Name)
		e.POST("/"+t.Name, TimerHandler(t))
	}
	for name, f := range messages {
		claim(name)
		e.POST("/"+name, MessageHandler(name, f))
	}
}

// call runs f, turning a panic into an error so one bad run neither kills
// the process nor leaves the host waiting for a reply.
func call(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return f()
}

// detach gives settlement and clean-up a bounded context that survives the
// cancellation of ctx (shutdown), so work already done is still recorded.
func detach(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
