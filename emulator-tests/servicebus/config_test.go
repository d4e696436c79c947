package servicebus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A config that is not in the official emulator's shape is refused at start,
// naming the field to fix, instead of serving an empty namespace.
func TestBrokenConfigIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	localOnly(t)
	for _, tc := range []struct{ name, config, want string }{
		{"not JSON", `nope`, "is not valid JSON"},
		{"UserConfig not an object", `{"UserConfig": "x"}`, "UserConfig must be an object"},
		{"no namespace", `{"UserConfig":{"Namespaces":[]}}`, "UserConfig.Namespaces must name at least one namespace"},
		{"no entity", `{"UserConfig":{"Namespaces":[{"Name":"ns"}]}}`, "declare no queue or topic"},
		{"queue without a name", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{}]}]}}`, "UserConfig.Namespaces[0].Queues[0].Name must be a name"},
		{"zero max delivery count", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q","Properties":{"MaxDeliveryCount":0}}]}]}}`, "Queues[0].Properties.MaxDeliveryCount must be a whole number"},
		{"bad lock duration", `{"UserConfig":{"Namespaces":[{"Name":"ns","Topics":[{"Name":"t","Subscriptions":[{"Name":"s","Properties":{"LockDuration":"soon"}}]}]}]}}`, `Topics[0].Subscriptions[0].Properties cannot parse duration "soon"`},
		{"duplicate", `{"UserConfig":{"Namespaces":[{"Name":"ns","Queues":[{"Name":"q"},{"Name":"Q"}]}]}}`, "entity Q is declared twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			e, err := Start(testContext(t, 30*time.Second), Options{ConfigPath: path})
			if err == nil {
				e.Stop()
				t.Fatal("the emulator started with a broken config")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "exited before it was ready") {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
