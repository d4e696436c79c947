// Package pin issues and redeems security PINs: 8 digits, valid 5 minutes,
// usable once, stored hashed. Destructive operations need one, so a stolen
// admin session alone cannot destroy backups.
package pin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// TTL is how long a PIN is valid, as in MARS.
const TTL = 5 * time.Minute

// ErrInvalid covers a wrong, expired or used PIN; the message says which.
var ErrInvalid = errors.New("security PIN not accepted")

// Store is the pins table: PK vault ID, RK hash of the PIN.
type Store struct {
	c   *aztables.Client
	now func() time.Time
}

// New uses the "pins" table of svc.
func New(svc *aztables.ServiceClient, now func() time.Time) *Store {
	return &Store{c: svc.NewClient("pins"), now: now}
}

// EnsureTable creates the table if it is missing.
func (s *Store) EnsureTable(ctx context.Context) error { return tables.Ensure(ctx, s.c) }

type entity struct {
	PartitionKey string
	RowKey       string
	CreatedBy    string
	ExpiresAt    string
	UsedAt       string
	UsedFor      string
}

func key(vaultID, pin string) string {
	h := sha256.Sum256([]byte("coffer-pin\n" + vaultID + "\n" + pin))
	return hex.EncodeToString(h[:])
}

// Generate makes a PIN for a vault.
func (s *Store) Generate(ctx context.Context, vaultID, by string) (wire.PIN, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return wire.PIN{}, err
	}
	p := fmt.Sprintf("%08d", n.Int64())
	exp := s.now().Add(TTL).UTC()
	if err := tables.Add(ctx, s.c, &entity{PartitionKey: vaultID, RowKey: key(vaultID, p), CreatedBy: by, ExpiresAt: tables.Time(exp)}); err != nil {
		if tables.Exists(err) {
			return s.Generate(ctx, vaultID, by) // the same live PIN twice: draw again
		}
		return wire.PIN{}, fmt.Errorf("store PIN: %w", err)
	}
	return wire.PIN{PIN: p, ExpiresAt: exp}, nil
}

// Use redeems a PIN for an operation. Of two concurrent uses, one wins.
func (s *Store) Use(ctx context.Context, vaultID, pin, operation string) error {
	if len(pin) != 8 {
		return fmt.Errorf("%w: a security PIN is 8 digits; generate one (valid 5 minutes) and send it in the %s header", ErrInvalid, wire.PINHeader)
	}
	var e entity
	etag, err := tables.Get(ctx, s.c, vaultID, key(vaultID, pin), &e)
	if tables.NotFound(err) {
		return fmt.Errorf("%w: the PIN is wrong for this vault; generate a new one", ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("read PIN: %w", err)
	}
	if e.UsedAt != "" {
		return fmt.Errorf("%w: the PIN was already used at %s; a PIN works once, generate a new one", ErrInvalid, e.UsedAt)
	}
	if !s.now().Before(tables.ParseTime(e.ExpiresAt)) {
		return fmt.Errorf("%w: the PIN expired at %s (PINs last 5 minutes); generate a new one", ErrInvalid, tables.ParseTime(e.ExpiresAt).Format(time.RFC3339))
	}
	e.UsedAt, e.UsedFor = tables.Time(s.now()), operation
	if err := tables.Replace(ctx, s.c, &e, azcore.ETag(etag)); err != nil {
		if tables.Changed(err) || tables.NotFound(err) {
			return fmt.Errorf("%w: the PIN was just used by another request; generate a new one", ErrInvalid)
		}
		return fmt.Errorf("redeem PIN: %w", err)
	}
	return nil
}

// Sweep deletes PINs that expired before cutoff.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	es, err := tables.Query[entity](ctx, s.c, "ExpiresAt lt '"+tables.Time(cutoff)+"'", 0)
	if err != nil {
		return 0, fmt.Errorf("list expired PINs: %w", err)
	}
	for _, e := range es {
		if err := tables.Delete(ctx, s.c, e.PartitionKey, e.RowKey); err != nil {
			return 0, err
		}
	}
	return len(es), nil
}
