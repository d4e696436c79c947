// Package ondemand starts Azurite and the Service Bus emulator the first
// time a test needs them, and stops them after the package's tests. Tests
// that need no emulator (decoders, fuzzing, formatting) then run without
// Node, and under go test -short (make unit) every test that asks for an
// emulator is skipped with one line instead of starting it.
//
//	var emu ondemand.Emulators
//	func TestMain(m *testing.M) { os.Exit(emu.Main(m)) }
//	func TestX(t *testing.T) { emu.Start(t); ... emu.Azurite.ConnectionString() ... }
package ondemand

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
)

// startTimeout bounds one emulator's start; a cold npm cache on a slow
// disk is the worst case.
const startTimeout = 2 * time.Minute

// Emulators is one Azurite and one Service Bus emulator, each started on
// first use.
type Emulators struct {
	azOnce, sbOnce sync.Once
	azErr, sbErr   error
	Azurite        *azurite.Azurite
	ServiceBus     *servicebus.Emulator
}

// SkipShort skips t under go test -short: make unit promises tests that
// need no emulator, so a test that needs one says so in one line.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local Azure emulators; skipped under -short (make unit), run by make test")
	}
}

// Start starts both emulators once, in parallel; a failure fails t, every
// time. Under -short it skips t instead.
func (e *Emulators) Start(t testing.TB) {
	t.Helper()
	SkipShort(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.startAzurite() }()
	go func() { defer wg.Done(); e.startServiceBus() }()
	wg.Wait()
	if err := errors.Join(e.azErr, e.sbErr); err != nil {
		t.Fatalf("start the emulators (run make deps to install them): %v", err)
	}
}

// StartAzurite starts only Azurite, for packages that need no Service Bus;
// a failure fails t, every time. Under -short it skips t instead.
func (e *Emulators) StartAzurite(t testing.TB) *azurite.Azurite {
	t.Helper()
	SkipShort(t)
	e.startAzurite()
	if e.azErr != nil {
		t.Fatalf("start Azurite (run make deps to install it): %v", e.azErr)
	}
	return e.Azurite
}

func (e *Emulators) startAzurite() {
	e.azOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		e.Azurite, e.azErr = azurite.Start(ctx, azurite.Options{})
	})
}

func (e *Emulators) startServiceBus() {
	e.sbOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		e.ServiceBus, e.sbErr = servicebus.Start(ctx, servicebus.Options{})
	})
}

// Tables starts Azurite and returns a Table storage client for its
// account.
func (e *Emulators) Tables(t testing.TB) *aztables.ServiceClient {
	t.Helper()
	a := e.StartAzurite(t)
	svc, err := aztables.NewServiceClientFromConnectionString(a.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Stop stops whatever was started.
func (e *Emulators) Stop() error {
	var errs []error
	if e.Azurite != nil {
		if err := e.Azurite.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop Azurite: %w", err))
		}
	}
	if e.ServiceBus != nil {
		if err := e.ServiceBus.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop the Service Bus emulator: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Main runs the tests and then stops the emulators; a failed stop fails
// the run, since it would leave processes behind.
func (e *Emulators) Main(m interface{ Run() int }) int {
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}
