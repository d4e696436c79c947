package registry

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/reqsign"
	"github.com/coffer-backup/coffer/shared/wire"
)

// SoftDeleteRetention is how long deleted data can be undeleted, as in
// MARS, unless the deployment sets another period (COFFER_SOFT_DELETE_DAYS).
const SoftDeleteRetention = 14 * 24 * time.Hour

type machineEntity struct {
	PartitionKey string
	RowKey       string
	VaultID      string
	Name         string
	OS           string
	AgentVersion string
	PublicKey    string
	Container    string
	Policy       string
	State        string
	RegisteredAt string
	StoppedAt    string
	DeletedAt    string
	PurgeAfter   string
	// LastMissed is the scheduled time of the last missed backup alerted,
	// so the monitor raises one alert per missed run.
	LastMissed string
	// RestoreSource may be read by this machine until RestoreUntil.
	RestoreSource string
	RestoreUntil  string
	// KeyChangeUntil: a PIN allowed a passphrase change; the old key file
	// may be retired until then.
	KeyChangeUntil string
	// KeyVaultPrincipal is the object ID of the machine's Key Vault
	// identity, given at registration, so the role it was assigned on its
	// secret can be removed when the machine is purged.
	KeyVaultPrincipal string
}

type nameClaim struct {
	PartitionKey string
	RowKey       string
	MachineID    string
}

func optTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := tables.ParseTime(s)
	return &t
}

func (m *machineEntity) api() wire.Machine {
	out := wire.Machine{ID: m.RowKey, VaultID: m.VaultID, Name: m.Name, OS: m.OS, AgentVersion: m.AgentVersion,
		Container: m.Container, Policy: m.Policy, State: m.State, RegisteredAt: tables.ParseTime(m.RegisteredAt),
		StoppedAt: optTime(m.StoppedAt), DeletedAt: optTime(m.DeletedAt)}
	if out.DeletedAt != nil {
		p := out.DeletedAt.Add(SoftDeleteRetention) // rows written before PurgeAfter was stored
		if m.PurgeAfter != "" {
			p = tables.ParseTime(m.PurgeAfter)
		}
		out.PurgeAfter = &p
	}
	return out
}

// Machine is the stored machine with what only the control plane needs.
type Machine struct {
	wire.Machine
	PublicKey      string
	LastMissed     time.Time
	RestoreSource  string
	RestoreUntil   time.Time
	KeyChangeUntil time.Time
	// KeyVaultPrincipal is the machine's Key Vault identity, if it gave one.
	KeyVaultPrincipal string
}

func (m *machineEntity) full() Machine {
	return Machine{Machine: m.api(), PublicKey: m.PublicKey, LastMissed: tables.ParseTime(m.LastMissed),
		RestoreSource: m.RestoreSource, RestoreUntil: tables.ParseTime(m.RestoreUntil), KeyChangeUntil: tables.ParseTime(m.KeyChangeUntil),
		KeyVaultPrincipal: m.KeyVaultPrincipal}
}

// SecretName is the Key Vault secret that escrows a machine's passphrase.
func SecretName(machineID string) string { return "coffer-passphrase-" + machineID }

// ContainerName is a machine's blob container.
func ContainerName(machineID string) string { return "coffer-" + machineID }

func checkMachineName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: machine name must be 1 to 63 characters", ErrInvalid)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: machine name %q may contain only letters, digits, '-', '_' and '.' (a host name)", ErrInvalid, name)
		}
	}
	return nil
}

func claimKey(vaultID, name string) string {
	return vaultID + "~" + hex.EncodeToString([]byte(strings.ToLower(name)))
}

