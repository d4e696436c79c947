// Package ondemand starts Azurite and the Service Bus emulator the first
// time a test needs them, and stops them after the package's tests. Tests
// that need no emulator (decoders, fuzzing, formatting) then run without
// Node.
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
	"golang.org/x/sync/errgroup"

	"github.com/coffer-backup/coffer/emulator-tests/azurite"
	"github.com/coffer-backup/coffer/emulator-tests/servicebus"
)

// Emulators is one Azurite and one Service Bus emulator, started together
// on first use.
type Emulators struct {
	once       sync.Once
	err        error
	Azurite    *azurite.Azurite
	ServiceBus *servicebus.Emulator
}

// Start starts both emulators once; a failure fails t, every time.
func (e *Emulators) Start(t testing.TB) {
	t.Helper()
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var g errgroup.Group
		g.Go(func() (err error) { e.Azurite, err = azurite.Start(ctx, azurite.Options{}); return err })
		g.Go(func() (err error) { e.ServiceBus, err = servicebus.Start(ctx, servicebus.Options{}); return err })
		e.err = g.Wait()
	})
	if e.err != nil {
		t.Fatalf("start the emulators (run make deps to install them): %v", e.err)
	}
}

// Tables starts the emulators and returns a Table storage client for
// Azurite's account.
func (e *Emulators) Tables(t testing.TB) *aztables.ServiceClient {
	t.Helper()
	e.Start(t)
	svc, err := aztables.NewServiceClientFromConnectionString(e.Azurite.ConnectionString(), nil)
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
