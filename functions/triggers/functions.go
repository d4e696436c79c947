// Package triggers runs Coffer's timer and Service Bus functions in both of
// the control plane's modes:
//
//   - Under the Azure Functions host, the host fires the triggers and POSTs
//     invocations to /<FunctionName>; TimerHandler, MessageHandler and
//     Register answer them.
//   - Standalone (local runs, tests), Scheduler fires the timers on their
//     NCRONTAB schedules and Receiver takes messages off the queue.
//
// Both modes call the same TimerFunc and MessageFunc. Functions is the one
// list of functions; the deployment folders in functions/host are tested
// against it so the two cannot drift.
package triggers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/functions/invocation"
)

// Function names: the folder names in functions/host and the invocation
// routes (POST /<Name>).
const (
	FuncAPI              = "api"
	FuncPurgeSoftDeleted = "PurgeSoftDeleted"
	FuncEnforceRetention = "EnforceRetention"
	FuncMonitorBackups   = "MonitorBackups"
	FuncSendAlertDigest  = "SendAlertDigest"
	FuncSendAlertEmail   = "SendAlertEmail"
)

// Binding names used in function.json; the host keys Data by them.
const (
	TimerBinding   = "timer"
	MessageBinding = "message"
)

// Service Bus settings the SendAlertEmail binding refers to.
const (
	// AlertsQueueSetting is the app setting holding the alerts queue name.
	// The host resolves %COFFER_ALERTS_QUEUE% at start-up and refuses to
	// index the function when the setting is missing, so infra must set it.
	AlertsQueueSetting = "COFFER_ALERTS_QUEUE"
	DefaultAlertsQueue = "alerts"
	// ServiceBusConnection is the binding's connection prefix: the host reads
	// COFFER_SERVICEBUS__fullyQualifiedNamespace (managed identity) or
	// COFFER_SERVICEBUS (a connection string).
	ServiceBusConnection = "COFFER_SERVICEBUS"
)

// Kind is a function's trigger type.
type Kind string

const (
	KindHTTP       Kind = "http"
	KindTimer      Kind = "timer"
	KindServiceBus Kind = "serviceBus"
)

// FunctionSpec describes one deployed function.
type FunctionSpec struct {
	Name string
	Kind Kind
	// Timer: the NCRONTAB schedule (six fields, seconds first, UTC).
	Schedule string
	// Service Bus: the queue name (a %setting% expression) and connection.
	Queue      string
	Connection string
	// HTTP: the route under the host's routePrefix, the methods and the
	// auth level.
	Route     string
	Methods   []string
	AuthLevel string
}

// Functions is the canonical list of Coffer's functions.
//
// The HTTP function keeps the host's default routePrefix "api" with route
// "{*path}", so https://<app>/api/v1/vaults is forwarded unchanged to echo's
// /api/v1/vaults. An empty prefix would also forward /<FunctionName> from
// the internet, letting anyone POST a fake invocation.
var Functions = []FunctionSpec{
	{Name: FuncAPI, Kind: KindHTTP, Route: "{*path}", Methods: []string{"get", "post", "put", "patch", "delete"}, AuthLevel: "anonymous"},
	{Name: FuncPurgeSoftDeleted, Kind: KindTimer, Schedule: "0 0 3 * * *"},
	{Name: FuncEnforceRetention, Kind: KindTimer, Schedule: "0 5 * * * *"},
	{Name: FuncMonitorBackups, Kind: KindTimer, Schedule: "0 */15 * * * *"},
	{Name: FuncSendAlertDigest, Kind: KindTimer, Schedule: "0 0 * * * *"},
	{Name: FuncSendAlertEmail, Kind: KindServiceBus, Queue: "%" + AlertsQueueSetting + "%", Connection: ServiceBusConnection},
}

// AlertsQueue is the alerts queue name in standalone mode, resolved the way
// the host resolves %COFFER_ALERTS_QUEUE%, with the default when unset.
func AlertsQueue(getenv func(string) string) string {
	if q := strings.TrimSpace(getenv(AlertsQueueSetting)); q != "" {
		return q
	}
	return DefaultAlertsQueue
}

// TimerFunc is a timer function's body. info is the host's timer binding
// value (or the Scheduler's equivalent): IsPastDue says it fired late.
type TimerFunc func(ctx context.Context, info *invocation.Timer) error

// Timer is a timer function with its schedule.
type Timer struct {
	Name     string
	Schedule string // NCRONTAB, six fields, seconds first, UTC
	Run      TimerFunc
}

// MessageFunc handles one Service Bus message body. Messages can be
// delivered more than once, so it must be idempotent.
type MessageFunc func(ctx context.Context, body []byte) error

// ErrPoison marks a message that can never succeed (it is malformed, or names
// something that does not exist). Wrap it to have the message dead-lettered
// at once instead of retried.
var ErrPoison = errors.New("poison message: it can never be handled")

// Timers pairs every timer in Functions with its body from runs, taking the
// schedule from Functions. A timer without a body, or a body for a name that
// is not a timer in Functions, is an error: code and deployment must agree.
func Timers(runs map[string]TimerFunc) ([]Timer, error) {
	var timers []Timer
	var missing []string
	for _, f := range Functions {
		if f.Kind != KindTimer {
			continue
		}
		run, ok := runs[f.Name]
		if !ok || run == nil {
			missing = append(missing, f.Name)
			continue
		}
		timers = append(timers, Timer{Name: f.Name, Schedule: f.Schedule, Run: run})
	}
	var unknown []string
	for name := range runs {
		if !slices.ContainsFunc(Functions, func(f FunctionSpec) bool { return f.Name == name && f.Kind == KindTimer }) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	switch {
	case len(missing) > 0:
		return nil, fmt.Errorf("timers %s have no implementation: add them to the map passed to triggers.Timers", strings.Join(missing, ", "))
	case len(unknown) > 0:
		return nil, fmt.Errorf("timers %s are not in triggers.Functions: add them there and a function.json under functions/host, or drop them", strings.Join(unknown, ", "))
	}
	return timers, nil
}
