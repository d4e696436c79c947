package servicebus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// emu is the emulator every test talks to. It serves testdata/config.json, where each test has
// its own queue or topic so tests cannot see each other's messages.
var emu *Emulator

// EnvExternal points the tests at another broker that serves testdata/config.json instead: the
// official emulator (run with that file as its Config.json) or a real namespace with those
// entities. Tests of this emulator's own process and log are skipped then.
const EnvExternal = "COFFER_TEST_SERVICEBUS_CONNECTION_STRING"

// connStr is the broker the tests talk to.
var connStr string

// localOnly skips a test that inspects the local emulator's process or log.
func localOnly(t *testing.T) {
	t.Helper()
	if emu == nil {
		t.Skipf("checks the local emulator itself; %s points elsewhere", EnvExternal)
	}
}

// logPath is the emulator's log, with a line per operation (SB_EMULATOR_DEBUG=1).
var logPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if connStr = os.Getenv(EnvExternal); connStr != "" {
		return m.Run()
	}
	logDir, err := os.MkdirTemp("", "servicebus-emulator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logPath = filepath.Join(logDir, "server.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emu, err = Start(ctx, Options{
		ConfigPath: filepath.Join("testdata", "config.json"),
		LogPath:    logPath,
		Env:        []string{"SB_EMULATOR_DEBUG=1"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start emulator:", err)
		return 1
	}
	connStr = emu.ConnectionString()
	code := m.Run()
	if err := emu.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop emulator:", err)
		code = 1
	}
	if code != 0 {
		if log, err := os.ReadFile(logPath); err == nil {
			fmt.Fprintf(os.Stderr, "emulator log (%s), last part:\n%s\n", logPath, tail(string(log), 8000))
		}
	} else {
		os.RemoveAll(logDir)
	}
	return code
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// newClient connects a real azservicebus client to the emulator and closes it after the test.
func newClient(t *testing.T) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(connStr, nil)
	if err != nil {
		t.Fatalf("NewClientFromConnectionString: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newSender(t *testing.T, c *azservicebus.Client, queueOrTopic string) *azservicebus.Sender {
	t.Helper()
	s, err := c.NewSender(queueOrTopic, nil)
	if err != nil {
		t.Fatalf("NewSender(%s): %v", queueOrTopic, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func newReceiver(t *testing.T, c *azservicebus.Client, queue string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, opts)
	if err != nil {
		t.Fatalf("NewReceiverForQueue(%s): %v", queue, err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func send(t *testing.T, s *azservicebus.Sender, msgs ...*azservicebus.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := s.SendMessage(testContext(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
}

func textMessage(body string) *azservicebus.Message {
	return &azservicebus.Message{Body: []byte(body)}
}

// receiveOne waits up to wait for exactly one message.
func receiveOne(t *testing.T, r *azservicebus.Receiver, wait time.Duration) *azservicebus.ReceivedMessage {
	t.Helper()
	msgs, err := r.ReceiveMessages(testContext(t, wait), 1, nil)
	if err != nil {
		t.Fatalf("ReceiveMessages: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("ReceiveMessages returned %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// receiveN keeps receiving until it has n messages or wait passes.
func receiveN(t *testing.T, r *azservicebus.Receiver, n int, wait time.Duration) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := testContext(t, wait)
	var all []*azservicebus.ReceivedMessage
	for len(all) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(all), nil)
		if err != nil {
			t.Fatalf("ReceiveMessages after %d of %d messages: %v", len(all), n, err)
		}
		all = append(all, msgs...)
	}
	return all
}

// expectNothing asserts no message arrives within wait.
func expectNothing(t *testing.T, r *azservicebus.Receiver, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if len(msgs) > 0 {
		t.Fatalf("got unexpected message %q (err %v)", msgs[0].Body, err)
	}
}

func bodies(msgs []*azservicebus.ReceivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Body))
	}
	return out
}
