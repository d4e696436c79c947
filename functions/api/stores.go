package api

import (
	"context"
	"time"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/jobs"
	"github.com/coffer-backup/coffer/functions/points"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/functions/sas"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// What the API needs of each store, so handlers are tested with fakes in
// milliseconds; the Table storage stores implement them.

// VaultStore is what the API needs of vaults and their credentials.
type VaultStore interface {
	CreateVault(ctx context.Context, nv wire.NewVault) (wire.Vault, error)
	Vaults(ctx context.Context) ([]wire.Vault, error)
	Vault(ctx context.Context, id string) (wire.Vault, error)
	UpdateVault(ctx context.Context, id string, u wire.VaultUpdate) (wire.Vault, error)
	DeleteVault(ctx context.Context, id string) error // only with no machine left
	NewCredentials(ctx context.Context, vaultID string) (credID, secret string, expires time.Time, err error)
	CheckCredentials(ctx context.Context, vaultID, credID, secret string) error
}

// PolicyStore is what the API needs of policies.
type PolicyStore interface {
	Policies(ctx context.Context, vaultID string) ([]registry.Policy, error)
	Policy(ctx context.Context, vaultID, name string) (registry.Policy, error)
	PutPolicy(ctx context.Context, vaultID, name string, p policy.Policy) (registry.Policy, error)
	DeletePolicy(ctx context.Context, vaultID, name string) error
}

// MachineStore is what the API needs of machines. Protection state changes
// go through Transition only, which checks the registry's rules on the
// record it writes.
type MachineStore interface {
	Register(ctx context.Context, reg wire.Register) (wire.Machine, error)
	Machine(ctx context.Context, id string) (registry.Machine, error)
	VaultMachine(ctx context.Context, vaultID, id string) (registry.Machine, error)
	FindMachine(ctx context.Context, vaultID, idOrName string) (registry.Machine, error)
	Machines(ctx context.Context, vaultID string) ([]registry.Machine, error)
	ModifyMachine(ctx context.Context, id string, change func(m *registry.Machine) error) (registry.Machine, error)
	Transition(ctx context.Context, id string, t registry.Transition) (registry.Machine, bool, error)
	RemoveMachine(ctx context.Context, m registry.Machine) error
}

// Registry is the vault registry: *registry.Registry.
type Registry interface {
	VaultStore
	PolicyStore
	MachineStore
}

// PointStore is what the API needs of recovery points.
type PointStore interface {
	Add(ctx context.Context, vaultID, machineID, pointID, jobID string, retainUntil *time.Time) (wire.Point, error)
	Get(ctx context.Context, machineID, pointID string) (wire.Point, error)
	List(ctx context.Context, machineID string, withDeleted bool) ([]wire.Point, error)
	SoftDelete(ctx context.Context, machineID, pointID string) (wire.Point, error)
	Undelete(ctx context.Context, machineID, pointID string) (wire.Point, error)
	SetRetainUntil(ctx context.Context, machineID, pointID string, was, until *time.Time) (wire.Point, error)
	Flag(ctx context.Context, machineID, pointID, reason string) (wire.Point, error)
	ClearFlag(ctx context.Context, machineID, pointID, by string) (wire.Point, error)
	Summary(ctx context.Context, machineID string) (points.Summary, error)
}

// PINStore issues and redeems security PINs.
type PINStore interface {
	Generate(ctx context.Context, vaultID, by string) (wire.PIN, error)
	Use(ctx context.Context, vaultID, pin, operation, source string) error
}

// NonceStore refuses a signed request seen before.
type NonceStore interface {
	Remember(ctx context.Context, machineID, nonce string, signedAt time.Time) error
}

// JobStore is what the API needs of job tracking.
type JobStore interface {
	Create(ctx context.Context, vaultID, machineID, machineName, jobType string) (wire.Job, error)
	Report(ctx context.Context, vaultID, machineID, jobID string, r wire.JobReport) (wire.Job, error)
	Get(ctx context.Context, vaultID, machineID, jobID string) (wire.Job, error)
	List(ctx context.Context, vaultID string, f jobs.Filter) ([]wire.Job, error)
}

// AlertStore is what the API needs of alerts.
type AlertStore interface {
	Raise(ctx context.Context, a wire.Alert) (wire.Alert, error)
	List(ctx context.Context, vaultID string, f alerts.Filter) ([]wire.Alert, error)
	Get(ctx context.Context, vaultID, id string) (wire.Alert, error)
	Acknowledge(ctx context.Context, vaultID, id, by string) (wire.Alert, error)
}

// SASIssuer grants an agent access to its container.
type SASIssuer interface {
	Container(ctx context.Context, container string, ttl time.Duration) (sas.Grant, error)
	ReadOnly(ctx context.Context, container string, ttl time.Duration) (sas.Grant, error)
}

// Blobs is what the API needs of the machines' containers.
type Blobs interface {
	Ensure(ctx context.Context, name string) error
	CheckPoint(ctx context.Context, name, pointID string) (containers.Missing, error)
	Usage(ctx context.Context, name string) (containers.Usage, error)
	RetireKey(ctx context.Context, name, keyID, replacement string) (containers.DeletedKey, error)
	DeletedKeys(ctx context.Context, name string) ([]containers.DeletedKey, error)
	UndeleteKey(ctx context.Context, name, keyID string) (containers.DeletedKey, error)
}
