// Package pin issues and redeems security PINs: 8 digits, valid 5 minutes,
// usable once, stored hashed. Destructive operations need one, so a stolen
// admin session alone cannot destroy backups.
//
// A PIN is only 8 digits, so guessing is bounded per vault: after
// MaxFailures wrong PINs within FailureWindow every outstanding PIN of the
// vault is void and every try, and every new PIN, is refused for Lockout.
// The count lives in one row per vault updated under its ETag, and a try
// reserves its place in the count before its PIN is looked at, so any
// number of concurrent guessers together get at most MaxFailures wrong
// answers per window.
package pin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// TTL is how long a PIN is valid, as in MARS.
const TTL = 5 * time.Minute

// Guessing limits.
const (
	// MaxFailures wrong PINs for one vault within FailureWindow lock it.
	MaxFailures = 5
	// FailureWindow is how long wrong PINs are remembered, counted from the
	// first of them; typos spread over days never add up to a lockout.
	FailureWindow = time.Hour
	// Lockout is how long a locked vault refuses every PIN.
	Lockout = 15 * time.Minute
	// tryTimeout bounds a try that reserved its place and never reported
	// (its request died): after this its place is given back.
	tryTimeout = time.Minute
	// busyRetry is what a try is told when the other tries under way
	// already hold every place left.
	busyRetry = 10 * time.Second
	// maxSources bounds the sources of wrong PINs a lockout names.
	maxSources = MaxFailures
	maxSource  = 200
)

var (
	// ErrInvalid covers a wrong, expired or used PIN; the message says which.
	ErrInvalid = errors.New("security PIN not accepted")
	// ErrLocked means the vault refuses PINs for now; errors.As gives the
	// *LockedError with the time to retry.
	ErrLocked = errors.New("security PINs are locked for this vault")
)

// LockedError says until when a vault refuses PINs.
type LockedError struct {
	VaultID string
	Until   time.Time
	// Started is true for the try that caused the lockout: the caller
	// raises the critical alert, once.
	Started bool
	// Failures is how many wrong PINs caused the lockout, and Sources who
	// sent them (admin principals or machines), oldest first.
	Failures int
	Sources  []string
	// Busy means no lockout: other tries under way hold every place left
	// in the count; retry after Until.
	Busy bool
}

