// Package alerts keeps Coffer's alerts in Table storage and publishes each
// one on the Service Bus alerts queue, where the email function picks it up.
//
// A row is written before the message is sent and marked published after, so
// an alert raised while Service Bus is down is never lost: Republish, run
// from a timer, sends whatever is still unpublished.
package alerts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// Publisher sends one message; *azservicebus.Sender satisfies it.
type Publisher interface {
	SendMessage(ctx context.Context, m *azservicebus.Message, o *azservicebus.SendMessageOptions) error
}

var (
	// ErrNotFound means no alert has that ID in that vault.
	ErrNotFound = errors.New("alert not found")
	// ErrNotPublished means Raise stored the alert but could not send it;
	// Republish will. Log it; do not raise the alert again.
	ErrNotPublished = errors.New("alert stored but not yet published")
)

// RepublishAfter is how old an unpublished alert must be before Republish
// sends it. Younger ones may still be in the middle of Raise, and sending
// them too would mail the same alert twice.
const RepublishAfter = 5 * time.Minute

// List limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Store is the alerts table plus the queue they are published on.
type Store struct {
	table *aztables.Client
	pub   Publisher
	now   func() time.Time
	log   *slog.Logger
}

// New returns a Store on the alerts table. now is the server clock; nil means
// time.Now.
func New(client *aztables.Client, pub Publisher, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{table: client, pub: pub, now: now, log: slog.Default().With("component", "alerts")}
}

// EnsureTable creates the alerts table if it does not exist.
func (s *Store) EnsureTable(ctx context.Context) error {
	if _, err := s.table.CreateTable(ctx, nil); err != nil && !tables.Status(err, http.StatusConflict) {
		return fmt.Errorf("create the alerts table (check the storage connection string and the identity's Storage Table Data Contributor role): %w", err)
	}
	return nil
}

// Filter narrows List. Zero values match everything.
type Filter struct {
	MachineID      string
	Severity       string
	Kind           string
	Unacknowledged bool
	Since          time.Time // raised at or after
	Limit          int       // 0 means DefaultListLimit; capped at MaxListLimit
}

// Raise stores a new alert and publishes it. The ID and RaisedAt are
// assigned here from the server clock, and acknowledgement fields are
// cleared. Text that is too long is cut and control characters are removed
// rather than refused, since losing an alert is worse than shortening it;
// a bad vault or machine ID, severity or kind is refused.
//
// If the row is stored but the message cannot be sent, Raise returns the
// stored alert together with an error wrapping ErrNotPublished; the row stays
// unpublished for Republish.
func (s *Store) Raise(ctx context.Context, a wire.Alert) (wire.Alert, error) {
	a = tidy(a)
	// Microseconds survive Table storage's DateTime on Azure and Azurite alike.
	a.RaisedAt = s.now().UTC().Truncate(time.Microsecond)
	a.Acknowledged, a.AcknowledgedAt, a.AcknowledgedBy = false, nil, ""
	id, err := newID(a.RaisedAt)
	if err != nil {
		return wire.Alert{}, err
	}
	a.ID = id
	if err := validate(a); err != nil {
		return wire.Alert{}, fmt.Errorf("raise alert: %w", err)
	}
	body, err := encode(a)
	if err != nil {
		return wire.Alert{}, err
	}
	ent, err := json.Marshal(toEntity(a, false))
	if err != nil {
		return wire.Alert{}, fmt.Errorf("encode alert row: %w", err)
	}
	if _, err := s.table.AddEntity(ctx, ent, nil); err != nil {
		return wire.Alert{}, fmt.Errorf("store alert for vault %s (nothing was published; raise it again): %w", a.VaultID, err)
	}
	if err := s.publish(ctx, a, body); err != nil {
		return a, fmt.Errorf("alert %s: %w; Republish will retry: %w", a.ID, ErrNotPublished, err)
	}
	if err := s.markPublished(ctx, a); err != nil {
		// The message is out; at worst Republish sends it again. The
		// alerts queue has no duplicate detection (Basic, the cheapest
		// tier, lacks it; see infra/core/messaging/servicebus.bicep), so
		// that copy is delivered too: a digest vault stores it once more
		// under the same alert ID (no change), and otherwise a second email
		// goes out, with the same Message-ID header as the first.
		s.log.Warn("alert published but not marked; it may be sent twice", "vault", a.VaultID, "alert", a.ID, "err", err)
	}
	return a, nil
}

