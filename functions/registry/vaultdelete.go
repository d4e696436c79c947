package registry

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/coffer-backup/coffer/functions/tables"
)

// DeleteVault removes a vault that has nothing left: no machine, whether
// protected, stopped or with its data soft-deleted and not yet purged
// (undelete would have nowhere to go back to). Its policies and its name
// go with it; its jobs and alerts stay in their tables as history.
//
// The record is deleted under the ETag it was checked with, so a
// credentials download meanwhile (the only way a new machine can join)
// makes this a conflict to retry rather than a vault deleted under a
// machine registering with fresh credentials.
func (r *Registry) DeleteVault(ctx context.Context, id string) error {
	v, etag, err := r.getVault(ctx, id)
	if err != nil {
		return err
	}
	ms, err := r.Machines(ctx, id)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Name + " (" + m.State + ")"
		}
		return fmt.Errorf("%w: vault %s still has %d machine(s): %s; stop each one's protection with its data deleted and wait for the purge (%d days after), then delete the vault",
			ErrConflict, v.Name, len(ms), strings.Join(names, ", "), int(r.SoftDelete.Hours()/24))
	}
	ps, err := r.Policies(ctx, id)
	if err != nil {
		return err
	}
	if _, err := r.vaults.DeleteEntity(ctx, "v", id, &aztables.DeleteEntityOptions{IfMatch: &etag}); err != nil {
		if tables.Changed(err) {
			return fmt.Errorf("%w: vault %s changed meanwhile (new credentials?); check it has no machine and try again", ErrConflict, v.Name)
		}
		if tables.NotFound(err) {
			return fmt.Errorf("%w: vault %s was deleted meanwhile", ErrNotFound, v.Name)
		}
		return fmt.Errorf("delete vault %s: %w", v.Name, err)
	}
	// The record is gone, so nothing reaches these any more: a failure
	// here leaves only rows nobody reads, and a name claim a new vault of
	// the same name would trip on, hence the claim first.
	if err := tables.Delete(ctx, r.vaults, "vn", hex.EncodeToString([]byte(strings.ToLower(v.Name)))); err != nil {
		return fmt.Errorf("vault %s is deleted, but its name is still taken: %w", v.Name, err)
	}
	for _, p := range ps {
		if err := tables.Delete(ctx, r.policies, id, p.Name); err != nil {
			return fmt.Errorf("vault %s is deleted, but not its policy %s: %w", v.Name, p.Name, err)
		}
	}
	return nil
}
