package maintenance

import (
	"context"
	"time"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// What the timers need of each store, declared here where they are used
// (only the methods the timers call), so the timers' rules are tested with
// in-memory fakes in milliseconds. The Table storage stores implement them:
// *registry.Registry, *points.Store, *pin.Store and *nonce.Store, wired in
// functions/app.

// Registry is what the timers need of vaults, policies and machines.
type Registry interface {
	Vault(ctx context.Context, id string) (wire.Vault, error)
	Policy(ctx context.Context, vaultID, name string) (registry.Policy, error)
	// Machines with vaultID "" lists every vault's machines.
	Machines(ctx context.Context, vaultID string) ([]registry.Machine, error)
	ModifyMachine(ctx context.Context, id string, change func(m *registry.Machine) error) (registry.Machine, error)
	RemoveMachine(ctx context.Context, m registry.Machine) error
}

// PointStore is what the timers need of recovery points.
type PointStore interface {
	// List returns a machine's points, oldest first; soft-deleted ones only
	// when withDeleted.
	List(ctx context.Context, machineID string, withDeleted bool) ([]wire.Point, error)
	// Get returns one point, or an error wrapping points.ErrNotFound.
	Get(ctx context.Context, machineID, pointID string) (wire.Point, error)
	Remove(ctx context.Context, machineID, pointID string) error
}

// Sweeper deletes records that expired before cutoff: used PINs and PIN
// lock-outs, and remembered request nonces.
type Sweeper interface {
	Sweep(ctx context.Context, cutoff time.Time) (int, error)
}
