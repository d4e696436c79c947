package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/invocation"
)

// The payloads in testdata were written by hand in the shape the custom
// handler documentation gives (see ../../shared/design.md): the Functions
// host cannot be installed here to record real ones.
func payload(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInvocationHandlers(t *testing.T) {
	timerOK := payload(t, "timer.json")
	messageOK := payload(t, "servicebus.json")
	errBoom := errors.New("table storage unavailable")

	type seen struct {
		timer *invocation.Timer
		body  []byte
	}
	tests := []struct {
		name     string
		path     string
		body     string
		timerErr error
		msgErr   error
		panics   bool
		want     int
		wantLog  string
		check    func(t *testing.T, s seen)
	}{
		{
			name: "timer ok", path: "/" + FuncMonitorBackups, body: timerOK, want: http.StatusOK, wantLog: "MonitorBackups done",
			check: func(t *testing.T, s seen) {
				if s.timer == nil || !s.timer.IsPastDue || s.timer.ScheduleStatus == nil ||
					!s.timer.ScheduleStatus.Next.Equal(time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)) {
					t.Errorf("the timer function got %+v", s.timer)
				}
			},
		},
		{name: "timer fails", path: "/" + FuncMonitorBackups, body: timerOK, timerErr: errBoom, want: http.StatusInternalServerError, wantLog: errBoom.Error()},
		{name: "timer panics", path: "/" + FuncMonitorBackups, body: timerOK, panics: true, want: http.StatusInternalServerError, wantLog: "panic: kaboom"},
		{name: "timer not JSON", path: "/" + FuncMonitorBackups, body: `{"Data":`, want: http.StatusBadRequest, wantLog: "invalid invocation payload"},
		{name: "timer binding missing", path: "/" + FuncMonitorBackups, body: `{"Data":{"other":{}}}`, want: http.StatusBadRequest, wantLog: `no binding "timer"`},
		{name: "timer binding wrong shape", path: "/" + FuncMonitorBackups, body: `{"Data":{"timer":"soon"}}`, want: http.StatusBadRequest, wantLog: "invalid invocation payload"},
		{
			name: "message ok", path: "/" + FuncSendAlertEmail, body: messageOK, want: http.StatusOK, wantLog: "message handled",
			check: func(t *testing.T, s seen) {
				var alert map[string]string
				if err := json.Unmarshal(s.body, &alert); err != nil || alert["machine"] != "LON-FS01" || alert["kind"] != "BackupFailed" {
					t.Errorf("the message function got %s (%v): both JSON encodings must be removed", s.body, err)
				}
			},
		},
		{name: "message fails", path: "/" + FuncSendAlertEmail, body: messageOK, msgErr: errBoom, want: http.StatusInternalServerError, wantLog: errBoom.Error()},
		{name: "message poison", path: "/" + FuncSendAlertEmail, body: messageOK, msgErr: fmt.Errorf("unknown vault: %w", ErrPoison), want: http.StatusInternalServerError, wantLog: "dead-lettered"},
		{name: "message panics", path: "/" + FuncSendAlertEmail, body: messageOK, panics: true, want: http.StatusInternalServerError, wantLog: "panic: kaboom"},
		{name: "message empty body", path: "/" + FuncSendAlertEmail, body: ``, want: http.StatusBadRequest, wantLog: "invalid invocation payload"},
		{name: "message no Data", path: "/" + FuncSendAlertEmail, body: `{"Metadata":{}}`, want: http.StatusBadRequest, wantLog: "no Data"},
		{name: "message binding not JSON", path: "/" + FuncSendAlertEmail, body: `{"Data":{"message":{"a":}}}`, want: http.StatusBadRequest, wantLog: "invalid invocation payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s seen
			timer := Timer{Name: FuncMonitorBackups, Schedule: "0 */15 * * * *", Run: func(_ context.Context, info *invocation.Timer) error {
				s.timer = info
				if tc.panics {
					panic("kaboom")
				}
				return tc.timerErr
			}}
			message := func(_ context.Context, body []byte) error {
				s.body = body
				if tc.panics {
					panic("kaboom")
				}
				return tc.msgErr
			}
			e := echo.New()
			Register(e, []Timer{timer}, map[string]MessageFunc{FuncSendAlertEmail: message})

			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			e.ServeHTTP(rec, req)

			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.want, rec.Body)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("reply %q is not a JSON object: %v", rec.Body, err)
			}
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range got {
					if !yield(k) {
						return
					}
				}
			})
			if !slices.Equal(keys, []string{"Logs", "Outputs", "ReturnValue"}) {
				t.Fatalf("reply keys %v, want exactly Outputs, Logs, ReturnValue", keys)
			}
			if string(got["Outputs"]) != "{}" || string(got["ReturnValue"]) != "null" {
				t.Errorf("Outputs %s ReturnValue %s, want {} and null", got["Outputs"], got["ReturnValue"])
			}
			var logs []string
			if err := json.Unmarshal(got["Logs"], &logs); err != nil {
				t.Fatalf("Logs %s: %v", got["Logs"], err)
			}
			if !slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, tc.wantLog) }) {
				t.Errorf("Logs %q do not mention %q", logs, tc.wantLog)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestRegisterRefusesADuplicateName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Register accepted a name used by a timer and a message function")
		}
	}()
	noop := func(context.Context, []byte) error { return nil }
	Register(echo.New(), []Timer{{Name: "X", Run: func(context.Context, *invocation.Timer) error { return nil }}}, map[string]MessageFunc{"X": noop})
}

func TestTruncateKeepsCharactersWhole(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 8, "abcde..."},
		{"ééééé", 8, "éé..."}, // é is two bytes: cutting at 5 would split one
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
