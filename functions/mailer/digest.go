package mailer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/alerts"
	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/wire"
)

// MaxDigestAlerts bounds one digest email; the rest wait for the next one.
const MaxDigestAlerts = 500

// queueDigest stores the alert under its vault for the next digest. The row
// key is the alert ID, so a redelivered message replaces its own row.
func (m *Mailer) queueDigest(ctx context.Context, a wire.Alert) error {
	// The alert JSON is a few tens of KiB at most (alerts limits its
	// fields), inside Table storage's 64 KiB per string property.
	js, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ent, err := json.Marshal(aztables.EDMEntity{
		Entity: aztables.Entity{PartitionKey: a.VaultID, RowKey: a.ID},
		Properties: map[string]any{
			"Alert":    string(js),
			"RaisedAt": aztables.EDMDateTime(a.RaisedAt.UTC()),
		},
	})
	if err != nil {
		return err
	}
	_, err = m.digests.UpsertEntity(ctx, ent, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
	return err
}

type pending struct {
	alert wire.Alert
	etag  azcore.ETag
}

// SendDigests sends each vault with pending alerts one email listing them,
// oldest first, and only then deletes their rows, so a failed send loses
// nothing: it is retried on the next run. A vault whose send fails does not
// stop the others; the errors are joined. It returns how many emails went.
func (m *Mailer) SendDigests(ctx context.Context) (sent int, err error) {
	byVault := map[string][]pending{}
	pager := m.digests.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr(digestRange)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list pending digest alerts (the next run retries): %w", err)
		}
		for _, raw := range page.Entities {
			var row struct {
				PartitionKey, RowKey, Alert string
				ETag                        string `json:"odata.etag"`
			}
			if err := json.Unmarshal(raw, &row); err != nil {
				m.log.Error("digest row is unreadable; delete it from the digests table", "err", err)
				continue
			}
			a, err := alerts.DecodeMessage([]byte(row.Alert))
			if err != nil || a.VaultID != row.PartitionKey || a.ID != row.RowKey {
				m.log.Error("digest row does not hold a valid alert; delete it from the digests table", "vault", row.PartitionKey, "row", row.RowKey, "err", err)
				continue
			}
			etag := azcore.ETagAny // a service that leaves out ETags still gets its rows deleted
			if row.ETag != "" {
				etag = azcore.ETag(row.ETag)
			}
			byVault[a.VaultID] = append(byVault[a.VaultID], pending{a, etag})
		}
	}

	var errs []error
	vaults := make([]string, 0, len(byVault))
	for v := range byVault {
		vaults = append(vaults, v)
	}
	slices.Sort(vaults)
	for _, v := range vaults {
		ok, err := m.sendDigest(ctx, v, byVault[v])
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			sent++
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := m.sweepRates(ctx); err != nil {
		errs = append(errs, err)
	}
	return sent, errors.Join(errs...)
}

func (m *Mailer) sendDigest(ctx context.Context, vault string, ps []pending) (sent bool, err error) {
	log := m.log.With("vault", vault)
	slices.SortFunc(ps, func(a, b pending) int {
		if c := a.alert.RaisedAt.Compare(b.alert.RaisedAt); c != 0 {
			return c
		}
		return strings.Compare(a.alert.ID, b.alert.ID)
	})
	more := 0
	if len(ps) > MaxDigestAlerts {
		more = len(ps) - MaxDigestAlerts
		ps = ps[:MaxDigestAlerts]
	}

	to, _, err := m.rcpt.AlertRecipients(ctx, vault)
	if err != nil {
		return false, fmt.Errorf("look up the alert recipients of vault %s for its digest (the next run retries): %w", vault, err)
	}
	to = m.addresses(to, log)
	if len(to) > 0 {
		as := make([]wire.Alert, len(ps))
		for i, p := range ps {
			as[i] = p.alert
		}
		if err := m.send(ctx, to, m.digestEmail(as, to, more)); err != nil {
			return false, fmt.Errorf("email the digest of vault %s via %s (its %d alerts are kept for the next run): %w", vault, m.addr, len(ps), err)
		}
		sent = true
		log.Info("digest emailed", "alerts", len(ps), "recipients", len(to))
	} else {
		log.Info("vault no longer has alert recipients; dropping its pending digest", "alerts", len(ps))
	}

	var errs []error
	for _, p := range ps {
		// Conditional on the ETag: a row rewritten since it was read is
		// kept, so it is sent again rather than lost.
		_, err := m.digests.DeleteEntity(ctx, vault, p.alert.ID, &aztables.DeleteEntityOptions{IfMatch: &p.etag})
		if err != nil && !tables.Status(err, 404) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return sent, fmt.Errorf("digest of vault %s sent, but %d of its rows could not be deleted and may be sent again: %w", vault, len(errs), errors.Join(errs...))
	}
	return sent, nil
}
