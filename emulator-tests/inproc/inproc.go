// Package inproc runs Coffer's control plane inside a test's process,
// against the emulators, so a test can move its clock, wrap its handler and
// see every request.
package inproc

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/functions/app"
	"github.com/coffer-backup/coffer/functions/config"
)

// Admin tokens of an in-process control plane, one per role.
const (
	ContributorToken = "contributor-token-in-process-0123456789"
	OperatorToken    = "operator-token-in-process-0123456789ab"
	ReaderToken      = "reader-token-in-process-0123456789abcd"
	// SecurityAdminToken is the Backup Security Admin's own session.
	SecurityAdminToken = "security-admin-token-in-process-01234"
)

// Env is the settings of a control plane on Azurite and the Service Bus
// emulator, with a token for each role. The Key Vault and public URLs are
// placeholders for tests that run no agent; others set their own.
func Env(storageConnection, serviceBusConnection string) map[string]string {
	return map[string]string{
		config.StorageConnection:    storageConnection,
		config.ServiceBusConnection: serviceBusConnection,
		config.KeyVaultURL:          "https://127.0.0.1:1/",
		config.PublicURL:            "http://127.0.0.1:1",
		config.TokenContributor:     ContributorToken,
		config.TokenOperator:        OperatorToken,
		config.TokenReader:          ReaderToken,
		config.TokenSecurityAdmin:   SecurityAdminToken,
	}
}

// New builds the control plane from env as its app settings, on the clock
// now, logging to log; it is closed when the test ends. The caller serves
// its Handler.
func New(t testing.TB, env map[string]string, now func() time.Time, log *slog.Logger) *app.App {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.New(cfg, app.NewClock(now), log, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureTables(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}