// Republish sends every alert that is still unpublished and at least
// RepublishAfter old, and marks each one published. It stops at the first
// failure, which usually means Service Bus is still unreachable; the next run
// carries on. It returns how many were sent.
func (s *Store) Republish(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-RepublishAfter)
	pager := s.table.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: ptr("Published eq false")})
	sent := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return sent, fmt.Errorf("list unpublished alerts: %w", err)
		}
		for _, raw := range page.Entities {
			a, _, err := fromEntity(raw)
			if err != nil {
				// A row that cannot become a message would block nothing
				// else, so skip it loudly rather than stop.
				s.log.Error("unpublished alert row is unreadable; fix or delete it", "err", err)
				continue
			}
			if a.RaisedAt.After(cutoff) {
				continue
			}
			body, err := encode(a)
			if err != nil {
				s.log.Error("unpublished alert cannot be encoded; fix or delete it", "vault", a.VaultID, "alert", a.ID, "err", err)
				continue
			}
			if err := s.publish(ctx, a, body); err != nil {
				return sent, fmt.Errorf("republish alert %s (will retry on the next run): %w", a.ID, err)
			}
			sent++
			if err := s.markPublished(ctx, a); err != nil {
				return sent, fmt.Errorf("mark alert %s published (it may be sent again): %w", a.ID, err)
			}
			s.log.Info("alert republished", "vault", a.VaultID, "alert", a.ID)
		}
	}
	return sent, nil
}

