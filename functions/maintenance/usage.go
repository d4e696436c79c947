package maintenance

import (
	"context"
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/functions/containers"
	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/wire"
)

// UsageHistory keeps one sample a day of each machine's storage:
// *usage.Store.
type UsageHistory interface {
	// Sampled reports whether the machine has a sample for day's UTC day.
	Sampled(ctx context.Context, machineID string, day time.Time) (bool, error)
	// Record stores the sample for its day, replacing an earlier one.
	Record(ctx context.Context, vaultID, machineID string, u wire.UsageSample) error
}

// ContainerSizer adds up a machine's container: *containers.Containers.
type ContainerSizer interface {
	Usage(ctx context.Context, name string) (containers.Usage, error)
}

// sampleUsage records the machine's storage once per UTC day: the first
// MonitorBackups run of the day measures the container; the other 95 runs
// cost one point read each. Machines stopped or soft-deleted are measured
// too, since their data is still stored (and billed) until it is purged.
// Without a history store it does nothing.
func (t *Timers) sampleUsage(ctx context.Context, m registry.Machine, now time.Time) (bool, error) {
	if t.Usage == nil || t.Sizes == nil || m.Container == "" {
		return false, nil
	}
	done, err := t.Usage.Sampled(ctx, m.ID, now)
	if err != nil || done {
		return false, err
	}
	u, err := t.Sizes.Usage(ctx, m.Container)
	if err != nil {
		return false, fmt.Errorf("measure container %s: %w", m.Container, err)
	}
	s := wire.UsageSample{Day: now.UTC().Format(time.DateOnly), At: now.UTC(), Bytes: u.Bytes, Objects: u.Objects, Packs: u.Packs}
	if err := t.Usage.Record(ctx, m.VaultID, m.ID, s); err != nil {
		return false, fmt.Errorf("record storage sample: %w", err)
	}
	return true, nil
}
