// Package nonce remembers the nonces of signed agent requests for as long
// as their timestamps are acceptable, so a captured request cannot be
// replayed. Table: PK machine ID, RK nonce.
package nonce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
)

// ErrReplay: the nonce was seen before.
var ErrReplay = errors.New("request was already received (replayed nonce)")

// Store is the nonces table.
type Store struct{ c *aztables.Client }

// New uses the "nonces" table of svc.
func New(svc *aztables.ServiceClient) *Store { return &Store{c: svc.NewClient("nonces")} }

// EnsureTable creates the table if it is missing.
func (s *Store) EnsureTable(ctx context.Context) error { return tables.Ensure(ctx, s.c) }

type entity struct {
	PartitionKey string
	RowKey       string
	SignedAt     string
}

// Remember records a nonce; the insert is atomic, so of two requests with
// the same nonce exactly one passes.
func (s *Store) Remember(ctx context.Context, machineID, nonce string, signedAt time.Time) error {
	err := tables.Add(ctx, s.c, &entity{PartitionKey: machineID, RowKey: nonce, SignedAt: tables.Time(signedAt)})
	if tables.Exists(err) {
		return ErrReplay
	}
	if err != nil {
		return fmt.Errorf("record request nonce: %w", err)
	}
	return nil
}

// Sweep forgets nonces signed before cutoff: their timestamps are refused
// anyway.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	es, err := tables.Query[entity](ctx, s.c, "SignedAt lt '"+tables.Time(cutoff)+"'", 0)
	if err != nil {
		return 0, fmt.Errorf("list old nonces: %w", err)
	}
	for _, e := range es {
		if err := tables.Delete(ctx, s.c, e.PartitionKey, e.RowKey); err != nil {
			return 0, err
		}
	}
	return len(es), nil
}
