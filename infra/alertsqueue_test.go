package infra

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The alerts queue must behave locally as it does deployed (issue 11, item
// 9): the local stack's Service Bus emulator reads
// emulator-tests/servicebus/config.json, Azure gets
// infra/core/messaging/servicebus.bicep. Delivery count, lock, time to live
// and dead-lettering on expiry decide whether a failing or expired alert is
// retried, dead-lettered or dropped, so the emulator runs the deployed
// numbers and "an expired alert is dead-lettered, never dropped" holds
// locally too.

// alertsQueueSettings are the settings compared, with the official
// emulator's Config.json names and their Bicep property names.
var alertsQueueSettings = []struct{ config, bicep, kind, bicepDefault string }{
	{"MaxDeliveryCount", "maxDeliveryCount", "int", "10"},
	{"LockDuration", "lockDuration", "duration", "PT1M"},
	{"DefaultMessageTimeToLive", "defaultMessageTimeToLive", "duration", ""},
	{"DeadLetteringOnMessageExpiration", "deadLetteringOnMessageExpiration", "bool", "false"},
	{"RequiresSession", "requiresSession", "bool", "false"},
	{"RequiresDuplicateDetection", "requiresDuplicateDetection", "bool", "false"},
}

// alertsQueueDiff lists where the emulator's "alerts" queue differs from the
// deployed one. queue is the queue's name in both.
func alertsQueueDiff(bicepFiles map[string]string, emulatorConfig, queue string) []string {
	var diffs []string
	proj := newProject(bicepFiles)
	qs := proj.resources("Microsoft.ServiceBus/namespaces/queues@")
	if len(qs) != 1 {
		return []string{fmt.Sprintf("infra/ declares %d Service Bus queues, want the one alerts queue", len(qs))}
	}
	q := qs[0]
	props, ok := q.field("properties")
	if !ok {
		return []string{"the alerts queue in infra/ has no properties"}
	}
	var cfg struct {
		UserConfig struct {
			Namespaces []struct {
				Queues []struct {
					Name       string
					Properties map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(emulatorConfig), &cfg); err != nil {
		return []string{"emulator config: " + err.Error()}
	}
	var local map[string]any
	for _, ns := range cfg.UserConfig.Namespaces {
		for _, eq := range ns.Queues {
			if eq.Name == queue {
				local = eq.Properties
			}
		}
	}
	if local == nil {
		return []string{fmt.Sprintf("the emulator config has no queue %q, the queue the local stack's control plane uses", queue)}
	}
	for _, s := range alertsQueueSettings {
		deployed := s.bicepDefault
		if seg, ok := proj.lookup(q.file, props, s.bicep); ok {
			if v, isString := literal(seg); isString {
				deployed = v
			} else {
				deployed = strings.TrimSpace(seg.clean)
			}
		}
		var here string
		switch v := local[s.config].(type) {
		case nil:
			here = "(unset)"
		case float64:
			here = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			here = strconv.FormatBool(v)
		case string:
			here = v
		default:
			here = fmt.Sprint(v)
		}
		if s.kind == "duration" {
			deployed, here = strings.ToUpper(deployed), strings.ToUpper(here)
		}
		if deployed != here {
			diffs = append(diffs, fmt.Sprintf("%s: emulator-tests/servicebus/config.json has %s, the Bicep (%s) %s", s.config, here, s.bicep, deployed))
		}
	}
	return diffs
}

func TestAlertsQueueLocalEqualsDeployed(t *testing.T) {
	bicep := walk(t, "infra", func(rel string) bool { return strings.HasSuffix(rel, ".bicep") })
	cfg := readFile(t, "emulator-tests/servicebus/config.json")
	for _, d := range alertsQueueDiff(bicep, cfg, "alerts") {
		t.Error(d)
	}

	// The comparison sees a change on either side.
	for name, mutate := range map[string]func() (map[string]string, string){
		"emulator retries fewer times": func() (map[string]string, string) {
			return bicep, strings.Replace(cfg, `"MaxDeliveryCount": 10`, `"MaxDeliveryCount": 3`, 1)
		},
		"Bicep drops expired alerts": func() (map[string]string, string) {
			b := map[string]string{}
			for k, v := range bicep {
				b[k] = strings.Replace(v, "deadLetteringOnMessageExpiration: true", "deadLetteringOnMessageExpiration: false", 1)
			}
			return b, cfg
		},
	} {
		b, c := mutate()
		if len(alertsQueueDiff(b, c, "alerts")) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}
}