// List returns a vault's alerts, newest first.
func (s *Store) List(ctx context.Context, vaultID string, f Filter) ([]wire.Alert, error) {
	if err := checkID("vault id", vaultID); err != nil {
		return nil, err
	}
	// Every value below is validated or built here, never copied raw from
	// the caller, so the filter cannot be injected into.
	conds := []string{"PartitionKey eq '" + vaultID + "'"}
	if f.MachineID != "" {
		if err := checkID("machine id", f.MachineID); err != nil {
			return nil, err
		}
		conds = append(conds, "MachineID eq '"+f.MachineID+"'")
	}
	if f.Severity != "" {
		if err := checkSeverity(f.Severity); err != nil {
			return nil, err
		}
		conds = append(conds, "Severity eq '"+f.Severity+"'")
	}
	if f.Kind != "" {
		if err := checkKind(f.Kind); err != nil {
			return nil, err
		}
		conds = append(conds, "Kind eq '"+f.Kind+"'")
	}
	if f.Unacknowledged {
		conds = append(conds, "Acknowledged eq false")
	}
	if !f.Since.IsZero() {
		bound, ok := sinceBound(f.Since)
		if !ok {
			return []wire.Alert{}, nil // after any time an alert can carry
		}
		if bound != "" {
			conds = append(conds, "RowKey lt '"+bound+"'")
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	pager := s.table.NewListEntitiesPager(&aztables.ListEntitiesOptions{
		Filter: ptr(strings.Join(conds, " and ")),
		Top:    ptr(int32(limit)),
	})
	out := []wire.Alert{}
	for pager.More() && len(out) < limit {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list alerts of vault %s: %w", vaultID, err)
		}
		for _, raw := range page.Entities {
			a, _, err := fromEntity(raw)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// Get returns one alert.
func (s *Store) Get(ctx context.Context, vaultID, id string) (wire.Alert, error) {
	a, _, err := s.get(ctx, vaultID, id)
	return a, err
}

func (s *Store) get(ctx context.Context, vaultID, id string) (wire.Alert, azcore.ETag, error) {
	if err := checkID("vault id", vaultID); err != nil {
		return wire.Alert{}, "", err
	}
	if err := checkID("alert id", id); err != nil {
		return wire.Alert{}, "", err
	}
	resp, err := s.table.GetEntity(ctx, vaultID, id, nil)
	if tables.Status(err, http.StatusNotFound) {
		return wire.Alert{}, "", fmt.Errorf("alert %s in vault %s: %w", id, vaultID, ErrNotFound)
	}
	if err != nil {
		return wire.Alert{}, "", fmt.Errorf("read alert %s in vault %s: %w", id, vaultID, err)
	}
	a, _, err := fromEntity(resp.Value)
	return a, resp.ETag, err
}

// Acknowledge marks an alert as seen by who. Acknowledging it again changes
// nothing and returns the first acknowledgement. Concurrent calls are safe:
// the update is conditional on the row's ETag, so exactly one wins and the
// others return its result.
func (s *Store) Acknowledge(ctx context.Context, vaultID, id, by string) (wire.Alert, error) {
	by = oneLine(by)
	if by == "" || len(by) > MaxNameLen {
		return wire.Alert{}, fmt.Errorf("%w: say who acknowledges the alert, in at most %d bytes", ErrInvalid, MaxNameLen)
	}
	for attempt := 0; ; attempt++ {
		a, etag, err := s.get(ctx, vaultID, id)
		if err != nil {
			return wire.Alert{}, err
		}
		if a.Acknowledged {
			return a, nil
		}
		at := s.now().UTC().Truncate(time.Microsecond)
		patch, err := json.Marshal(aztables.EDMEntity{
			Entity: aztables.Entity{PartitionKey: vaultID, RowKey: id},
			Properties: map[string]any{
				"Acknowledged":   true,
				"AcknowledgedAt": aztables.EDMDateTime(at),
				"AcknowledgedBy": by,
			},
		})
		if err != nil {
			return wire.Alert{}, fmt.Errorf("encode acknowledgement: %w", err)
		}
		_, err = s.table.UpdateEntity(ctx, patch, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeMerge})
		switch {
		case err == nil:
			a.Acknowledged, a.AcknowledgedAt, a.AcknowledgedBy = true, &at, by
			return a, nil
		case tables.Status(err, http.StatusPreconditionFailed) && attempt < 5:
			continue // someone else changed the row: read it again
		case tables.Status(err, http.StatusNotFound):
			return wire.Alert{}, fmt.Errorf("alert %s in vault %s: %w", id, vaultID, ErrNotFound)
		default:
			return wire.Alert{}, fmt.Errorf("acknowledge alert %s in vault %s: %w", id, vaultID, err)
		}
	}
}

func (s *Store) publish(ctx context.Context, a wire.Alert, body []byte) error {
	if s.pub == nil {
		return errors.New("no Service Bus sender is configured")
	}
	return s.pub.SendMessage(ctx, &azservicebus.Message{
		Body:        body,
		ContentType: ptr("application/json"),
		// The same alert always has the same MessageID. The deployed queue
		// does not detect duplicates (see Raise), so this does not stop a
		// copy sent again by Republish; it lets logs and the email's
		// Message-ID tie every copy to the one alert.
		MessageID: ptr(a.ID),
		Subject:   ptr(a.Kind),
		ApplicationProperties: map[string]any{
			"vaultId":  a.VaultID,
			"severity": a.Severity,
		},
	}, nil)
}

func (s *Store) markPublished(ctx context.Context, a wire.Alert) error {
	patch, err := json.Marshal(aztables.EDMEntity{
		Entity:     aztables.Entity{PartitionKey: a.VaultID, RowKey: a.ID},
		Properties: map[string]any{"Published": true},
	})
	if err != nil {
		return err
	}
	// A merge touches only Published, so an acknowledgement made meanwhile
	// is kept; no ETag is needed.
	_, err = s.table.UpdateEntity(ctx, patch, &aztables.UpdateEntityOptions{UpdateMode: aztables.UpdateModeMerge})
	return err
}

// encode is the message body: the wire.Alert JSON, without HTML escaping,
// which only makes it longer.
func encode(a wire.Alert) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	body := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(body) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: alert %s encodes to %d bytes, more than %d", ErrInvalid, a.ID, len(body), MaxMessageBytes)
	}
	return body, nil
}

// tidy makes free text fit the rules instead of refusing the alert.
func tidy(a wire.Alert) wire.Alert {
	a.Title = truncate(oneLine(a.Title), MaxTitleLen, "…")
	a.Detail = truncate(text(a.Detail), MaxDetailLen, "\n… (truncated)")
	a.Reported = truncate(text(a.Reported), MaxReportedLen, "\n… (truncated; the job has the full text)")
	a.VaultName = truncate(oneLine(a.VaultName), MaxNameLen, "…")
	a.MachineName = truncate(oneLine(a.MachineName), MaxNameLen, "…")
	a.JobID = oneLine(a.JobID) // an ID: too long is refused, not cut
	return a
}

// newID is the alert's RowKey: the inverted raise time, so a vault's newest
// alerts list first, then random bits so alerts raised together differ.
func newID(t time.Time) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make alert id: %w", err)
	}
	return invert(t) + "-" + hex.EncodeToString(b[:]), nil
}

