package triggers

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coffer-backup/coffer/functions/invocation"
)

// The deployment folders, relative to this package.
const (
	hostDir      = "../host"
	hostJSONPath = "../../host.json"
)

// binding holds every field our function.json files may use; unknown
// fields fail the decode, which catches typos such as "shedule".
type binding struct {
	Type         string   `json:"type"`
	Direction    string   `json:"direction"`
	Name         string   `json:"name"`
	Schedule     string   `json:"schedule"`
	RunOnStartup *bool    `json:"runOnStartup"`
	UseMonitor   *bool    `json:"useMonitor"`
	QueueName    string   `json:"queueName"`
	Connection   string   `json:"connection"`
	AuthLevel    string   `json:"authLevel"`
	Methods      []string `json:"methods"`
	Route        string   `json:"route"`
}

func readFunctionJSON(t *testing.T, name string) []binding {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostDir, name, "function.json"))
	if err != nil {
		t.Fatalf("function %s has no deployment folder: %v", name, err)
	}
	var fj struct {
		Bindings []binding `json:"bindings"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fj); err != nil {
		t.Fatalf("%s/function.json: %v", name, err)
	}
	return fj.Bindings
}

// Every function in Functions has a folder whose bindings match it, and
// there is no folder without a function.
func TestFunctionFoldersMatchFunctions(t *testing.T) {
	entries, err := os.ReadDir(hostDir)
	if err != nil {
		t.Fatal(err)
	}
	var folders, names []string
	for _, e := range entries {
		if e.IsDir() {
			folders = append(folders, e.Name())
		}
	}
	for _, f := range Functions {
		names = append(names, f.Name)
	}
	slices.Sort(folders)
	slices.Sort(names)
	if !slices.Equal(folders, names) {
		t.Fatalf("folders in functions/host %v, functions in triggers.Functions %v: they must be the same", folders, names)
	}

	for _, f := range Functions {
		t.Run(f.Name, func(t *testing.T) {
			got := readFunctionJSON(t, f.Name)
			switch f.Kind {
			case KindTimer:
				if len(got) != 1 {
					t.Fatalf("%d bindings, want one timerTrigger", len(got))
				}
				b := got[0]
				if b.Type != "timerTrigger" || b.Direction != "in" || b.Name != TimerBinding {
					t.Errorf("binding %+v, want timerTrigger in named %q", b, TimerBinding)
				}
				if b.Schedule != f.Schedule {
					t.Errorf("schedule %q, triggers.Functions says %q", b.Schedule, f.Schedule)
				}
				if _, err := parseSchedule(b.Schedule); err != nil {
					t.Error(err)
				}
				if b.RunOnStartup != nil && *b.RunOnStartup {
					t.Error("runOnStartup would run the timer at every scale-out and restart")
				}
			case KindServiceBus:
				if len(got) != 1 {
					t.Fatalf("%d bindings, want one serviceBusTrigger", len(got))
				}
				b := got[0]
				if b.Type != "serviceBusTrigger" || b.Direction != "in" || b.Name != MessageBinding {
					t.Errorf("binding %+v, want serviceBusTrigger in named %q", b, MessageBinding)
				}
				if b.QueueName != f.Queue || b.Connection != f.Connection {
					t.Errorf("queue %q connection %q, want %q %q", b.QueueName, b.Connection, f.Queue, f.Connection)
				}
			case KindHTTP:
				// Forwarding needs exactly an httpTrigger in and an http out.
				if len(got) != 2 {
					t.Fatalf("%d bindings, want httpTrigger in and http out", len(got))
				}
				in, out := got[0], got[1]
				if in.Type != "httpTrigger" || in.Direction != "in" || in.Name == "" {
					t.Errorf("first binding %+v, want httpTrigger in", in)
				}
				if in.Route != f.Route || in.AuthLevel != f.AuthLevel || !slices.Equal(in.Methods, f.Methods) {
					t.Errorf("route %q authLevel %q methods %v, want %q %q %v", in.Route, in.AuthLevel, in.Methods, f.Route, f.AuthLevel, f.Methods)
				}
				if out.Type != "http" || out.Direction != "out" || (out.Name != "res" && out.Name != "$return") {
					t.Errorf("second binding %+v, want http out named res or $return", out)
				}
			default:
				t.Fatalf("unknown kind %q", f.Kind)
			}
		})
	}
}

// The HTTP route only works with host.json's routePrefix left at "api" and
// forwarding on; see Functions.
func TestHostJSONForwardsAPIRequestsUnchanged(t *testing.T) {
	b, err := os.ReadFile(hostJSONPath)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Extensions struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("host.json: %v", err)
	}
	if p := h.Extensions.HTTP.RoutePrefix; p != nil && *p != "api" {
		t.Errorf("routePrefix %q: echo serves /api/v1/..., and another prefix would forward /<FunctionName> from the internet", *p)
	}
	if !h.CustomHandler.EnableForwardingHTTPRequest {
		t.Error("enableForwardingHttpRequest is off: requests would arrive as invocation payloads")
	}
	if h.CustomHandler.Description.DefaultExecutablePath != "coffer-functions" {
		t.Errorf("defaultExecutablePath %q, want coffer-functions", h.CustomHandler.Description.DefaultExecutablePath)
	}
}

func TestTimersPairsEveryTimerWithItsBody(t *testing.T) {
	noop := func(context.Context, *invocation.Timer) error { return nil }
	all := map[string]TimerFunc{}
	for _, f := range Functions {
		if f.Kind == KindTimer {
			all[f.Name] = noop
		}
	}
	timers, err := Timers(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(timers) != len(all) {
		t.Fatalf("%d timers, want %d", len(timers), len(all))
	}
	for _, tm := range timers {
		if got := readFunctionJSON(t, tm.Name)[0].Schedule; got != tm.Schedule {
			t.Errorf("%s: Timers gives schedule %q, function.json %q", tm.Name, tm.Schedule, got)
		}
	}
	if _, err := NewScheduler(timers, nil, nil); err != nil {
		t.Fatalf("the deployed schedules do not run standalone: %v", err)
	}

	for name, runs := range map[string]map[string]TimerFunc{
		"missing":     {FuncPurgeSoftDeleted: noop},
		"unknown":     withExtra(all, "Nightly", noop),
		"not a timer": withExtra(all, FuncSendAlertEmail, noop),
		"nil body":    withExtra(all, FuncMonitorBackups, nil),
	} {
		if _, err := Timers(runs); err == nil {
			t.Errorf("%s: Timers accepted %v", name, runs)
		}
	}
}

func withExtra(m map[string]TimerFunc, name string, f TimerFunc) map[string]TimerFunc {
	out := map[string]TimerFunc{name: f}
	for k, v := range m {
		if k != name {
			out[k] = v
		}
	}
	return out
}

func TestAlertsQueue(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", DefaultAlertsQueue},
		{"  ", DefaultAlertsQueue},
		{"alerts-prod", "alerts-prod"},
	} {
		got := AlertsQueue(func(k string) string {
			if k != AlertsQueueSetting {
				t.Fatalf("read %s", k)
			}
			return tc.env
		})
		if got != tc.want {
			t.Errorf("AlertsQueue(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
	i := slices.IndexFunc(Functions, func(f FunctionSpec) bool { return f.Name == FuncSendAlertEmail })
	if i < 0 || Functions[i].Queue != "%"+AlertsQueueSetting+"%" {
		t.Error("SendAlertEmail's queue does not come from the alerts setting")
	}
}
