package mailer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// A machine, or whoever controls it, decides how often its jobs fail, so
// it must not decide how many emails the vault's recipients get. Each
// machine gets BurstLimit emails of each kind per BurstWindow (a burst of
// failures never delays a possible-ransomware alert); its later alerts of
// that kind wait in the vault's digest, and the next hourly digest run sends
// them as one email that summarises the burst. Critical operations (admin
// actions, PIN lockouts, passphrase changes) are never held back: they are
// rare, and each one needs to be seen at once.
const (
	BurstLimit  = 3
	BurstWindow = time.Hour
)

// ratePartition holds one row per machine that had an alert emailed, in
// the digests table. "~" sorts after every character of a vault ID, so
// the digest rows are exactly those with PartitionKey < "~".
const (
	ratePartition = "~rate"
	digestRange   = "PartitionKey lt '~'"
)

type rateEntity struct {
	PartitionKey string
	RowKey       string // vault ID "~" machine ID "~" kind
	WindowStart  string
	Sent         int
}

// limited reports whether an alert counts against its machine's limit.
func limited(a wire.Alert) bool {
	return a.MachineID != "" && a.Kind != wire.AlertCriticalOperation
}

// takeEmail counts one email for the alert's machine and reports whether
// it may be sent now. The count is updated under the row's ETag, so
// concurrent deliveries cannot exceed the limit. A redelivered message is
// counted again, which errs towards the digest, never towards more mail.
func (m *Mailer) takeEmail(ctx context.Context, a wire.Alert) (bool, error) {
	if !limited(a) {
		return true, nil
	}
	rk := a.VaultID + "~" + a.MachineID + "~" + a.Kind
	for attempt := 0; ; attempt++ {
		var r rateEntity
		etag, err := tables.Get(ctx, m.digests, ratePartition, rk, &r)
		exists := err == nil
		if err != nil && !tables.NotFound(err) {
			return false, fmt.Errorf("read the alert email count of machine %s: %w", a.MachineID, err)
		}
		now := m.now()
		if !exists || !now.Before(tables.ParseTime(r.WindowStart).Add(BurstWindow)) {
			r = rateEntity{PartitionKey: ratePartition, RowKey: rk, WindowStart: tables.Time(now)}
		}
		if r.Sent >= BurstLimit {
			return false, nil
		}
		r.Sent++
		if exists {
			err = tables.Replace(ctx, m.digests, &r, etag)
		} else {
			err = tables.Add(ctx, m.digests, &r)
		}
		switch {
		case err == nil:
			return true, nil
		case (tables.Changed(err) || tables.Exists(err) || tables.NotFound(err)) && attempt < 50:
			continue // another delivery counted first: count again on its result
		default:
			return false, fmt.Errorf("count an alert email of machine %s: %w", a.MachineID, err)
		}
	}
}

// sweepRates deletes the counts whose window has ended, each only if it is
// unchanged since it was read.
func (m *Mailer) sweepRates(ctx context.Context) error {
	type row struct {
		rateEntity
		ETag string `json:"odata.etag"`
	}
	rows, err := tables.Query[row](ctx, m.digests, "PartitionKey eq '"+ratePartition+"'", 0)
	if err != nil {
		return fmt.Errorf("list alert email counts: %w", err)
	}
	var errs []error
	for _, r := range rows {
		if m.now().Before(tables.ParseTime(r.WindowStart).Add(BurstWindow)) {
			continue
		}
		etag := azcore.ETag(r.ETag)
		opts := &aztables.DeleteEntityOptions{IfMatch: &etag}
		if r.ETag == "" {
			opts = nil
		}
		if _, err := m.digests.DeleteEntity(ctx, r.PartitionKey, r.RowKey, opts); err != nil && !tables.NotFound(err) && !tables.Changed(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete %d ended alert email counts (the next run retries): %w", len(errs), errors.Join(errs...))
	}
	return nil
}
