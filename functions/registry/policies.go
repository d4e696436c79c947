package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/coffer-backup/coffer/functions/tables"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

func azETag(s string) azcore.ETag { return azcore.ETag(s) }

type policyEntity struct {
	PartitionKey string
	RowKey       string
	Policy       string // JSON of policy.Policy
	UpdatedAt    string
}

// Policy is a stored, named policy.
type Policy struct {
	Name   string
	Policy policy.Policy
	Doc    wire.PolicyDoc
}

func (e *policyEntity) decode() (Policy, error) {
	var p policy.Policy
	if err := json.Unmarshal([]byte(e.Policy), &p); err != nil {
		return Policy{}, fmt.Errorf("stored policy %s is damaged: %w", e.RowKey, err)
	}
	sum := sha256.Sum256([]byte(e.Policy))
	return Policy{Name: e.RowKey, Policy: p, Doc: wire.PolicyDoc{Name: e.RowKey, Policy: wire.RawJSON(e.Policy),
		UpdatedAt: tables.ParseTime(e.UpdatedAt), ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}}, nil
}

// CheckPolicyName accepts lower-case letters, digits and hyphens.
func CheckPolicyName(name string) error {
	if err := tables.CheckID("policy", name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Policy returns one policy of a vault.
func (r *Registry) Policy(ctx context.Context, vaultID, name string) (Policy, error) {
	if err := tables.CheckID("vault", vaultID); err != nil {
		return Policy{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err := CheckPolicyName(name); err != nil {
		return Policy{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var e policyEntity
	_, err := tables.Get(ctx, r.policies, vaultID, name, &e)
	if tables.NotFound(err) {
		return Policy{}, fmt.Errorf("%w: vault %s has no policy %q", ErrNotFound, vaultID, name)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("read policy %s: %w", name, err)
	}
	return e.decode()
}

// Policies lists a vault's policies by name.
func (r *Registry) Policies(ctx context.Context, vaultID string) ([]Policy, error) {
	if err := tables.CheckID("vault", vaultID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	es, err := tables.Query[policyEntity](ctx, r.policies, "PartitionKey eq '"+vaultID+"'", 0)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	out := make([]Policy, 0, len(es))
	for i := range es {
		p, err := es[i].decode()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Policy) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// PutPolicy stores a validated policy under name.
func (r *Registry) PutPolicy(ctx context.Context, vaultID, name string, p policy.Policy) (Policy, error) {
	if err := CheckPolicyName(name); err != nil {
		return Policy{}, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Policy{}, err
	}
	e := policyEntity{PartitionKey: vaultID, RowKey: name, Policy: string(b), UpdatedAt: tables.Time(r.now())}
	if err := tables.Upsert(ctx, r.policies, &e); err != nil {
		return Policy{}, fmt.Errorf("store policy %s: %w", name, err)
	}
	return e.decode()
}

// DeletePolicy removes a policy. The API refuses it while machines follow
// the policy; one assigned meanwhile keeps every point (the retention
// timer skips a machine whose policy is gone) until it gets another.
func (r *Registry) DeletePolicy(ctx context.Context, vaultID, name string) error {
	if err := tables.CheckID("vault", vaultID); err != nil {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if err := CheckPolicyName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	if _, err := r.policies.DeleteEntity(ctx, vaultID, name, nil); err != nil {
		if tables.NotFound(err) {
			return fmt.Errorf("%w: vault %s has no policy %q", ErrNotFound, vaultID, name)
		}
		return fmt.Errorf("delete policy %s: %w", name, err)
	}
	return nil
}
