// Package usage keeps the history of each machine's storage: one sample a
// day of its container's size, recorded by the MonitorBackups timer and
// charted by the portal. The control plane otherwise knows only today's
// size, which it adds up from the container when asked.
//
// Table "usage": PartitionKey = machine ID, RowKey = the UTC day
// (YYYY-MM-DD), so a machine's history is one partition in day order and
// "is today sampled" is one point read.
package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// DayLayout is a sample's day, as its RowKey and wire.UsageSample.Day.
const DayLayout = "2006-01-02"

// Day is t's UTC day.
func Day(t time.Time) string { return t.UTC().Format(DayLayout) }

// Store is the usage table.
type Store struct{ c *aztables.Client }

// New returns the store over the "usage" table.
func New(svc *aztables.ServiceClient) *Store { return &Store{c: svc.NewClient("usage")} }

// EnsureTable creates the table if it is missing.
func (s *Store) EnsureTable(ctx context.Context) error { return tables.Ensure(ctx, s.c) }

// Sampled reports whether the machine has a sample for day's UTC day.
func (s *Store) Sampled(ctx context.Context, machineID string, day time.Time) (bool, error) {
	if err := tables.CheckID("machine", machineID); err != nil {
		return false, err
	}
	_, err := s.c.GetEntity(ctx, machineID, Day(day), nil)
	switch {
	case err == nil:
		return true, nil
	case tables.NotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("read usage sample of machine %s: %w", machineID, err)
}

// Record stores the machine's sample for its day, replacing one recorded
// earlier that day, and forgets the machine's samples older than
// wire.MaxUsageDays, so each machine keeps a bounded history.
func (s *Store) Record(ctx context.Context, vaultID, machineID string, u wire.UsageSample) error {
	if err := tables.CheckID("machine", machineID); err != nil {
		return err
	}
	e := aztables.EDMEntity{
		Entity: aztables.Entity{PartitionKey: machineID, RowKey: u.Day},
		Properties: map[string]any{
			"VaultID": vaultID,
			"At":      aztables.EDMDateTime(u.At.UTC()),
			"Bytes":   aztables.EDMInt64(u.Bytes),
			"Objects": aztables.EDMInt64(u.Objects),
			"Packs":   aztables.EDMInt64(u.Packs),
		},
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode usage sample: %w", err)
	}
	if _, err := s.c.UpsertEntity(ctx, b, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("record usage sample of machine %s: %w", machineID, err)
	}
	cutoff := Day(u.At.AddDate(0, 0, -wire.MaxUsageDays))
	old, err := tables.Query[aztables.Entity](ctx, s.c, fmt.Sprintf("PartitionKey eq '%s' and RowKey lt '%s'", machineID, cutoff), 0)
	if err != nil {
		return fmt.Errorf("list old usage samples of machine %s: %w", machineID, err)
	}
	for _, o := range old {
		if err := tables.Delete(ctx, s.c, o.PartitionKey, o.RowKey); err != nil {
			return fmt.Errorf("forget usage sample %s of machine %s: %w", o.RowKey, machineID, err)
		}
	}
	return nil
}

// Since returns the machine's samples from since's UTC day on, oldest
// first.
func (s *Store) Since(ctx context.Context, machineID string, since time.Time) ([]wire.UsageSample, error) {
	if err := tables.CheckID("machine", machineID); err != nil {
		return nil, err
	}
	es, err := tables.Query[aztables.EDMEntity](ctx, s.c, fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s'", machineID, Day(since)), 0)
	if err != nil {
		return nil, fmt.Errorf("list usage samples of machine %s: %w", machineID, err)
	}
	out := make([]wire.UsageSample, 0, len(es))
	for _, e := range es {
		u := wire.UsageSample{Day: e.RowKey}
		if at, ok := e.Properties["At"].(aztables.EDMDateTime); ok {
			u.At = time.Time(at)
		}
		u.Bytes = int64Of(e.Properties["Bytes"])
		u.Objects = int(int64Of(e.Properties["Objects"]))
		u.Packs = int(int64Of(e.Properties["Packs"]))
		out = append(out, u)
	}
	return out, nil
}

// int64Of reads a number property: Edm.Int64 as written, or a plain JSON
// number.
func int64Of(v any) int64 {
	switch n := v.(type) {
	case aztables.EDMInt64:
		return int64(n)
	case float64:
		return int64(n)
	case int32:
		return int64(n)
	}
	return 0
}
