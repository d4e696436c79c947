package invocation

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// The payloads in testdata follow the shape documented for custom handlers
// (and in ../shared/design.md); they were written by hand, because the
// Functions host cannot be installed on these machines to capture them.
func load(t *testing.T, name string) *Request {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestRecordedTimerInvocation(t *testing.T) {
	tm, err := load(t, "timer.json").Timer("timer")
	if err != nil {
		t.Fatal(err)
	}
	if tm.IsPastDue || tm.ScheduleStatus == nil || !tm.ScheduleStatus.Next.Equal(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("timer = %+v", tm)
	}
}

// Service Bus string bodies arrive JSON-encoded twice; both layers go.
func TestRecordedServiceBusInvocationUnwrapsBothEncodings(t *testing.T) {
	req := load(t, "servicebus.json")
	body, err := req.Message("msg")
	if err != nil {
		t.Fatal(err)
	}
	var alert map[string]string
	if err := json.Unmarshal(body, &alert); err != nil || alert["kind"] != "BackupFailed" || alert["vault"] != "branch-office" {
		t.Fatalf("body %s: %v", body, err)
	}
	if req.MetadataString("MessageId") != "5d1c0b7e9f3a4c2b8e6d1f0a2b3c4d5e" || req.MetadataString("DeliveryCount") != "2" || req.MetadataString("Missing") != "" {
		t.Fatalf("metadata: %q %q", req.MetadataString("MessageId"), req.MetadataString("DeliveryCount"))
	}
}

func TestBadPayloadsAreRefused(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":  `{`,
		"no Data":   `{"Metadata":{}}`,
		"trailing":  `{"Data":{}} {}`,
		"array":     `[]`,
		"too large": `{"Data":{"x":"` + strings.Repeat("a", MaxRequestBytes) + `"}}`,
	} {
		if _, err := Decode(strings.NewReader(body)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: got %v, want ErrBadPayload", name, err)
		}
	}
	req, _ := Decode(strings.NewReader(`{"Data":{"timer":"x","msg":123}}`))
	if _, err := req.Timer("timer"); !errors.Is(err, ErrBadPayload) {
		t.Errorf("timer of the wrong shape: %v", err)
	}
	if _, err := req.Timer("other"); !errors.Is(err, ErrBadPayload) {
		t.Errorf("missing binding: %v", err)
	}
	if b, err := req.Message("msg"); err != nil || string(b) != "123" {
		t.Errorf("non-string message: %q %v", b, err)
	}
	// A plain string body, encoded only once, is taken as it is.
	once, _ := Decode(strings.NewReader(`{"Data":{"msg":"hello"}}`))
	if b, err := once.Message("msg"); err != nil || string(b) != "hello" {
		t.Errorf("single-encoded message: %q %v", b, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"timer.json", "servicebus.json"} {
		b, _ := os.ReadFile("testdata/" + name)
		f.Add(b)
	}
	f.Add([]byte(`{"Data":null}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := Decode(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		for k := range req.Data {
			req.Timer(k)
			req.Message(k)
		}
		for k := range req.Metadata {
			req.MetadataString(k)
		}
	})
}
