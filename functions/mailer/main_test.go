package mailer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/devcert"
	"github.com/coffer-backup/coffer/emulator-tests/ondemand"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
	"github.com/coffer-backup/coffer/emulator-tests/smtpsink"
	"github.com/coffer-backup/coffer/shared/clocktest"
	"github.com/coffer-backup/coffer/shared/wire"
)

// The emulators start on first use and TestMain stops them, so tests that
// need none (config checks, message formatting) run without Node.
var (
	emu ondemand.Emulators
	az  *azurite.Azurite
	sb  *servicebus.Emulator

	certOnce sync.Once
	cert     *devcert.Cert
	certErr  error
)

func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }

func emulators(t *testing.T) {
	t.Helper()
	emu.Start(t)
	az, sb = emu.Azurite, emu.ServiceBus
}

func testCert(t *testing.T) *devcert.Cert {
	t.Helper()
	certOnce.Do(func() { cert, certErr = devcert.New("smtp", time.Hour) })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return cert
}

var tableSeq atomic.Int64

// digestTable is a fresh digests table per test.
func digestTable(t *testing.T) *aztables.Client {
	t.Helper()
	emulators(t)
	svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc.NewClient(fmt.Sprintf("digests%d", tableSeq.Add(1)))
}

// readyTable is a fresh, created digests table, for tests whose alerts
// count against their machine's email limit.
func readyTable(t *testing.T) *aztables.Client {
	t.Helper()
	c := digestTable(t)
	if _, err := c.CreateTable(testContext(t, 30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// offlineTable is a table client that is never called.
func offlineTable(t testing.TB) *aztables.Client {
	t.Helper()
	c, err := aztables.NewClientWithNoCredential("http://127.0.0.1:9/devstoreaccount1/digests", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startSink(t *testing.T, o smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func port(t *testing.T, s *smtpsink.Sink) int {
	t.Helper()
	p, err := strconv.Atoi(s.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// vaults is the registry as the mailer sees it.
type vaults struct {
	mu      sync.Mutex
	to      map[string][]string
	digest  map[string]bool
	err     error
	lookups int
}

func (v *vaults) AlertRecipients(_ context.Context, id string) ([]string, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lookups++
	if v.err != nil {
		return nil, false, v.err
	}
	return v.to[id], v.digest[id], nil
}

func alert(id, vault string, at time.Time, sev, kind, title string) wire.Alert {
	return wire.Alert{
		ID: id, VaultID: vault, VaultName: "Contoso ROBO", MachineID: "m-01", MachineName: "branch-01", JobID: "job-42",
		Severity: sev, Kind: kind, Title: title,
		Detail:   "The backup stopped: disk D: was not found.\nReconnect the disk, then run the backup again.",
		RaisedAt: at,
	}
}

func body(t *testing.T, a wire.Alert) []byte {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newClock is the test's clock, which it moves by hand.
func newClock() *clocktest.Fake { return clocktest.New(time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)) }