func (e *LockedError) Error() string {
	at := e.Until.UTC().Format(time.RFC3339)
	switch {
	case e.Busy:
		return fmt.Sprintf("%v: %d other security PIN tries for this vault are being checked; retry after %s", ErrLocked, MaxFailures, at)
	case e.Started:
		return fmt.Sprintf("%v: that was the %s wrong PIN within %s, so every outstanding PIN of this vault is void and PINs are refused until %s; then generate a new one", ErrLocked, ordinal(MaxFailures), FailureWindow, at)
	}
	return fmt.Sprintf("%v: after %d wrong PINs, PINs are refused until %s; then generate a new one", ErrLocked, MaxFailures, at)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// RetryAfter is how long from now until a try may succeed, rounded up to a
// whole second and at least one.
func (e *LockedError) RetryAfter(now time.Time) time.Duration {
	d := e.Until.Sub(now)
	if d < time.Second {
		return time.Second
	}
	return d.Truncate(time.Second) + time.Second
}

// Store is the pins table: PK vault ID, RK hash of the PIN, plus one
// lockout row per vault.
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

// lockKey is the RowKey of a vault's lockout row; PIN rows are 64 hex
// digits, so it cannot collide with one.
const lockKey = "lockout"

// lockEntity counts a vault's wrong PINs. Wrong is confirmed wrong PINs in
// the window; Trying is tries that reserved a place and are being checked.
// A try may start only while Wrong+Trying < MaxFailures.
type lockEntity struct {
	PartitionKey string
	RowKey       string
	Wrong        int
	Trying       int
	TryingAt     string // the latest reservation; older than tryTimeout means none is alive
	WindowStart  string
	LockedUntil  string
	Sources      string // "\n"-separated, distinct, at most maxSources
	ExpiresAt    string // when the row stops mattering; Sweep removes it later
}

func key(vaultID, pin string) string {
	h := sha256.Sum256([]byte("coffer-pin\n" + vaultID + "\n" + pin))
	return hex.EncodeToString(h[:])
}

// Generate makes a PIN for a vault. A locked vault gets none until the
// lockout ends: it would be refused anyway.
func (s *Store) Generate(ctx context.Context, vaultID, by string) (wire.PIN, error) {
	if err := tables.CheckID("vault", vaultID); err != nil {
		return wire.PIN{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var l lockEntity
	_, err := tables.Get(ctx, s.c, vaultID, lockKey, &l)
	if err != nil && !tables.NotFound(err) {
		return wire.PIN{}, fmt.Errorf("read the PIN lockout of vault %s: %w", vaultID, err)
	}
	if until := tables.ParseTime(l.LockedUntil); err == nil && s.now().Before(until) {
		return wire.PIN{}, &LockedError{VaultID: vaultID, Until: until, Failures: l.Wrong, Sources: splitSources(l.Sources)}
	}
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
		if err != nil {
			return wire.PIN{}, err
		}
		p := fmt.Sprintf("%08d", n.Int64())
		exp := s.now().Add(TTL).UTC()
		err = tables.Add(ctx, s.c, &entity{PartitionKey: vaultID, RowKey: key(vaultID, p), CreatedBy: by, ExpiresAt: tables.Time(exp)})
		if tables.Exists(err) {
			continue // the same PIN was drawn before and is not yet swept: draw again
		}
		if err != nil {
			return wire.PIN{}, fmt.Errorf("store PIN: %w", err)
		}
		return wire.PIN{PIN: p, ExpiresAt: exp}, nil
	}
}

// Use redeems a PIN for an operation. Of two concurrent uses, one wins.
// source names who sent it (an admin principal or a machine) for the
// lockout alert. A wrong PIN returns ErrInvalid and counts towards the
// lockout; the try that locks the vault, and every try while it is locked,
// returns a *LockedError.
func (s *Store) Use(ctx context.Context, vaultID, pin, operation, source string) error {
	if len(pin) != 8 || strings.ContainsFunc(pin, func(r rune) bool { return r < '0' || r > '9' }) {
		// Nothing is looked up, so nothing is learnt: not counted.
		return fmt.Errorf("%w: a security PIN is 8 digits; generate one (valid 5 minutes) and send it in the %s header", ErrInvalid, wire.PINHeader)
	}
	if err := tables.CheckID("vault", vaultID); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.reserve(ctx, vaultID); err != nil {
		return err
	}
	wrong, err := s.redeem(ctx, vaultID, pin, operation)
	if !wrong {
		// Right, used, expired, or the server failed: not a wrong guess.
		// A place that cannot be given back now lapses after tryTimeout;
		// the answer about the PIN stands either way.
		_ = s.release(ctx, vaultID)
		return err
	}
	locked, lerr := s.fail(ctx, vaultID, source)
	if lerr != nil {
		return fmt.Errorf("%w (and the wrong PIN could not be counted: %v)", err, lerr)
	}
	if locked != nil {
		if verr := s.voidOutstanding(ctx, vaultID); verr != nil {
			// The lockout already refuses them; voiding is belt and braces.
			return fmt.Errorf("%w (voiding the outstanding PINs failed: %v)", locked, verr)
		}
		return locked
	}
	return err
}

// redeem checks the PIN and marks it used. wrong is true only when no PIN
// of the vault has that value: a used or expired PIN was once right, and
// a storage failure says nothing about the guess.
func (s *Store) redeem(ctx context.Context, vaultID, pin, operation string) (wrong bool, err error) {
	var e entity
	etag, err := tables.Get(ctx, s.c, vaultID, key(vaultID, pin), &e)
	if tables.NotFound(err) {
		return true, fmt.Errorf("%w: the PIN is wrong for this vault; check it or generate a new one (after %d wrong PINs the vault refuses PINs for %s)", ErrInvalid, MaxFailures, Lockout)
	}
	if err != nil {
		return false, fmt.Errorf("read PIN: %w", err)
	}
	if strings.HasPrefix(e.UsedFor, voidPrefix) {
		return false, fmt.Errorf("%w: the PIN was voided at %s after %d wrong PINs; generate a new one", ErrInvalid, e.UsedAt, MaxFailures)
	}
	if e.UsedAt != "" {
		return false, fmt.Errorf("%w: the PIN was already used at %s; a PIN works once, generate a new one", ErrInvalid, e.UsedAt)
	}
	if !s.now().Before(tables.ParseTime(e.ExpiresAt)) {
		return false, fmt.Errorf("%w: the PIN expired at %s (PINs last 5 minutes); generate a new one", ErrInvalid, tables.ParseTime(e.ExpiresAt).Format(time.RFC3339))
	}
	e.UsedAt, e.UsedFor = tables.Time(s.now()), operation
	if err := tables.Replace(ctx, s.c, &e, azcore.ETag(etag)); err != nil {
		if tables.Changed(err) || tables.NotFound(err) {
			return false, fmt.Errorf("%w: the PIN was just used by another request; generate a new one", ErrInvalid)
		}
		return false, fmt.Errorf("redeem PIN: %w", err)
	}
	return false, nil
}

// reserve takes a place in the vault's count before the PIN is looked at.
func (s *Store) reserve(ctx context.Context, vaultID string) error {
	_, err := s.modify(ctx, vaultID, func(l *lockEntity, now time.Time) error {
		if until := tables.ParseTime(l.LockedUntil); now.Before(until) {
			return &LockedError{VaultID: vaultID, Until: until, Failures: l.Wrong, Sources: splitSources(l.Sources)}
		}
		if l.Wrong+l.Trying >= MaxFailures {
			return &LockedError{VaultID: vaultID, Until: now.Add(busyRetry), Busy: true}
		}
		l.Trying++
		l.TryingAt = tables.Time(now)
		return nil
	})
	return err
}

// release gives back the place of a try that was not a wrong guess.
func (s *Store) release(ctx context.Context, vaultID string) error {
	_, err := s.modify(ctx, vaultID, func(l *lockEntity, now time.Time) error {
		l.Trying = max(l.Trying-1, 0)
		return nil
	})
	return err
}

// fail turns the try's place into a wrong PIN and locks the vault at
// MaxFailures; it returns the lockout if this try started it.
func (s *Store) fail(ctx context.Context, vaultID, source string) (*LockedError, error) {
	var started *LockedError
	_, err := s.modify(ctx, vaultID, func(l *lockEntity, now time.Time) error {
		started = nil
		l.Trying = max(l.Trying-1, 0)
		if now.Before(tables.ParseTime(l.LockedUntil)) {
			return nil // locked meanwhile by another try; that one alerts
		}
		l.Wrong++
		srcs := splitSources(l.Sources)
		if src := cleanSource(source); !slices.Contains(srcs, src) && len(srcs) < maxSources {
			srcs = append(srcs, src)
		}
		l.Sources = strings.Join(srcs, "\n")
		if l.Wrong >= MaxFailures {
			until := now.Add(Lockout)
			l.LockedUntil, l.Trying = tables.Time(until), 0
			started = &LockedError{VaultID: vaultID, Until: until, Started: true, Failures: l.Wrong, Sources: srcs}
		}
		return nil
	})
	return started, err
}

// modify reads the vault's lockout row, applies change and writes it back
// under its ETag, again from the start if another request wrote first.
// Before change it forgets what has lapsed: a finished lockout or window
// starts the count again, and stale reservations are dropped. An error
// from change is returned without writing.
func (s *Store) modify(ctx context.Context, vaultID string, change func(l *lockEntity, now time.Time) error) (lockEntity, error) {
	for attempt := 0; ; attempt++ {
		var l lockEntity
		etag, err := tables.Get(ctx, s.c, vaultID, lockKey, &l)
		exists := err == nil
		if err != nil && !tables.NotFound(err) {
			return l, fmt.Errorf("read the PIN lockout of vault %s: %w", vaultID, err)
		}
		now := s.now()
		if !exists {
			l = lockEntity{PartitionKey: vaultID, RowKey: lockKey}
		}
		lockedUntil := tables.ParseTime(l.LockedUntil)
		windowEnd := tables.ParseTime(l.WindowStart).Add(FailureWindow)
		if l.WindowStart == "" || (l.LockedUntil != "" && !now.Before(lockedUntil)) || (l.LockedUntil == "" && !now.Before(windowEnd)) {
			trying := l.Trying
			l = lockEntity{PartitionKey: vaultID, RowKey: lockKey, WindowStart: tables.Time(now), Trying: trying, TryingAt: l.TryingAt}
		}
		if l.Trying > 0 && now.Sub(tables.ParseTime(l.TryingAt)) > tryTimeout {
			l.Trying = 0
		}
		if err := change(&l, now); err != nil {
			return l, err
		}
		exp := tables.ParseTime(l.WindowStart).Add(FailureWindow)
		if until := tables.ParseTime(l.LockedUntil); until.After(exp) {
			exp = until
		}
		l.ExpiresAt = tables.Time(exp)
		if exists {
			err = tables.Replace(ctx, s.c, &l, etag)
		} else {
			err = tables.Add(ctx, s.c, &l)
		}
		switch {
		case err == nil:
			return l, nil
		case (tables.Changed(err) || tables.Exists(err) || tables.NotFound(err)) && attempt < 50:
			continue // another try wrote first: count again on its result
		case ctx.Err() != nil:
			return l, ctx.Err()
		default:
			return l, fmt.Errorf("update the PIN lockout of vault %s: %w", vaultID, err)
		}
	}
}

const voidPrefix = "void: "

// voidOutstanding marks every unused PIN of a locked vault used, so none
// of them works even after the lockout ends.
func (s *Store) voidOutstanding(ctx context.Context, vaultID string) error {
	type row struct {
		entity
		ETag string `json:"odata.etag"`
	}
	rows, err := tables.Query[row](ctx, s.c, "PartitionKey eq '"+vaultID+"'", 0)
	if err != nil {
		return fmt.Errorf("list the PINs of vault %s: %w", vaultID, err)
	}
	var errs []error
	for _, r := range rows {
		if r.RowKey == lockKey || r.UsedAt != "" {
			continue
		}
		e := r.entity
		e.UsedAt, e.UsedFor = tables.Time(s.now()), voidPrefix+fmt.Sprintf("%d wrong PINs", MaxFailures)
		etag := azcore.ETag(r.ETag)
		if err := tables.Replace(ctx, s.c, &e, etag); err != nil && !tables.Changed(err) && !tables.NotFound(err) {
			errs = append(errs, err) // Changed: used meanwhile, which is what void means too
		}
	}
	return errors.Join(errs...)
}

// Sweep deletes PINs that expired before cutoff, and lockout rows that
// stopped mattering before it. Each delete is conditional on the row as
// read, so a lockout row counting a new wrong PIN meanwhile is kept.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	type row struct {
		PartitionKey, RowKey string
		ETag                 string `json:"odata.etag"`
	}
	es, err := tables.Query[row](ctx, s.c, "ExpiresAt lt '"+tables.Time(cutoff)+"'", 0)
	if err != nil {
		return 0, fmt.Errorf("list expired PINs: %w", err)
	}
	n := 0
	for _, e := range es {
		var opts *aztables.DeleteEntityOptions
		if e.ETag != "" {
			etag := azcore.ETag(e.ETag)
			opts = &aztables.DeleteEntityOptions{IfMatch: &etag}
		}
		if _, err := s.c.DeleteEntity(ctx, e.PartitionKey, e.RowKey, opts); err != nil {
			if tables.NotFound(err) || tables.Changed(err) {
				continue
			}
			return n, fmt.Errorf("delete expired PIN row: %w", err)
		}
		n++
	}
	return n, nil
}

func splitSources(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// cleanSource keeps a source name to one bounded line: it ends up in an
// alert.
func cleanSource(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.TrimSpace(s)
	if s == "" {
		return "unknown"
	}
	if len(s) > maxSource {
		cut := maxSource
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}
