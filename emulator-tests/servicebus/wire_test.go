package servicebus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

// The request-response contract as other SDKs than Go's use it, checked on the wire with a bare AMQP
// client (the JavaScript SDK's own run is in emulator-tests/sdkconformance):
//   - the JavaScript and .NET SDKs attach their reply link with name = reply-to and no target
//     address, so a reply must find the link by its name;
//   - $cbs replies carry status-code/status-description (the CBS draft);
//   - $management replies carry statusCode/statusDescription, and errorCondition on failure, as the
//     service's do (the JavaScript SDK reads statusCode to tell an empty peek, 204, from a result).
func TestRepliesFindTheLinkByNameAndUseTheServiceKeys(t *testing.T) {
	t.Parallel()
	localOnly(t) // a real namespace checks the token this test makes up
	ctx := testContext(t, 30*time.Second)
	conn, err := amqp.Dial(ctx, "amqp://"+emu.Endpoint(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })

	// request sends one request on node and waits for the reply on a receiver named replyTo
	// that has no target address.
	request := func(node, replyTo string, props map[string]any, body any) *amqp.Message {
		t.Helper()
		sess, err := conn.NewSession(ctx, nil)
		if err != nil {
			t.Fatalf("session: %v", err)
		}
		defer sess.Close(context.Background())
		recv, err := sess.NewReceiver(ctx, node, &amqp.ReceiverOptions{Name: replyTo, Credit: 1})
		if err != nil {
			t.Fatalf("reply link on %s: %v", node, err)
		}
		send, err := sess.NewSender(ctx, node, nil)
		if err != nil {
			t.Fatalf("request link on %s: %v", node, err)
		}
		msg := &amqp.Message{
			Properties:            &amqp.MessageProperties{MessageID: "request-" + replyTo, ReplyTo: &replyTo},
			ApplicationProperties: props,
			Value:                 body,
		}
		if err := send.Send(ctx, msg, nil); err != nil {
			t.Fatalf("send to %s: %v", node, err)
		}
		reply, err := recv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("no reply on the link named %s: %v", replyTo, err)
		}
		_ = recv.AcceptMessage(ctx, reply)
		if reply.Properties == nil || reply.Properties.CorrelationID != "request-"+replyTo {
			t.Fatalf("reply correlation-id = %v, want the request's message-id", reply.Properties)
		}
		return reply
	}
	wantKeys := func(what string, got map[string]any, want map[string]any, absent ...string) {
		t.Helper()
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: application property %s = %#v (%T), want %#v (%T); all: %v", what, k, got[k], got[k], v, v, got)
			}
		}
		for _, k := range absent {
			if _, ok := got[k]; ok {
				t.Fatalf("%s: has %s; all: %v", what, k, got)
			}
		}
	}

	cbs := request("$cbs", "cbs-reply-by-name", map[string]any{
		"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": "amqp://" + emu.Endpoint() + "/wire",
	}, "SharedAccessSignature sr=x&sig=y&se=1&skn=k")
	wantKeys("$cbs put-token", cbs.ApplicationProperties, map[string]any{"status-code": int32(202), "status-description": "Accepted"}, "statusCode")

	peek := request("wire/$management", "management-reply-by-name", map[string]any{"operation": "com.microsoft:peek-message"},
		map[string]any{"from-sequence-number": int64(0), "message-count": int32(1)})
	wantKeys("peek on an empty queue", peek.ApplicationProperties, map[string]any{"statusCode": int32(204)}, "status-code", "errorCondition")
	if _, ok := peek.ApplicationProperties["statusDescription"].(string); !ok {
		t.Fatalf("peek: statusDescription = %#v, want a string", peek.ApplicationProperties["statusDescription"])
	}

	bad := request("wire/$management", "management-error-by-name", map[string]any{"operation": "com.microsoft:enumerate-sessions"}, map[string]any{})
	wantKeys("an operation the emulator lacks", bad.ApplicationProperties,
		map[string]any{"statusCode": int32(501), "errorCondition": "com.microsoft:not-implemented"}, "status-code")
}

// A receiver that asks for the next free session while none is free gets its attach answered only
// when its com.microsoft:timeout runs out, with com.microsoft:timeout, as Service Bus answers.
func TestAcceptNextSessionTimesOutOnTheBroker(t *testing.T) {
	t.Parallel()
	localOnly(t)
	ctx := testContext(t, 30*time.Second)
	conn, err := amqp.Dial(ctx, "amqp://"+emu.Endpoint(), &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = sess.NewReceiver(ctx, "session-wait", &amqp.ReceiverOptions{
		Filters:    []amqp.LinkFilter{amqp.NewLinkFilter("com.microsoft:session-filter", 0x00000137000000C, nil)},
		Properties: map[string]any{"com.microsoft:timeout": uint32(500)},
	})
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Condition != "com.microsoft:timeout" {
		t.Fatalf("attach error = %v, want a detach with com.microsoft:timeout", err)
	}
	if waited := time.Since(start); waited < 450*time.Millisecond {
		t.Fatalf("answered after %v, before the 500 ms the client gave", waited)
	}
}