// Register adds a machine to a vault. The caller has checked the vault
// credentials. Names are unique in a vault, ignoring case.
func (r *Registry) Register(ctx context.Context, reg wire.Register) (wire.Machine, error) {
	if err := checkMachineName(reg.MachineName); err != nil {
		return wire.Machine{}, err
	}
	if _, err := reqsign.DecodePublicKey(reg.PublicKey); err != nil {
		return wire.Machine{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(reg.OS) > 64 || len(reg.AgentVersion) > 64 {
		return wire.Machine{}, fmt.Errorf("%w: os and agentVersion must be at most 64 characters", ErrInvalid)
	}
	id := NewID()
	claim := nameClaim{PartitionKey: "n", RowKey: claimKey(reg.VaultID, reg.MachineName), MachineID: id}
	if err := tables.Add(ctx, r.machines, &claim); err != nil {
		if !tables.Exists(err) {
			return wire.Machine{}, fmt.Errorf("claim machine name: %w", err)
		}
		// A claim left by a registration that failed half-way, or by a
		// purged machine, is taken over; a live machine's is not.
		var old nameClaim
		etag, gerr := tables.Get(ctx, r.machines, "n", claim.RowKey, &old)
		if gerr != nil {
			return wire.Machine{}, fmt.Errorf("read machine name claim: %w", gerr)
		}
		if _, err := r.Machine(ctx, old.MachineID); err == nil {
			return wire.Machine{}, fmt.Errorf("%w: a machine named %q is already registered in this vault; choose another name with --name, or stop protection and delete the old machine first", ErrConflict, reg.MachineName)
		} else if !errors.Is(err, ErrNotFound) {
			return wire.Machine{}, err
		}
		if err := tables.Replace(ctx, r.machines, &claim, etag); err != nil {
			return wire.Machine{}, fmt.Errorf("%w: the machine name %q is being registered right now; retry", ErrConflict, reg.MachineName)
		}
	}
	m := machineEntity{PartitionKey: "m", RowKey: id, VaultID: reg.VaultID, Name: reg.MachineName, OS: reg.OS,
		AgentVersion: reg.AgentVersion, PublicKey: reg.PublicKey, Container: ContainerName(id),
		State: wire.MachineProtected, RegisteredAt: tables.Time(r.now()), KeyVaultPrincipal: reg.KeyVaultPrincipalID}
	if err := tables.Add(ctx, r.machines, &m); err != nil {
		tables.Delete(ctx, r.machines, "n", claim.RowKey)
		return wire.Machine{}, fmt.Errorf("store machine: %w", err)
	}
	return m.api(), nil
}

// Machine finds a machine by ID, in any vault.
func (r *Registry) Machine(ctx context.Context, id string) (Machine, error) {
	m, _, err := r.getMachine(ctx, id)
	if err != nil {
		return Machine{}, err
	}
	return m.full(), nil
}

// VaultMachine finds a machine of one vault; another vault's is not found.
func (r *Registry) VaultMachine(ctx context.Context, vaultID, id string) (Machine, error) {
	m, err := r.Machine(ctx, id)
	if err == nil && m.VaultID != vaultID {
		return Machine{}, fmt.Errorf("%w: no machine %s in vault %s", ErrNotFound, id, vaultID)
	}
	return m, err
}

func (r *Registry) getMachine(ctx context.Context, id string) (*machineEntity, string, error) {
	if err := tables.CheckID("machine", id); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var m machineEntity
	etag, err := tables.Get(ctx, r.machines, "m", id, &m)
	if tables.NotFound(err) {
		return nil, "", fmt.Errorf("%w: no machine %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read machine %s: %w", id, err)
	}
	return &m, string(etag), nil
}

// Machines lists a vault's machines by name; vaultID "" lists every vault's.
func (r *Registry) Machines(ctx context.Context, vaultID string) ([]Machine, error) {
	filter := "PartitionKey eq 'm'"
	if vaultID != "" {
		if err := tables.CheckID("vault", vaultID); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		filter += " and VaultID eq '" + vaultID + "'"
	}
	ms, err := tables.Query[machineEntity](ctx, r.machines, filter, 0)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	out := make([]Machine, len(ms))
	for i := range ms {
		out[i] = ms[i].full()
	}
	slices.SortFunc(out, func(a, b Machine) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ModifyMachine reads, changes and writes a machine, retrying on a
// concurrent change.
func (r *Registry) ModifyMachine(ctx context.Context, id string, change func(m *Machine) error) (Machine, error) {
	for attempt := 0; ; attempt++ {
		e, etag, err := r.getMachine(ctx, id)
		if err != nil {
			return Machine{}, err
		}
		m := e.full()
		if err := change(&m); err != nil {
			return Machine{}, err
		}
		e.Policy, e.State, e.LastMissed = m.Policy, m.State, ""
		wasDeleted := e.DeletedAt != ""
		e.StoppedAt, e.DeletedAt = "", ""
		if m.StoppedAt != nil {
			e.StoppedAt = tables.Time(*m.StoppedAt)
		}
		if m.DeletedAt != nil {
			e.DeletedAt = tables.Time(*m.DeletedAt)
			if !wasDeleted {
				e.PurgeAfter = tables.Time(m.DeletedAt.Add(r.SoftDelete))
			}
		} else {
			e.PurgeAfter = ""
		}
		if !m.LastMissed.IsZero() {
			e.LastMissed = tables.Time(m.LastMissed)
		}
		e.RestoreSource, e.RestoreUntil, e.KeyChangeUntil = m.RestoreSource, "", ""
		if !m.RestoreUntil.IsZero() {
			e.RestoreUntil = tables.Time(m.RestoreUntil)
		}
		if !m.KeyChangeUntil.IsZero() {
			e.KeyChangeUntil = tables.Time(m.KeyChangeUntil)
		}
		err = tables.Replace(ctx, r.machines, e, azETag(etag))
		if tables.Changed(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return Machine{}, fmt.Errorf("update machine %s: %w", id, err)
		}
		return e.full(), nil
	}
}

// RemoveMachine deletes a purged machine and frees its name.
func (r *Registry) RemoveMachine(ctx context.Context, m Machine) error {
	if err := tables.Delete(ctx, r.machines, "m", m.ID); err != nil {
		return fmt.Errorf("delete machine %s: %w", m.ID, err)
	}
	return tables.Delete(ctx, r.machines, "n", claimKey(m.VaultID, m.Name))
}

// FindMachine finds a vault's machine by ID or, failing that, by name.
func (r *Registry) FindMachine(ctx context.Context, vaultID, idOrName string) (Machine, error) {
	m, err := r.VaultMachine(ctx, vaultID, idOrName)
	if !errors.Is(err, ErrNotFound) || checkMachineName(idOrName) != nil {
		return m, err
	}
	var claim nameClaim
	if _, err := tables.Get(ctx, r.machines, "n", claimKey(vaultID, idOrName), &claim); err != nil {
		if tables.NotFound(err) {
			return Machine{}, fmt.Errorf("%w: vault %s has no machine %q", ErrNotFound, vaultID, idOrName)
		}
		return Machine{}, fmt.Errorf("look up machine %q: %w", idOrName, err)
	}
	return r.VaultMachine(ctx, vaultID, claim.MachineID)
}