func invert(t time.Time) string {
	return fmt.Sprintf("%019d", math.MaxInt64-t.UnixNano())
}

// sinceBound is the RowKey every alert raised at or after since sorts below.
// ok is false when since is past any representable time; an empty bound
// means no alert can be older than since.
func sinceBound(since time.Time) (bound string, ok bool) {
	if !since.After(time.Unix(0, 0)) {
		return "", true
	}
	if since.After(time.Unix(0, math.MaxInt64)) {
		return "", false
	}
	return fmt.Sprintf("%019d", math.MaxInt64-since.UnixNano()+1), true
}

// row is a stored alert as Table storage returns it.
type row struct {
	PartitionKey   string
	RowKey         string
	VaultName      string
	MachineID      string
	MachineName    string
	JobID          string
	Severity       string
	Kind           string
	Title          string
	Detail         string
	Reported       string
	RaisedAt       time.Time
	Acknowledged   bool
	AcknowledgedAt *time.Time
	AcknowledgedBy string
	Published      bool
}

func toEntity(a wire.Alert, published bool) aztables.EDMEntity {
	p := map[string]any{
		"VaultName":    a.VaultName,
		"MachineID":    a.MachineID,
		"MachineName":  a.MachineName,
		"JobID":        a.JobID,
		"Severity":     a.Severity,
		"Kind":         a.Kind,
		"Title":        a.Title,
		"Detail":       a.Detail,
		"Reported":     a.Reported,
		"RaisedAt":     aztables.EDMDateTime(a.RaisedAt),
		"Acknowledged": a.Acknowledged,
		"Published":    published,
	}
	return aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: a.VaultID, RowKey: a.ID}, Properties: p}
}

func fromEntity(raw []byte) (wire.Alert, bool, error) {
	var r row
	if err := json.Unmarshal(raw, &r); err != nil {
		return wire.Alert{}, false, fmt.Errorf("decode alert row: %w", err)
	}
	a := wire.Alert{
		ID: r.RowKey, VaultID: r.PartitionKey, VaultName: r.VaultName,
		MachineID: r.MachineID, MachineName: r.MachineName, JobID: r.JobID,
		Severity: r.Severity, Kind: r.Kind, Title: r.Title, Detail: r.Detail, Reported: r.Reported,
		RaisedAt:     r.RaisedAt.UTC(),
		Acknowledged: r.Acknowledged, AcknowledgedBy: r.AcknowledgedBy,
	}
	if r.AcknowledgedAt != nil {
		t := r.AcknowledgedAt.UTC()
		a.AcknowledgedAt = &t
	}
	return a, r.Published, nil
}

func ptr[T any](v T) *T { return &v }

// SetLogger sends the alerts logs to l.
func (s *Store) SetLogger(l *slog.Logger) { s.log = l.With("component", "alerts") }
